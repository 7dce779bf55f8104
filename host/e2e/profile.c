#include "profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/h5.h"
#include "runtime/device.h"
#include "runtime/log.h"
#include "runtime/rng.h"
#include "runtime/stats.h"

void profile_device(Device dev, DType weights, int threads, char *key, size_t nk, char *desc, size_t nd) {
    char what[200];
    if (dev.kind == DEV_CUDA) {
        if (device_describe(dev.index, what, sizeof what) != ST_OK) snprintf(what, sizeof what, "cuda:%d", dev.index);
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)strcspn(what, ","), what);
        for (char *c = name; *c; c++)
            if (*c == ' ' || *c == '/') *c = '_';
        snprintf(key, nk, "cuda-%s", name);
        snprintf(desc, nd, "%s", what);
        return;
    }
    cpu_describe(what, sizeof what);
    const char *w = dtype_name(weights);
    snprintf(key, nk, "cpu-%dt-%s", threads, w);
    snprintf(desc, nd, "%s, %d thread%s, %s weights", what, threads, threads == 1 ? "" : "s", w);
}

// One timed prefill of ids[0:n] into a fresh cache, the last logits formed.
static Status timed_prefill(const CausalLM *lm, void *sess, const int32_t *ids, int n, Tensor *logits, double *ms) {
    lm->ops->reset(sess);
    double t0 = time_now();
    TRY(clm_forward(lm, sess, ids, NULL, n, LOGITS_LAST, logits));
    *ms = (time_now() - t0) * 1e3;
    return ST_OK;
}

