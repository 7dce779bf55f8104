// fp32 CPU implementations of the ops. Rows are independent in every op but
// matmul, so the loops over rows are split across OpenMP threads; matmul is
// OpenBLAS sgemm on the strided operands. Low-bit weights (bf16, q8_0) go to
// ops_cpu_lowbit.c.
#include "ops_cpu.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROWS(t) ((t)->shape[0])
#define COLS(t) ((t)->shape[1])
#define SAME_2D(a, b) assert((a)->ndim == 2 && (b)->ndim == 2 && ROWS(a) == ROWS(b) && COLS(a) == COLS(b))

// A negative id gives a row of zeros (ops.h). Low-bit tables are widened run by
// run of real ids (ops_cpu_lowbit.c), the rows between set to zero here.
void cpu_embedding(Tensor *out, const Tensor *table, const int32_t *ids) {
    assert(COLS(out) == COLS(table));
    int64_t n = ROWS(out), d = COLS(out);
    if (table->dtype != DT_F32) {
        for (int64_t i = 0; i < n;) {
            int64_t j = i;
            while (j < n && ids[j] >= 0) j++;
            if (j > i) {
                Tensor run = tensor_rows(out, i, j - i);
                cpu_embedding_lowbit(&run, table, ids + i);
            }
            for (; j < n && ids[j] < 0; j++) memset(tensor_row_f32(out, j), 0, (size_t)d * sizeof(float));
            i = j;
        }
        return;
    }
#pragma omp parallel for if (n > 16)
    for (int64_t i = 0; i < n; i++) {
        assert(ids[i] < ROWS(table));
        if (ids[i] < 0) memset(tensor_row_f32(out, i), 0, (size_t)d * sizeof(float));
        else memcpy(tensor_row_f32(out, i), tensor_row_f32(table, ids[i]), (size_t)d * sizeof(float));
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
    if (w->dtype != DT_F32) {
        cpu_matmul_lowbit(out, x, w, 1.0f, 0.0f);
        return;
    }
    if (m == 0 || n == 0) return;
    if (m <= 2) { // decode: sgemm would pack all of w for one row; gemv streams it once
        for (int64_t i = 0; i < m; i++)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)n, (blasint)k, 1.0f, w->data, (blasint)tensor_ld(w),
                        tensor_row_f32(x, i), 1, 0.0f, tensor_row_f32(out, i), 1);
        return;
    }
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

// Attention of one (sequence, head) over a block of queries, with BLAS:
// S = Q K^T * scale over the keys the block can see, masked softmax per row,
// then O = P V. Q rows are t0..t0+nq of sequence b; keys 0..n_keys of its
// cache, the first sh->n of them from the shared prefix when there is one.
#define ATTN_QBLOCK 64

typedef struct {
    const float *k, *v; // first key / value row (at this head's columns)
    const int32_t *mask;
    blasint ldk, ldv;
    int from, n;        // key indices [from, from + n)
} KeyRange;

// scores[:, r.from : r.from + r.n] = scale * Q K_r^T
static void range_scores(const KeyRange *r, const float *qp, blasint ldq, int nq, int hd, float scale, float *scores,
                         int n_keys) {
    if (r->n <= 0) return;
    if (nq == 1)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, r->n, hd, scale, r->k, r->ldk, qp, 1, 0.0f, scores + r->from, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, r->n, hd, scale, qp, ldq, r->k, r->ldk, 0.0f,
                    scores + r->from, n_keys);
}

// O (+)= P[:, r.from : r.from + r.n] V_r
static void range_values(const KeyRange *r, const float *scores, int n_keys, int nq, int hd, float beta, float *op,
                         blasint ldo) {
    if (r->n <= 0) return;
    if (nq == 1)
        cblas_sgemv(CblasRowMajor, CblasTrans, r->n, hd, 1.0f, r->v, r->ldv, scores + r->from, 1, beta, op, 1);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, r->n, 1.0f, scores + r->from, n_keys, r->v, r->ldv,
                    beta, op, ldo);
}

