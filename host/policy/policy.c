// The policy table, SLO and compat parsing, and what the policy files share.
#include "policy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elastic/artifact.h"
#include "io/h5.h"

static const Policy *const policies[] = {&policy_full,     &policy_offtheshelf, &policy_lingua2, &policy_llmpruner,
                                         &policy_layer_reduction, &policy_laco, &policy_shortgpt, &policy_attndrop,
                                         &policy_ours};
#define N_POLICIES (sizeof policies / sizeof *policies)

const char *policy_names(void) {
    static char buf[256];
    if (!buf[0])
        for (size_t i = 0; i < N_POLICIES; i++)
            snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? ", " : "", policies[i]->name);
    return buf;
}

Status policy_lookup(const char *name, const Policy **out) {
    for (size_t i = 0; i < N_POLICIES; i++)
        if (name && !strcmp(name, policies[i]->name)) {
            *out = policies[i];
            return ST_OK;
        }
    return status_fail(ST_USAGE, "--mode '%s': expected one of %s", name ? name : "", policy_names());
}

// x in [lo, hi] and a multiple of 0.1 (to 1e-9).
static Status slo_value(const char *text, const char *opt, double lo, double hi, double *out) {
    char *end;
    double v = text ? strtod(text, &end) : NAN;
    if (!text || end == text || *end || !(v >= lo - 1e-9 && v <= hi + 1e-9) || fabs(v * 10 - nearbyint(v * 10)) > 1e-9)
        return status_fail(ST_USAGE, "--%s '%s': the SLO grid is %.1f, %.1f, ..., 1.0", opt, text ? text : "", lo,
                           lo + 0.1);
    *out = nearbyint(v * 10) / 10;
    return ST_OK;
}

Status slo_parse(const char *prefill, const char *decode, Slo *out) {
    TRY(slo_value(prefill, "prefill-slo", 0.2, 1.0, &out->prefill));
    return slo_value(decode, "decode-slo", 0.5, 1.0, &out->decode);
}

double slo_min(const Slo *s) { return s->prefill < s->decode ? s->prefill : s->decode; }

Status compat_parse(const char *name, Compat *out) {
    if (!name || !strcmp(name, "paper")) *out = COMPAT_PAPER;
    else if (!strcmp(name, "artifact")) *out = COMPAT_ARTIFACT;
    else return status_fail(ST_USAGE, "--compat '%s': expected paper (default) or artifact", name);
    return ST_OK;
}

const char *compat_name(Compat c) { return c == COMPAT_ARTIFACT ? "artifact" : "paper"; }

int layers_kept(double s, int n, Compat c) {
    double sn = s * n; // as Python forms it: one double product
    if (c == COMPAT_ARTIFACT) {
        long start = (long)(1.0 - sn); // int() truncates toward zero
        return start < 0 ? (int)-start : n;
    }
    long k = (long)nearbyint(sn); // Python's round(): half to even, like the default rounding mode
    return k < 1 ? 1 : k > n ? n : (int)k;
}

Status ranks_check(const int32_t *ranks, int len, int n, const char *what) {
    if (len != n) return status_fail(ST_USAGE, "%s: %d layers listed, the model has %d", what, len, n);
    uint8_t *seen = calloc((size_t)n, 1);
    if (!seen) return status_fail(ST_OOM, "out of memory");
    Status st = ST_OK;
    for (int i = 0; i < len && st == ST_OK; i++) {
        if (ranks[i] < 0 || ranks[i] >= n)
            st = status_fail(ST_USAGE, "%s: layer %d at position %d is outside 0..%d", what, ranks[i], i, n - 1);
        else if (seen[ranks[i]])
            st = status_fail(ST_USAGE, "%s: layer %d is listed twice", what, ranks[i]);
        else
            seen[ranks[i]] = 1;
    }
    free(seen);
    return st;
}

static void group_name(char *buf, size_t n, const char *mode, Compat compat, const char *name) {
    snprintf(buf, n, "baselines/%s/%s%s%s", mode, compat_name(compat), name ? "/" : "", name ? name : "");
}

// baselines/<mode>/<compat>/<name>, int32 or f64 [n], from an artifact made for config c.
static Status read_array(const char *artifact, const LlamaConfig *c, const char *mode, Compat compat, const char *name,
                         int n, bool f64, void *out) {
    H5Store *f;
    TRY(h5_open_read(&f, artifact));
    char path[256];
    group_name(path, sizeof path, mode, compat, name);
    Status st = artifact_check_model(f, c);
    if (st == ST_OK && !h5_exists(f, path))
        st = status_fail(ST_USAGE, "%s: no '%s' (run `elastilm prepare --mode %s%s` first)", artifact, path, mode,
                         compat == COMPAT_ARTIFACT ? " --compat artifact" : "");
    int64_t sh[1] = {n};
    if (st == ST_OK) st = f64 ? h5_read_f64_into(f, path, 1, sh, out) : h5_read_i32_into(f, path, 1, sh, out);
    h5_close(f);
    return st;
}

Status policy_read_i32(const char *artifact, const LlamaConfig *c, const char *mode, Compat compat, const char *name,
                       int n, int32_t *out) {
    return read_array(artifact, c, mode, compat, name, n, false, out);
}

Status policy_read_f64(const char *artifact, const LlamaConfig *c, const char *mode, Compat compat, const char *name,
                       int n, double *out) {
    return read_array(artifact, c, mode, compat, name, n, true, out);
}

