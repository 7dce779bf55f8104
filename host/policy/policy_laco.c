// LaCo (Yang et al. 2024, "LaCo: Large Language Model Pruning via Layer
// Collapse"): layers merged into the layer before them while the merged
// model's final hidden states stay similar to the original's, searched once
// per ratio r to int(r L) layers; s = min(prefill, decode) picks the ratio.
//
// Paper merge (RDSC): theta = theta_l + sum_k (theta_{l+k} - theta_l) over the 7
// projections, norms of layer l. The artifact (--compat artifact) updates theta_l
// in place, which leaves the last merged layer's weights, and carries its
// threshold from ratio to ratio (Layer_pruning/LaCo/prune_llama3.py). A merged
// model is kept as groups of original layers with coefficient vectors, so the
// artifact stores no weights; serving materialises each distinct merged layer
// once (shared by every ratio that uses it); unmerged layers are the model's own.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elastic/artifact.h"
#include "io/h5.h"
#include "models/llama_layer.h"
#include "policy.h"
#include "runtime/log.h"
#include "train/llama_train.h"

#define MERGE_LAYERS 4
#define INTERVAL 1
#define THRESHOLD 0.45
#define N_RATIOS 9
static const double ratios[N_RATIOS] = {0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};

// The five English Wikipedia prefixes of the LaCo scripts (prune_llama.py:139-143).
static const char *const sentences[] = {
    "Mouron () is a commune in the Arde",
    "The 81st Mechanised Brigade () is a mechanised brigade of the Romanian Land Force",
    "There are 18 National Natural Landmarks in the U.S. state of Washington, out of nearly",
    "Torreorgaz is a municipality in the",
    "Copa Libertadores 1973 was won by defending champions Independiente of A",
};
#define N_SENTENCES 5

void laco_free(LacoModel *g) {
    free(g->start), free(g->coef), free(g->trials);
    memset(g, 0, sizeof *g);
}