static void masked_softmax_rows(float *scores, int nq, int n_keys, int first_visible, const KeyRange *r, int n_ranges) {
    for (int i = 0; i < nq; i++) {
        float *row = scores + (int64_t)i * n_keys, maxs = -INFINITY;
        int visible = first_visible + i; // causal: keys up to the query's own index
        for (int g = 0; g < n_ranges; g++)
            for (int j = r[g].from; j < r[g].from + r[g].n; j++) {
                if (j >= visible || !r[g].mask[j - r[g].from]) row[j] = -INFINITY;
                else if (row[j] > maxs) maxs = row[j];
            }
        if (maxs == -INFINITY) { // a padding query sees nothing
            memset(row, 0, (size_t)n_keys * sizeof(float));
            continue;
        }
        float sum = 0.0f;
        for (int j = 0; j < n_keys; j++) {
            row[j] = expf(row[j] - maxs); // exp(-inf) = 0 for the masked keys
            sum += row[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < n_keys; j++) row[j] *= inv;
    }
}

static void attend_block(Tensor *out, const Tensor *q, const Tensor *k, const Tensor *v, const int32_t *kmask,
                         const AttentionShape *s, const SharedKV *sh, int b, int h, int t0, int nq, float *scores) {
    int hd = s->head_dim, group = s->n_heads / s->n_kv_heads, n_keys = s->n_past + t0 + nq;
    int64_t q_row = (int64_t)b * s->T + t0, k_row = (int64_t)b * s->cap, col = (int64_t)(h / group) * hd;
    int n_sh = sh ? sh->n : 0;
    KeyRange r[2] = {{0}, {0}};
    if (n_sh > 0)
        r[0] = (KeyRange){tensor_row_f32(sh->k, sh->row0) + col, tensor_row_f32(sh->v, sh->row0) + col, sh->mask + sh->row0,
                          (blasint)tensor_ld(sh->k), (blasint)tensor_ld(sh->v), 0, n_sh};
    // the sequence's own rows hold keys n_sh, n_sh + 1, ... from its first row on
    r[1] = (KeyRange){tensor_row_f32(k, k_row) + col, tensor_row_f32(v, k_row) + col, kmask + k_row,
                      (blasint)tensor_ld(k), (blasint)tensor_ld(v), n_sh, n_keys - n_sh};
    const float *qp = tensor_row_f32(q, q_row) + (int64_t)h * hd;
    float *op = tensor_row_f32(out, q_row) + (int64_t)h * hd;
    float scale = 1.0f / sqrtf((float)hd);
    for (int g = 0; g < 2; g++) range_scores(&r[g], qp, (blasint)tensor_ld(q), nq, hd, scale, scores, n_keys);
    masked_softmax_rows(scores, nq, n_keys, s->n_past + t0 + 1, r, 2);
    blasint ldo = (blasint)tensor_ld(out);
    range_values(&r[0], scores, n_keys, nq, hd, 0.0f, op, ldo);
    range_values(&r[1], scores, n_keys, nq, hd, n_sh > 0 ? 1.0f : 0.0f, op, ldo);
}

void cpu_attention(Tensor *out, const Tensor *q, const Tensor *k, const Tensor *v, const int32_t *kmask,
                   const AttentionShape *s, const SharedKV *shared) {
    int n_sh = shared ? shared->n : 0;
    assert(s->n_heads % s->n_kv_heads == 0 && n_sh <= s->n_past && s->n_past - n_sh + s->T <= s->cap);
    assert(COLS(q) == (int64_t)s->n_heads * s->head_dim && COLS(k) == (int64_t)s->n_kv_heads * s->head_dim);
    SAME_2D(out, q);
    int blocks = (s->T + ATTN_QBLOCK - 1) / ATTN_QBLOCK;
    int64_t work = (int64_t)s->n_seq * s->n_heads * blocks;
    int qb = s->T < ATTN_QBLOCK ? s->T : ATTN_QBLOCK;
#pragma omp parallel
    {
        float *scores = malloc((size_t)qb * (size_t)(s->n_past + s->T) * sizeof(float));
#pragma omp for schedule(dynamic, 1)
        for (int64_t w = 0; w < work; w++) {
            int blk = (int)(w % blocks), h = (int)((w / blocks) % s->n_heads), b = (int)(w / ((int64_t)blocks * s->n_heads));
            int t0 = blk * ATTN_QBLOCK, nq = s->T - t0 < ATTN_QBLOCK ? s->T - t0 : ATTN_QBLOCK;
            attend_block(out, q, k, v, kmask, s, shared, b, h, t0, nq, scores);
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