bool attndrop_budget(int n, double s, int *a, int *m) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if ((double)(n - i + 2 * n - 2 * j) / (double)(3 * n) <= s) {
                *a = i, *m = j;
                return true;
            }
    return false;
}

Status policy_write_arrays(const char *artifact, const LlamaConfig *c, const char *mode, Compat compat,
                           const char *source, int n, const char *const *i32_names, const int32_t *const *i32,
                           int n_i32, const char *const *f64_names, const double *const *f64, int n_f64) {
    H5Store *f;
    TRY(h5_open_read(&f, artifact)); // it must exist and be this model's before it is rewritten
    Status st = artifact_check_model(f, c);
    h5_close(f);
    TRY(st);
    TRY(h5_open_update(&f, artifact));
    char group[256], path[320];
    group_name(group, sizeof group, mode, compat, NULL);
    st = h5_delete(f, group);
    if (st == ST_OK) st = h5_make_group(f, group);
    if (st == ST_OK) st = h5_set_attr_str(f, group, "source", source);
    int64_t sh[1] = {n};
    for (int i = 0; st == ST_OK && i < n_i32; i++) {
        snprintf(path, sizeof path, "%s/%s", group, i32_names[i]);
        st = h5_write_i32(f, path, 1, sh, i32[i]);
    }
    for (int i = 0; st == ST_OK && i < n_f64; i++) {
        snprintf(path, sizeof path, "%s/%s", group, f64_names[i]);
        st = h5_write_f64(f, path, 1, sh, f64[i]);
    }
    if (st != ST_OK) {
        h5_close(f);
        return st;
    }
    return h5_commit(f);
}

Status block_view_init(BlockView *v, int n_layers) {
    memset(v, 0, sizeof *v);
    v->n_layers = n_layers;
    v->blocks = malloc((size_t)n_layers);
    v->weights = calloc((size_t)n_layers, sizeof *v->weights);
    if (!v->blocks || !v->weights) {
        block_view_free(v);
        return status_fail(ST_OOM, "out of memory");
    }
    block_view_reset(v);
    v->view = (LlamaView){.blocks = v->blocks, .weights = v->weights};
    return ST_OK;
}

void block_view_free(BlockView *v) {
    free(v->blocks);
    free(v->weights);
    memset(v, 0, sizeof *v);
}

void block_view_reset(BlockView *v) {
    for (int l = 0; l < v->n_layers; l++) v->blocks[l] = LAYER_ALL, v->weights[l] = NULL;
}

void block_view_keep_tail(BlockView *v, const int32_t *ranks, int keep) {
    block_view_reset(v);
    for (int i = 0; i < v->n_layers - keep; i++) v->blocks[ranks[i]] = 0;
}

void print_list_i32(const char *label, const int32_t *v, int n) {
    printf("%s: [", label);
    for (int i = 0; i < n; i++) printf(i ? ", %d" : "%d", v[i]);
    printf("]\n");
}

typedef struct {
    int32_t *ranks; // [L] ascending importance
    Compat compat;
    BlockView bv;
} Ranked;

void ranked_close(void *state) {
    Ranked *r = state;
    if (!r) return;
    free(r->ranks);
    block_view_free(&r->bv);
    free(r);
}

Status ranked_open(void **state, const PolicyOpen *o, const char *mode) {
    int L = o->m->cfg.n_layers;
    Ranked *r = calloc(1, sizeof *r);
    if (!r) return status_fail(ST_OOM, "out of memory");
    r->compat = o->compat;
    r->ranks = malloc((size_t)L * sizeof *r->ranks);
    Status st = r->ranks ? block_view_init(&r->bv, L) : status_fail(ST_OOM, "out of memory");
    if (st == ST_OK) st = policy_read_i32(o->artifact, &o->m->cfg, mode, o->compat, "ranks", L, r->ranks);
    if (st == ST_OK) st = ranks_check(r->ranks, L, L, o->artifact);
    if (st != ST_OK) {
        ranked_close(r);
        return st;
    }
    *state = r;
    return ST_OK;
}

Status ranked_decide(void *state, const PolicyRequest *rq, const Slo *slo, Decision *d) {
    (void)rq;
    Ranked *r = state;
    int keep = layers_kept(slo_min(slo), r->bv.n_layers, r->compat);
    block_view_keep_tail(&r->bv, r->ranks, keep);
    *d = (Decision){.view = &r->bv.view, .prompt_ratio = 1.0};
    snprintf(d->what, sizeof d->what, "keep %d of %d layers (s = %g)", keep, r->bv.n_layers, slo_min(slo));
    return ST_OK;
}

Status ranked_store(const PolicyPrepare *p, const char *mode, const int32_t *computed, const double *scores,
                    const char *score_name, bool print) {
    int L = p->m->cfg.n_layers;
    const int32_t *ranks = p->ranks ? p->ranks : computed;
    TRY(ranks_check(ranks, p->ranks ? p->n_ranks : L, L, p->ranks ? "--ranks" : mode));
    char label[96];
    snprintf(label, sizeof label, "%s layer ranks (%s, ascending importance)", mode, compat_name(p->compat));
    if (print) print_list_i32(label, ranks, L);
    const char *in[] = {"ranks"}, *fn[] = {score_name};
    const int32_t *iv[] = {ranks};
    const double *fv[] = {scores};
    return policy_write_arrays(p->artifact, &p->m->cfg, mode, p->compat, p->ranks ? "given" : "computed", L, in, iv, 1,
                               fn, fv, scores && !p->ranks ? 1 : 0);
}