void laco_layer_free(LlamaLayer *ly) {
    Tensor *ts[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
    for (int i = 0; i < 7; i++) tensor_free(ts[i]);
    memset(ly, 0, sizeof *ly);
}

static bool is_unit(const double *c, int L, int j) {
    for (int i = 0; i < L; i++)
        if (c[i] != (i == j ? 1.0 : 0.0)) return false;
    return true;
}

Status laco_materialize(const LlamaModel *m, const LacoModel *g, int k, LlamaLayer *out) {
    TRY(llama_require_f32(m, "merging layers"));
    int L = g->n_layers, base = g->start[k];
    const double *c = g->coef + (size_t)k * L;
    memset(out, 0, sizeof *out);
    out->attn_norm = m->layers[base].attn_norm, out->attn_norm.owns = false;
    out->mlp_norm = m->layers[base].mlp_norm, out->mlp_norm.owns = false;
    Tensor *dst[] = {&out->wq, &out->wk, &out->wv, &out->wo, &out->w_gate, &out->w_up, &out->w_down};
    for (int i = 0; i < 7; i++) {
        const LlamaLayer *l0 = &m->layers[0];
        const Tensor *like[] = {&l0->wq, &l0->wk, &l0->wv, &l0->wo, &l0->w_gate, &l0->w_up, &l0->w_down};
        Status st = tensor_alloc(dst[i], DT_F32, (Device){DEV_CPU, 0}, like[i]->ndim, like[i]->shape);
        if (st != ST_OK) {
            laco_layer_free(out);
            return st;
        }
        tensor_zero(dst[i]);
        int64_t rows = like[i]->shape[0], cols = like[i]->shape[1];
        for (int j = 0; j < L; j++) {
            if (c[j] == 0) continue;
            const LlamaLayer *ly = &m->layers[j];
            const Tensor *src[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
            float cj = (float)c[j];
#pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < rows; r++) {
                const float *w = tensor_row_f32(src[i], r);
                float *o = tensor_row_f32(dst[i], r);
                for (int64_t q = 0; q < cols; q++) o[q] += cj * w[q];
            }
        }
    }
    return ST_OK;
}

// The search's working state: the packed sentences, a trainer running views,
// the reference hidden states, merged layers of the current and the candidate model.
typedef struct {
    const LlamaModel *m;
    LlamaTrain t;
    TrainBatch b;
    int32_t *targets;
    float *ref;               // [N, D] final hidden states of the original model
    const LlamaLayer **subst; // [L] the trainer's view.weights (changed between evaluations)
    LlamaLayer *own;          // [L] materialised merged layer of each group (wq.data NULL when unmerged)
} Search;

static void search_free(Search *s) {
    int L = s->m ? s->m->cfg.n_layers : 0;
    llama_train_free(&s->t);
    for (int k = 0; s->own && k < L; k++)
        if (s->own[k].wq.data) laco_layer_free(&s->own[k]);
    free(s->own), free(s->subst), free(s->targets), free(s->ref);
    memset(s, 0, sizeof *s);
}

// Runs the view of groups g (merged layers materialised into s->own) and compares with the reference.
static Status similarity(Search *s, const LacoModel *g, double *sim) {
    int L = g->n_layers;
    int64_t D = s->m->cfg.dim;
    for (int l = 0; l < L; l++) s->t.blocks[l] = 0, s->subst[l] = NULL;
    for (int k = 0; k < g->depth; k++) {
        int base = g->start[k];
        s->t.blocks[base] = LAYER_ALL;
        if (s->own[k].wq.data) s->subst[base] = &s->own[k];
    }
    TRY(llama_train_eval(&s->t, &s->b, NULL, NULL));
    const float *x = s->t.xf.data;
    double total = 0;
    for (int q = 0; q < s->b.n_seq; q++) {
        double ab = 0, aa = 0, bb = 0;
        for (int64_t i = (int64_t)s->b.cu[q] * D; i < (int64_t)s->b.cu[q + 1] * D; i++)
            ab += (double)x[i] * s->ref[i], aa += (double)x[i] * x[i], bb += (double)s->ref[i] * s->ref[i];
        total += aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
    }
    *sim = total / s->b.n_seq;
    return ST_OK;
}

static Status search_init(Search *s, const LlamaModel *m, const int32_t *ids, const int32_t *cu, int n_sent) {
    memset(s, 0, sizeof *s);
    s->m = m;
    int L = m->cfg.n_layers, N = cu[n_sent];
    s->targets = malloc((size_t)N * sizeof *s->targets);
    s->subst = calloc((size_t)L, sizeof *s->subst);
    s->own = calloc((size_t)L, sizeof *s->own);
    s->ref = malloc((size_t)N * (size_t)m->cfg.dim * sizeof *s->ref);
    if (!s->targets || !s->subst || !s->own || !s->ref) return status_fail(ST_OOM, "out of memory");
    for (int i = 0; i < N; i++) s->targets[i] = -1; // only hidden states are wanted
    s->b = (TrainBatch){.ids = ids, .targets = s->targets, .cu = cu, .n_seq = n_sent, .n_tokens = N};
    TrainOptions o = {.eval_only = true, .weights = s->subst};
    TRY(llama_train_init(&s->t, m, NULL, NULL, &o, N));
    TRY(llama_train_eval(&s->t, &s->b, NULL, NULL));
    memcpy(s->ref, s->t.xf.data, (size_t)N * (size_t)m->cfg.dim * sizeof *s->ref);
    return ST_OK;
}

static Status record_trial(LacoModel *g, int lay, int m, double thr, double sim, bool acc) {
    double *t = realloc(g->trials, (size_t)(g->n_trials + 1) * 5 * sizeof *t);
    if (!t) return status_fail(ST_OOM, "out of memory");
    g->trials = t;
    double row[5] = {lay, m, thr, sim, acc};
    memcpy(t + (size_t)g->n_trials * 5, row, sizeof row);
    g->n_trials++;
    return ST_OK;
}

// cand = cur with groups lay+1 .. lay+m folded into lay.
static void merge(const LacoModel *cur, int lay, int m, Compat c, LacoModel *cand) {
    int L = cur->n_layers;
    cand->depth = cur->depth - m;
    for (int k = 0, o = 0; k < cur->depth; k++) {
        if (k > lay && k <= lay + m) continue;
        cand->start[o] = cur->start[k];
        memcpy(cand->coef + (size_t)o * L, cur->coef + (size_t)k * L, (size_t)L * sizeof(double));
        o++;
    }
    double *base = cand->coef + (size_t)lay * L;
    const double *cb = cur->coef + (size_t)lay * L;
    if (c == COMPAT_ARTIFACT) {
        if (m > 0) memcpy(base, cur->coef + (size_t)(lay + m) * L, (size_t)L * sizeof(double));
    } else {
        for (int k = 1; k <= m; k++)
            for (int j = 0; j < L; j++) base[j] += cur->coef[(size_t)(lay + k) * L + j] - cb[j];
    }
}

static Status alloc_model(LacoModel *g, int L) {
    memset(g, 0, sizeof *g);
    g->n_layers = g->depth = L;
    g->start = malloc((size_t)L * sizeof *g->start);
    g->coef = calloc((size_t)L * L, sizeof *g->coef);
    if (!g->start || !g->coef) {
        laco_free(g);
        return status_fail(ST_OOM, "out of memory");
    }
    for (int k = 0; k < L; k++) g->start[k] = k, g->coef[(size_t)k * L + k] = 1;
    return ST_OK;
}

// Materialises the merged layers of g into s->own (group order), freeing what was there.
static Status materialize_all(Search *s, const LacoModel *g) {
    for (int k = 0; k < g->n_layers; k++)
        if (s->own[k].wq.data) laco_layer_free(&s->own[k]);
    for (int k = 0; k < g->depth; k++)
        if (!is_unit(g->coef + (size_t)k * g->n_layers, g->n_layers, g->start[k]))
            TRY(laco_materialize(s->m, g, k, &s->own[k]));
    return ST_OK;
}

Status laco_search(const LlamaModel *m, const int32_t *ids, const int32_t *cu, int n_sent, double ratio, Compat c,
                   double *threshold, LacoModel *out) {
    int L = m->cfg.n_layers;
    int target = (int)(ratio * L); // int(RATIO * NUMBER_LAYERS)
    if (target < 1) target = 1;    // a one-layer model cannot merge further
    Search s;
    LacoModel cand = {0};
    Status st = alloc_model(out, L);
    if (st == ST_OK) st = alloc_model(&cand, L);
    if (st == ST_OK) st = search_init(&s, m, ids, cu, n_sent);
    int lay = L - 1 - MERGE_LAYERS;
    if (lay < 0) lay = 0;
    out->sim = 1.0;
    while (st == ST_OK && out->depth > target) {
        if (lay == 0) *threshold -= 0.1;
        int mm = MERGE_LAYERS - 1 < out->depth - lay - 1 ? MERGE_LAYERS - 1 : out->depth - lay - 1;
        merge(out, lay, mm, c, &cand);
        double sim = 0;
        st = materialize_all(&s, &cand);
        if (st == ST_OK) st = similarity(&s, &cand, &sim);
        bool acc = st == ST_OK && sim > *threshold;
        if (st == ST_OK) st = record_trial(out, lay, mm, *threshold, sim, acc);
        if (st != ST_OK) break;
        log_debug("LaCo r=%g: merge %d layers into %d of %d: similarity %.6f %s threshold %.2f", ratio, mm, lay,
                  out->depth, sim, acc ? ">" : "<=", *threshold);
        if (acc) {
            // the candidate becomes the current model (the buffers are swapped)
            out->depth = cand.depth, out->sim = sim;
            int32_t *ps = out->start;
            double *pc = out->coef;
            out->start = cand.start, out->coef = cand.coef;
            cand.start = ps, cand.coef = pc;
            lay -= INTERVAL;
            if (lay >= out->depth) lay = out->depth - 1 - MERGE_LAYERS;
        } else {
            lay -= 1;
        }
        if (lay < 0) lay = 0;
    }
    search_free(&s);
    laco_free(&cand);
    if (st != ST_OK) laco_free(out);
    return st;
}

// ---- prepare: the search for every ratio, into the artifact ---------------------------

static Status tokenize_sentences(const Tokenizer *tok, int vocab, int32_t **ids, int32_t *cu) {
    int32_t *all = NULL;
    int n = 0;
    cu[0] = 0;
    for (int i = 0; i < N_SENTENCES; i++) {
        TokenList tl = {0};
        Status st = tokenizer_encode(tok, sentences[i], strlen(sentences[i]), true, &tl); // as tokenizer(s) does
        int32_t *grown = st == ST_OK ? realloc(all, (size_t)(n + (int)tl.n) * sizeof *all) : NULL;
        if (st == ST_OK && !grown) st = status_fail(ST_OOM, "out of memory");
        for (size_t k = 0; st == ST_OK && k < tl.n; k++) {
            if (tl.ids[k] < 0 || tl.ids[k] >= vocab)
                st = status_fail(ST_USAGE, "LaCo: the tokenizer gives id %d outside the model's vocabulary", tl.ids[k]);
            grown[n + (int)k] = tl.ids[k];
        }
        if (grown) all = grown;
        n += (int)tl.n;
        cu[i + 1] = n;
        token_list_free(&tl);
        if (st != ST_OK) {
            free(all);
            return st;
        }
    }
    *ids = all;
    return ST_OK;
}

static Status write_ratio(H5Store *f, const char *group, const LacoModel *g, int target, double thr) {
    int L = g->n_layers;
    char path[320];
    TRY(h5_make_group(f, group));
    snprintf(path, sizeof path, "%s/start", group);
    TRY(h5_write_i32(f, path, 1, (int64_t[]){g->depth}, g->start));
    snprintf(path, sizeof path, "%s/coef", group);
    TRY(h5_write_f64(f, path, 2, (int64_t[]){g->depth, L}, g->coef));
    snprintf(path, sizeof path, "%s/trials", group);
    TRY(h5_write_f64(f, path, 2, (int64_t[]){g->n_trials, 5}, g->trials));
    TRY(h5_set_attr_f64(f, group, "similarity", g->sim));
    TRY(h5_set_attr_i64(f, group, "target", target));
    return h5_set_attr_f64(f, group, "threshold_after", thr);
}

static void print_groups(double r, const LacoModel *g, int target, Compat c) {
    printf("LaCo (%s) r=%g: %d layers (target %d), similarity %.6f, %d trials; groups:", compat_name(c), r, g->depth,
           target, g->sim, g->n_trials);
    for (int k = 0; k < g->depth; k++) {
        int end = k + 1 < g->depth ? g->start[k + 1] : g->n_layers;
        if (end - g->start[k] == 1) printf(" %d", g->start[k]);
        else printf(" %d-%d", g->start[k], end - 1);
    }
    printf("\n");
}

static Status laco_prepare(const PolicyPrepare *p) {
    if (p->ranks) return status_fail(ST_USAGE, "LaCo searches merges itself: --ranks does not apply");
    const LlamaConfig *c = &p->m->cfg;
    int32_t *ids = NULL, cu[N_SENTENCES + 1];
    TRY(tokenize_sentences(p->tok, c->vocab_size, &ids, cu));
    H5Store *f;
    Status st = h5_open_read(&f, p->artifact);
    if (st == ST_OK) {
        st = artifact_check_model(f, c);
        h5_close(f);
    }
    if (st == ST_OK) st = h5_open_update(&f, p->artifact);
    if (st != ST_OK) {
        free(ids);
        return st;
    }
    char group[256];
    snprintf(group, sizeof group, "baselines/LaCo/%s", compat_name(p->compat));
    st = h5_delete(f, group);
    if (st == ST_OK) st = h5_make_group(f, group);
    if (st == ST_OK) st = h5_set_attr_str(f, group, "source", "computed");
    double thr = THRESHOLD; // the artifact's module-level THRESHOLD: carried over from ratio to ratio
    Progress bar;
    progress_begin(&bar, "LaCo ratios", N_RATIOS);
    for (int i = 0; st == ST_OK && i < N_RATIOS; i++) {
        if (p->compat == COMPAT_PAPER) thr = THRESHOLD;
        LacoModel g;
        st = laco_search(p->m, ids, cu, N_SENTENCES, ratios[i], p->compat, &thr, &g);
        if (st != ST_OK) break;
        int target = (int)(ratios[i] * c->n_layers);
        char sub[300], name[32];
        level_name(ratios[i], name, sizeof name);
        snprintf(sub, sizeof sub, "%s/%s", group, name);
        st = write_ratio(f, sub, &g, target, thr);
        progress_step(&bar, 1);
        print_groups(ratios[i], &g, target, p->compat);
        laco_free(&g);
    }
    progress_end(&bar);
    free(ids);
    if (st != ST_OK) {
        h5_close(f);
        return st;
    }
    return h5_commit(f);
}

// ---- serving ---------------------------------------------------------------------------

typedef struct {
    LacoModel g[N_RATIOS];
    bool have[N_RATIOS];
    LlamaLayer *merged;  // [n_merged] distinct merged layers
    double *merged_coef; // [n_merged * L]
    int *merged_base;    // [n_merged] the original layer whose norms each carries
    int n_merged;
    int *use[N_RATIOS];  // [depth] index into merged, -1 = the model's own layer
    BlockView bv;
} Laco;

static void laco_close(void *state) {
    Laco *s = state;
    if (!s) return;
    for (int i = 0; i < N_RATIOS; i++) laco_free(&s->g[i]), free(s->use[i]);
    for (int k = 0; k < s->n_merged; k++) laco_layer_free(&s->merged[k]);
    free(s->merged), free(s->merged_coef), free(s->merged_base);
    block_view_free(&s->bv);
    free(s);
}

static Status read_ratio(H5Store *f, const char *group, int L, LacoModel *g) {
    char path[320];
    int64_t sh[2];
    int32_t *start = NULL;
    double *coef = NULL;
    memset(g, 0, sizeof *g);
    g->n_layers = L;
    snprintf(path, sizeof path, "%s/start", group);
    TRY(h5_read_i32(f, path, 1, sh, &start));
    g->depth = (int)sh[0];
    g->start = start;
    snprintf(path, sizeof path, "%s/coef", group);
    Status st = h5_read_f64(f, path, 2, sh, &coef);
    g->coef = coef;
    if (st == ST_OK && (sh[0] != g->depth || sh[1] != L || g->depth < 1 || g->depth > L))
        st = status_fail(ST_FORMAT, "%s: %s: %d groups with coefficients [%lld, %lld] for %d layers", h5_path(f),
                         group, g->depth, (long long)sh[0], (long long)sh[1], L);
    for (int k = 0; st == ST_OK && k < g->depth; k++)
        if (g->start[k] < 0 || g->start[k] >= L || (k > 0 ? g->start[k] <= g->start[k - 1] : g->start[k] != 0))
            st = status_fail(ST_FORMAT, "%s: %s/start is not an increasing list of layers from 0", h5_path(f), group);
    if (st == ST_OK) st = h5_get_attr_f64(f, group, "similarity", &g->sim);
    if (st != ST_OK) laco_free(g);
    return st;
}

static Status laco_open(void **state, const PolicyOpen *o) {
    const LlamaModel *m = o->m;
    int L = m->cfg.n_layers;
    Laco *s = calloc(1, sizeof *s);
    if (!s) return status_fail(ST_OOM, "out of memory");
    s->merged = calloc((size_t)N_RATIOS * L, sizeof *s->merged);
    s->merged_coef = calloc((size_t)N_RATIOS * L * L, sizeof *s->merged_coef);
    s->merged_base = calloc((size_t)N_RATIOS * L, sizeof *s->merged_base);
    Status st = s->merged && s->merged_coef && s->merged_base ? block_view_init(&s->bv, L)
                                                               : status_fail(ST_OOM, "out of memory");
    H5Store *f = NULL;
    if (st == ST_OK) st = h5_open_read(&f, o->artifact);
    if (st == ST_OK) st = artifact_check_model(f, &m->cfg);
    char group[256];
    snprintf(group, sizeof group, "baselines/LaCo/%s", compat_name(o->compat));
    if (st == ST_OK && !h5_exists(f, group))
        st = status_fail(ST_USAGE, "%s: no '%s' (run `elastilm prepare --mode LaCo%s` first)", o->artifact, group,
                         o->compat == COMPAT_ARTIFACT ? " --compat artifact" : "");
    for (int i = 0; st == ST_OK && i < N_RATIOS; i++) {
        char name[32], sub[300];
        level_name(ratios[i], name, sizeof name);
        snprintf(sub, sizeof sub, "%s/%s", group, name);
        if (!h5_exists(f, sub)) continue;
        st = read_ratio(f, sub, L, &s->g[i]);
        if (st != ST_OK) break;
        s->have[i] = true;
        s->use[i] = malloc((size_t)s->g[i].depth * sizeof *s->use[i]);
        if (!s->use[i]) st = status_fail(ST_OOM, "out of memory");
        for (int k = 0; st == ST_OK && k < s->g[i].depth; k++) { // each distinct merged layer once
            const double *c = s->g[i].coef + (size_t)k * L;
            s->use[i][k] = -1;
            if (is_unit(c, L, s->g[i].start[k])) continue;
            for (int j = 0; j < s->n_merged && s->use[i][k] < 0; j++)
                if (!memcmp(s->merged_coef + (size_t)j * L, c, (size_t)L * sizeof *c) &&
                    s->merged_base[j] == s->g[i].start[k])
                    s->use[i][k] = j;
            if (s->use[i][k] >= 0) continue;
            st = laco_materialize(m, &s->g[i], k, &s->merged[s->n_merged]);
            if (st != ST_OK) break;
            memcpy(s->merged_coef + (size_t)s->n_merged * L, c, (size_t)L * sizeof *c);
            s->merged_base[s->n_merged] = s->g[i].start[k];
            s->use[i][k] = s->n_merged++;
        }
    }
    h5_close(f);
    if (st == ST_OK) log_info("LaCo: %d merged layers for the prepared ratios", s->n_merged);
    if (st != ST_OK) {
        laco_close(s);
        return st;
    }
    *state = s;
    return ST_OK;
}

static Status laco_place(void *state, const LlamaModel *m) {
    Laco *s = state;
    for (int k = 0; k < s->n_merged; k++) { // the norms: the base layer's own, wherever they are now
        s->merged[k].attn_norm = m->layers[s->merged_base[k]].attn_norm;
        s->merged[k].mlp_norm = m->layers[s->merged_base[k]].mlp_norm;
        s->merged[k].attn_norm.owns = s->merged[k].mlp_norm.owns = false;
        TRY(llama_layer_like_model(m, &s->merged[k]));
    }
    return ST_OK;
}

static Status laco_decide(void *state, const PolicyRequest *rq, const Slo *slo, Decision *d) {
    (void)rq;
    Laco *s = state;
    double r = slo_min(slo);
    int i = 0;
    while (i < N_RATIOS && fabs(ratios[i] - r) > 1e-9) i++;
    if (i == N_RATIOS || !s->have[i])
        return status_fail(ST_USAGE, "LaCo: no merged model prepared for ratio %g", r);
    const LacoModel *g = &s->g[i];
    for (int l = 0; l < g->n_layers; l++) s->bv.blocks[l] = 0, s->bv.weights[l] = NULL;
    for (int k = 0; k < g->depth; k++) {
        s->bv.blocks[g->start[k]] = LAYER_ALL;
        if (s->use[i][k] >= 0) s->bv.weights[g->start[k]] = &s->merged[s->use[i][k]];
    }
    *d = (Decision){.view = &s->bv.view, .prompt_ratio = 1.0};
    snprintf(d->what, sizeof d->what, "%d of %d layers after merging (ratio %g, similarity %.4f)", g->depth,
             g->n_layers, r, g->sim);
    return ST_OK;
}

const Policy policy_laco = {
    .name = "LaCo",
    .summary = "layers merged into the one before while the final hidden states stay similar; s = min(prefill, decode)",
    .needs_artifact = true,
    .prepare = laco_prepare,
    .open = laco_open,
    .place = laco_place,
    .decide = laco_decide,
    .close = laco_close,
};
