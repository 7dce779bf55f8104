// Level tables and permutations.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elastic.h"
#include "runtime/rng.h"

// The artifact's level -> pruning ratio table (LLMPruner/scripts/*/0X.sh).
static const LevelSpec ARTIFACT_LEVELS[] = {{0.2, 0.9},   {0.3, 0.875}, {0.4, 0.75},  {0.5, 0.625}, {0.6, 0.5},
                                            {0.7, 0.375}, {0.8, 0.25},  {0.9, 0.125}, {1.0, 0.0}};
#define N_ARTIFACT ((int)(sizeof ARTIFACT_LEVELS / sizeof *ARTIFACT_LEVELS))

int levels_default(LevelSpec *out, int cap) {
    int n = N_ARTIFACT < cap ? N_ARTIFACT : cap;
    memcpy(out, ARTIFACT_LEVELS, (size_t)n * sizeof *out);
    return n;
}

Status levels_parse(const char *text, LevelSpec *out, int cap, int *n) {
    *n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        double r = strtod(p, &end);
        if (end == p || !(r > 0 && r <= 1) || (*end && *end != ','))
            return status_fail(ST_USAGE, "--levels: expected numbers in (0, 1] separated by commas, got \"%s\"", text);
        if (*n == cap) return status_fail(ST_USAGE, "--levels: at most %d levels", cap);
        double ratio = fmin(0.9, 1.25 * (1.0 - r));
        for (int i = 0; i < N_ARTIFACT; i++)
            if (fabs(ARTIFACT_LEVELS[i].level - r) < 1e-9) ratio = ARTIFACT_LEVELS[i].ratio;
        out[(*n)++] = (LevelSpec){r, ratio};
        p = *end ? end + 1 : end;
    }
    if (*n == 0) return status_fail(ST_USAGE, "--levels: no level given");
    return ST_OK;
}

void level_widths(const LlamaConfig *c, const uint8_t *anchor, double ratio, LlamaWidth *out) {
    int hd = c->head_dim, C = c->n_kv_heads * hd;
    int keep_ch = (int)((double)C * (1.0 - ratio)); // Python's int(C * (1 - p))
    int kv = c->n_kv_heads - (C - keep_ch) / hd;
    int ffn = (int)((double)c->ffn_dim * (1.0 - ratio));
    if (kv < 1) kv = 1;
    if (ffn < 1) ffn = 1;
    for (int l = 0; l < c->n_layers; l++)
        out[l] = anchor && anchor[l] ? (LlamaWidth){c->n_kv_heads, c->ffn_dim} : (LlamaWidth){kv, ffn};
}

// ---- permutations -------------------------------------------------------------------

static Status perm_alloc(Permutation *p, int L, int n_kv, int ffn) {
    memset(p, 0, sizeof *p);
    p->n_layers = L, p->n_kv = n_kv, p->ffn = ffn;
    p->attn = malloc((size_t)L * (size_t)n_kv * sizeof *p->attn);
    p->mlp = malloc((size_t)L * (size_t)ffn * sizeof *p->mlp);
    if (!p->attn || !p->mlp) {
        permutation_free(p);
        return status_fail(ST_OOM, "out of memory");
    }
    for (int l = 0; l < L; l++) {
        for (int i = 0; i < n_kv; i++) p->attn[(size_t)l * n_kv + i] = i;
        for (int i = 0; i < ffn; i++) p->mlp[(size_t)l * ffn + i] = i;
    }
    return ST_OK;
}

void permutation_free(Permutation *p) {
    free(p->attn), free(p->mlp);
    memset(p, 0, sizeof *p);
}

static const double *g_scores; // qsort has no context argument
static int by_score_desc(const void *a, const void *b) {
    int i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (g_scores[i] > g_scores[j]) return -1;
    if (g_scores[i] < g_scores[j]) return 1;
    return (i > j) - (i < j); // stable
}

