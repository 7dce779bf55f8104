// fp32 CPU implementations of the ops. Rows are independent in every op but
// matmul, so the loops over rows are split across OpenMP threads; matmul is
// OpenBLAS sgemm on the strided operands.
#include "ops_cpu.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROWS(t) ((t)->shape[0])
#define COLS(t) ((t)->shape[1])
#define SAME_2D(a, b) assert((a)->ndim == 2 && (b)->ndim == 2 && ROWS(a) == ROWS(b) && COLS(a) == COLS(b))

void cpu_embedding(Tensor *out, const Tensor *table, const int32_t *ids) {
    assert(COLS(out) == COLS(table));
    int64_t n = ROWS(out), d = COLS(out);
#pragma omp parallel for if (n > 16)
    for (int64_t i = 0; i < n; i++) {
        assert(ids[i] >= 0 && ids[i] < ROWS(table));
        memcpy(tensor_row_f32(out, i), tensor_row_f32(table, ids[i]), (size_t)d * sizeof(float));
    }
}

void cpu_rmsnorm(Tensor *out, const Tensor *x, const Tensor *w, float eps) {
    SAME_2D(out, x);
    int64_t n = ROWS(x), d = COLS(x);
    assert(w->shape[0] == d);
    const float *wd = w->data;
#pragma omp parallel for if (n > 4)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = tensor_row_f32(x, i);
        float *oi = tensor_row_f32(out, i);
        double ss = 0.0; // accumulate in double: the row can be long
        for (int64_t j = 0; j < d; j++) ss += (double)xi[j] * xi[j];
        float scale = (float)(1.0 / sqrt(ss / (double)d + (double)eps));
        for (int64_t j = 0; j < d; j++) oi[j] = (xi[j] * scale) * wd[j];
    }
}

void cpu_matmul(Tensor *out, const Tensor *x, const Tensor *w) {
    assert(out->ndim == 2 && x->ndim == 2 && w->ndim == 2);
    int64_t m = ROWS(x), k = COLS(x), n = ROWS(w);
    assert(COLS(w) == k && ROWS(out) == m && COLS(out) == n);
    if (m == 0 || n == 0) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)n, (blasint)k, 1.0f, x->data,
                (blasint)tensor_ld(x), w->data, (blasint)tensor_ld(w), 0.0f, out->data, (blasint)tensor_ld(out));
}

void cpu_rope(Tensor *x, const int32_t *pos, const float *inv_freq, int n_heads, int head_dim) {
    assert(COLS(x) == (int64_t)n_heads * head_dim && head_dim % 2 == 0);
    int64_t n = ROWS(x);
    int half = head_dim / 2;
#pragma omp parallel for if (n > 4)
    for (int64_t i = 0; i < n; i++) {
        float *row = tensor_row_f32(x, i);
        for (int j = 0; j < half; j++) {
            // The angle in double: positions reach 10^5 and inv_freq[0] = 1.
            double angle = (double)pos[i] * (double)inv_freq[j];
            float c = (float)cos(angle), s = (float)sin(angle);
            for (int h = 0; h < n_heads; h++) {
                float *xh = row + (int64_t)h * head_dim;
                float a = xh[j], b = xh[j + half];
                xh[j] = a * c - b * s;
                xh[j + half] = b * c + a * s;
            }
        }
    }
}