Status profile_measure(const CausalLM *lm, Device dev, int max_tokens, const int *lengths, int n, int reps,
                       int tpot_context, int session_cap, LatencyProfile *out) {
    memset(out, 0, sizeof *out);
    if (n < 1 || n > PROFILE_MAX_LENGTHS) return status_fail(ST_USAGE, "profile: 1 ... %d lengths", PROFILE_MAX_LENGTHS);
    if (reps < 1) return status_fail(ST_USAGE, "profile: at least one repetition");
    int cap = tpot_context + 64 + 1;
    for (int i = 0; i < n; i++) {
        if (lengths[i] < 1 || lengths[i] > max_tokens || (i && lengths[i] <= lengths[i - 1]))
            return status_fail(ST_USAGE, "profile: lengths must ascend within 1 ... %d (the model's positions), got %d",
                               max_tokens, lengths[i]);
        cap = lengths[i] > cap ? lengths[i] : cap;
    }
    int sess_cap = session_cap > cap ? session_cap : cap;
    if (tpot_context < 1 || tpot_context + 65 > max_tokens)
        return status_fail(ST_USAGE, "profile: decode context %d outside 1 ... %d", tpot_context, max_tokens - 65);
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    double *t = malloc((size_t)(reps > 16 ? reps : 16) * sizeof *t);
    void *sess = NULL;
    Tensor logits = {0};
    Status st = ids && t ? ST_OK : status_fail(ST_OOM, "out of memory");
    Rng r;
    rng_seed(&r, 42);
    for (int i = 0; st == ST_OK && i < cap; i++) ids[i] = (int32_t)rng_below(&r, (uint64_t)lm->vocab_size);
    if (st == ST_OK) st = clm_session_new(lm, 1, sess_cap, dev, &sess);
    if (st == ST_OK) st = tensor_alloc_2d(&logits, DT_F32, (Device){DEV_CPU, 0}, 1, lm->vocab_size);
    double warm;
    if (st == ST_OK) st = timed_prefill(lm, sess, ids, lengths[0], &logits, &warm); // caches, page faults, clocks
    // rounds over the lengths rather than one length's repetitions back to back,
    // so no measurement runs on caches its predecessor warmed for it
    double *all = st == ST_OK ? malloc((size_t)n * (size_t)reps * sizeof *all) : NULL;
    if (st == ST_OK && !all) st = status_fail(ST_OOM, "out of memory");
    for (int k = 0; st == ST_OK && k < reps; k++)
        for (int i = 0; st == ST_OK && i < n; i++) st = timed_prefill(lm, sess, ids, lengths[i], &logits, &all[i * reps + k]);
    for (int i = 0; st == ST_OK && i < n; i++) {
        out->lengths[i] = lengths[i];
        out->ttft_ms[i] = stats_median(&all[i * reps], (size_t)reps);
        log_info("profile: prefill of %d tokens %.2f ms (median of %d)", lengths[i], out->ttft_ms[i], reps);
    }
    free(all);
    // decode: 16 steps after a prefill of tpot_context tokens
    if (st == ST_OK) st = timed_prefill(lm, sess, ids, tpot_context, &logits, &warm);
    for (int k = 0; st == ST_OK && k < 16; k++) {
        double t0 = time_now();
        st = clm_forward(lm, sess, &ids[tpot_context + k], NULL, 1, LOGITS_LAST, &logits);
        t[k] = (time_now() - t0) * 1e3;
    }
    if (st == ST_OK) {
        out->n = n;
        out->tpot_ms = stats_median(t, 16);
        out->tpot_context = tpot_context;
        time_t now = time(NULL);
        strftime(out->date, sizeof out->date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    }
    tensor_free(&logits);
    clm_session_free(lm, sess);
    free(t);
    free(ids);
    return st;
}

double profile_ttft_ms(const LatencyProfile *p, int n_tokens) {
    if (p->n == 0) return 0;
    double x = n_tokens;
    if (x <= p->lengths[0]) return p->ttft_ms[0] * x / p->lengths[0];
    int i = 1;
    while (i < p->n - 1 && x > p->lengths[i]) i++;
    if (p->n == 1) return p->ttft_ms[0] * x / p->lengths[0];
    double x0 = p->lengths[i - 1], x1 = p->lengths[i], y0 = p->ttft_ms[i - 1], y1 = p->ttft_ms[i];
    double y = y0 + (y1 - y0) * (x - x0) / (x1 - x0);
    return y > 0 ? y : 0;
}

Status profile_store(const char *artifact, const LatencyProfile *p) {
    H5Store *f = NULL;
    TRY(h5_open_update(&f, artifact));
    char g[256], name[300];
    snprintf(g, sizeof g, "profile/%s", p->key);
    Status st = h5_exists(f, g) ? h5_delete(f, g) : ST_OK;
    int64_t shape[1] = {p->n};
    double lengths[PROFILE_MAX_LENGTHS];
    for (int i = 0; i < p->n; i++) lengths[i] = p->lengths[i];
    snprintf(name, sizeof name, "%s/lengths", g);
    if (st == ST_OK) st = h5_write_f64(f, name, 1, shape, lengths);
    snprintf(name, sizeof name, "%s/ttft_ms", g);
    if (st == ST_OK) st = h5_write_f64(f, name, 1, shape, p->ttft_ms);
    if (st == ST_OK) st = h5_set_attr_f64(f, g, "tpot_ms", p->tpot_ms);
    if (st == ST_OK) st = h5_set_attr_i64(f, g, "tpot_context", p->tpot_context);
    if (st == ST_OK) st = h5_set_attr_str(f, g, "device", p->device);
    if (st == ST_OK) st = h5_set_attr_str(f, g, "date", p->date);
    if (st != ST_OK) {
        h5_close(f);
        return st;
    }
    return h5_commit(f);
}

Status profile_load(const char *artifact, const char *key, LatencyProfile *p, bool *found) {
    memset(p, 0, sizeof *p);
    *found = false;
    H5Store *f = NULL;
    TRY(h5_open_read(&f, artifact));
    char g[256], name[300];
    snprintf(g, sizeof g, "profile/%s", key);
    if (!h5_exists(f, g)) {
        h5_close(f);
        return ST_OK;
    }
    snprintf(p->key, sizeof p->key, "%s", key);
    int64_t shape[1], shape2[1];
    double *len = NULL, *ttft = NULL;
    char *device = NULL, *date = NULL;
    int64_t ctx = 0;
    snprintf(name, sizeof name, "%s/lengths", g);
    Status st = h5_read_f64(f, name, 1, shape, &len);
    snprintf(name, sizeof name, "%s/ttft_ms", g);
    if (st == ST_OK) st = h5_read_f64(f, name, 1, shape2, &ttft);
    if (st == ST_OK && (shape[0] != shape2[0] || shape[0] < 1 || shape[0] > PROFILE_MAX_LENGTHS))
        st = status_fail(ST_FORMAT, "%s: %s: lengths and ttft_ms disagree or hold more than %d values", artifact, g,
                         PROFILE_MAX_LENGTHS);
    if (st == ST_OK) st = h5_get_attr_f64(f, g, "tpot_ms", &p->tpot_ms);
    if (st == ST_OK) st = h5_get_attr_i64(f, g, "tpot_context", &ctx);
    if (st == ST_OK) st = h5_get_attr_str(f, g, "device", &device);
    if (st == ST_OK) st = h5_get_attr_str(f, g, "date", &date);
    if (st == ST_OK) {
        p->n = (int)shape[0];
        for (int i = 0; i < p->n; i++) {
            p->lengths[i] = (int32_t)len[i];
            p->ttft_ms[i] = ttft[i];
            if (!(ttft[i] > 0) || (i && p->lengths[i] <= p->lengths[i - 1]))
                st = status_fail(ST_FORMAT, "%s: %s: lengths must ascend and times be positive", artifact, g);
        }
        if (!(p->tpot_ms > 0)) st = status_fail(ST_FORMAT, "%s: %s: tpot_ms must be positive", artifact, g);
        p->tpot_context = (int)ctx;
        snprintf(p->device, sizeof p->device, "%s", device);
        snprintf(p->date, sizeof p->date, "%s", date);
        *found = st == ST_OK;
    }
    free(len);
    free(ttft);
    free(device);
    free(date);
    h5_close(f);
    return st;
}

void profile_print(const LatencyProfile *p) {
    printf("profile %s (%s, measured %s)\n", p->key, p->device, p->date);
    printf("  prefill (TTFT) of the full model:");
    for (int i = 0; i < p->n; i++) printf(" %d tokens %.2f ms%s", p->lengths[i], p->ttft_ms[i], i + 1 < p->n ? "," : "");
    printf("\n  decode step (TPOT): %.2f ms at %d tokens of context\n", p->tpot_ms, p->tpot_context);
}