Status permutation_from_importance(const Importance *imp, const uint8_t *anchor, Permutation *p) {
    TRY(perm_alloc(p, imp->n_layers, imp->n_kv, imp->ffn));
    for (int l = 0; l < imp->n_layers; l++) {
        if (anchor && anchor[l]) continue;
        g_scores = imp->attn + (size_t)l * imp->n_kv;
        qsort(p->attn + (size_t)l * imp->n_kv, (size_t)imp->n_kv, sizeof *p->attn, by_score_desc);
        g_scores = imp->mlp + (size_t)l * imp->ffn;
        qsort(p->mlp + (size_t)l * imp->ffn, (size_t)imp->ffn, sizeof *p->mlp, by_score_desc);
    }
    return ST_OK;
}


Status permutation_random(int n_layers, int n_kv, int ffn, const uint8_t *anchor, uint64_t seed, Permutation *p) {
    TRY(perm_alloc(p, n_layers, n_kv, ffn));
    Rng rng;
    rng_seed(&rng, seed);
    for (int l = 0; l < n_layers; l++) {
        if (anchor && anchor[l]) continue;
        rng_shuffle(&rng, p->attn + (size_t)l * n_kv, (size_t)n_kv, sizeof *p->attn);
        rng_shuffle(&rng, p->mlp + (size_t)l * ffn, (size_t)ffn, sizeof *p->mlp);
    }
    return ST_OK;
}

// dst row i = src row order[i / block] * block + i % block (whole blocks move).
static Status permute_rows(Tensor *w, const int32_t *order, int64_t block) {
    Tensor out;
    TRY(tensor_alloc_2d(&out, DT_F32, w->dev, w->shape[0], w->shape[1]));
    for (int64_t i = 0; i < w->shape[0]; i++)
        memcpy(tensor_row_f32(&out, i), tensor_row_f32(w, order[i / block] * block + i % block),
               (size_t)w->shape[1] * sizeof(float));
    tensor_free(w);
    *w = out;
    return ST_OK;
}

static Status permute_cols(Tensor *w, const int32_t *order, int64_t block) {
    Tensor out;
    TRY(tensor_alloc_2d(&out, DT_F32, w->dev, w->shape[0], w->shape[1]));
    for (int64_t r = 0; r < w->shape[0]; r++) {
        const float *src = tensor_row_f32(w, r);
        float *dst = tensor_row_f32(&out, r);
        for (int64_t j = 0; j < w->shape[1]; j++) dst[j] = src[order[j / block] * block + j % block];
    }
    tensor_free(w);
    *w = out;
    return ST_OK;
}

Status permutation_apply(LlamaModel *m, const Permutation *p) {
    const LlamaConfig *c = &m->cfg;
    TRY(llama_require_f32(m, "reordering by an artifact (convert the weights after it)"));
    if (p->n_layers != c->n_layers || p->n_kv != c->n_kv_heads || p->ffn != c->ffn_dim)
        return status_fail(ST_FORMAT, "the permutation is for %d layers, %d KV heads, %d FFN channels; the model has "
                                      "%d, %d, %d", p->n_layers, p->n_kv, p->ffn, c->n_layers, c->n_kv_heads, c->ffn_dim);
    int hd = c->head_dim, grp = c->n_heads / c->n_kv_heads;
    for (int l = 0; l < c->n_layers; l++) {
        const int32_t *a = p->attn + (size_t)l * p->n_kv, *f = p->mlp + (size_t)l * p->ffn;
        bool identity = true;
        for (int i = 0; i < p->n_kv && identity; i++) identity = a[i] == i;
        for (int i = 0; i < p->ffn && identity; i++) identity = f[i] == i;
        if (identity) continue;
        LlamaLayer *ly = &m->layers[l];
        TRY(permute_rows(&ly->wq, a, (int64_t)grp * hd));
        TRY(permute_rows(&ly->wk, a, hd));
        TRY(permute_rows(&ly->wv, a, hd));
        TRY(permute_cols(&ly->wo, a, (int64_t)grp * hd));
        TRY(permute_rows(&ly->w_gate, f, 1));
        TRY(permute_rows(&ly->w_up, f, 1));
        TRY(permute_cols(&ly->w_down, f, 1));
    }
    return ST_OK;
}