// One query row against the visible keys of its sequence.
static void attend_one(float *out, const float *q, const Tensor *k, const Tensor *v, const int32_t *kmask,
                       int64_t key_base, int n_visible, int kv_col, int head_dim, float *scores) {
    float scale = 1.0f / sqrtf((float)head_dim), maxs = -INFINITY;
    for (int j = 0; j < n_visible; j++) {
        if (!kmask[key_base + j]) { scores[j] = -INFINITY; continue; }
        const float *kj = tensor_row_f32(k, key_base + j) + kv_col;
        float dot = 0.0f;
        for (int d = 0; d < head_dim; d++) dot += q[d] * kj[d];
        scores[j] = dot * scale;
        if (scores[j] > maxs) maxs = scores[j];
    }
    memset(out, 0, (size_t)head_dim * sizeof(float));
    if (maxs == -INFINITY) return; // nothing visible: a padding query
    float sum = 0.0f;
    for (int j = 0; j < n_visible; j++) {
        scores[j] = scores[j] == -INFINITY ? 0.0f : expf(scores[j] - maxs);
        sum += scores[j];
    }
    float inv = 1.0f / sum;
    for (int j = 0; j < n_visible; j++) {
        if (scores[j] == 0.0f) continue;
        const float *vj = tensor_row_f32(v, key_base + j) + kv_col;
        float p = scores[j] * inv;
        for (int d = 0; d < head_dim; d++) out[d] += p * vj[d];
    }
}

void cpu_attention(Tensor *out, const Tensor *q, const Tensor *k, const Tensor *v, const int32_t *kmask,
                   const AttentionShape *s) {
    assert(s->n_heads % s->n_kv_heads == 0 && s->n_past + s->T <= s->cap);
    assert(COLS(q) == (int64_t)s->n_heads * s->head_dim && COLS(k) == (int64_t)s->n_kv_heads * s->head_dim);
    SAME_2D(out, q);
    int group = s->n_heads / s->n_kv_heads;
    int64_t work = (int64_t)s->n_seq * s->n_heads * s->T;
#pragma omp parallel
    {
        float *scores = malloc((size_t)(s->n_past + s->T) * sizeof(float));
#pragma omp for schedule(dynamic, 4)
        for (int64_t w = 0; w < work; w++) {
            int t = (int)(w % s->T), h = (int)((w / s->T) % s->n_heads), b = (int)(w / ((int64_t)s->T * s->n_heads));
            int64_t row = (int64_t)b * s->T + t;
            int col = h * s->head_dim, kv_col = (h / group) * s->head_dim;
            attend_one(tensor_row_f32(out, row) + col, tensor_row_f32(q, row) + col, k, v, kmask,
                       (int64_t)b * s->cap, s->n_past + t + 1, kv_col, s->head_dim, scores);
        }
        free(scores);
    }
}

void cpu_swiglu(Tensor *out, const Tensor *gate, const Tensor *up) {
    SAME_2D(out, gate);
    SAME_2D(out, up);
    int64_t n = ROWS(out), f = COLS(out);
#pragma omp parallel for if (n > 4)
    for (int64_t i = 0; i < n; i++) {
        const float *g = tensor_row_f32(gate, i), *u = tensor_row_f32(up, i);
        float *o = tensor_row_f32(out, i);
        for (int64_t j = 0; j < f; j++) o[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
    }
}

void cpu_add(Tensor *out, const Tensor *a, const Tensor *b) {
    SAME_2D(out, a);
    SAME_2D(out, b);
    int64_t n = ROWS(out), d = COLS(out);
#pragma omp parallel for if (n > 16)
    for (int64_t i = 0; i < n; i++) {
        const float *x = tensor_row_f32(a, i), *y = tensor_row_f32(b, i);
        float *o = tensor_row_f32(out, i);
        for (int64_t j = 0; j < d; j++) o[j] = x[j] + y[j];
    }
}

void cpu_log_softmax(Tensor *out, const Tensor *x) {
    SAME_2D(out, x);
    int64_t n = ROWS(x), d = COLS(x);
#pragma omp parallel for if (n > 1)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = tensor_row_f32(x, i);
        float *oi = tensor_row_f32(out, i);
        float maxv = -INFINITY;
        for (int64_t j = 0; j < d; j++) maxv = xi[j] > maxv ? xi[j] : maxv;
        double sum = 0.0;
        for (int64_t j = 0; j < d; j++) sum += exp((double)(xi[j] - maxv));
        float lse = maxv + (float)log(sum);
        for (int64_t j = 0; j < d; j++) oi[j] = xi[j] - lse;
    }
}
