// fp32 CPU implementations of the training ops (ops.h, "training"): the
// backward of each forward in ops_cpu.c, varlen attention with its backward,
// dropout, cross-entropy and the optimizer step. Same conventions as
// ops_cpu.c: BLAS on strided operands, OpenMP over independent rows; where
// many rows add into one gradient row (weights, embeddings, keys) the loop is
// split by columns or by owner instead, so no two threads write one element.
#include "ops_cpu.h"

#include <assert.h>
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dropout_hash.h"

#define ROWS(t) ((t)->shape[0])
#define COLS(t) ((t)->shape[1])
#define SAME_2D(a, b) assert((a)->ndim == 2 && (b)->ndim == 2 && ROWS(a) == ROWS(b) && COLS(a) == COLS(b))
#define COL_BLOCK 64 // columns per task when rows add into shared gradient rows

// ---- matmul ------------------------------------------------------------------

void cpu_matmul_add(Tensor *out, const Tensor *x, const Tensor *w, float alpha) {
    assert(out->ndim == 2 && x->ndim == 2 && w->ndim == 2);
    int64_t m = ROWS(x), k = COLS(x), n = ROWS(w);
    assert(COLS(w) == k && ROWS(out) == m && COLS(out) == n);
    if (w->dtype != DT_F32) { // low-bit weights (inference): the o and down projections add into the residual
        cpu_matmul_lowbit(out, x, w, alpha, 1.0f);
        return;
    }
    if (m == 0 || n == 0 || k == 0) return;
    if (m <= 2) { // decode: as in cpu_matmul, gemv streams w once
        for (int64_t i = 0; i < m; i++)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)n, (blasint)k, alpha, w->data, (blasint)tensor_ld(w),
                        tensor_row_f32(x, i), 1, 1.0f, tensor_row_f32(out, i), 1);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)n, (blasint)k, alpha, x->data,
                (blasint)tensor_ld(x), w->data, (blasint)tensor_ld(w), 1.0f, out->data, (blasint)tensor_ld(out));
}

// dout [M, N], x [M, K], w [N, K]; dx [M, K] += alpha dout w; dw [N, K] += alpha dout^T x.
void cpu_matmul_backward(Tensor *dx, Tensor *dw, const Tensor *dout, const Tensor *x, const Tensor *w, float alpha) {
    assert(dout->ndim == 2 && x->ndim == 2 && w->ndim == 2 && w->dtype == DT_F32); // training reads f32 weights
    int64_t m = ROWS(x), k = COLS(x), n = ROWS(w);
    assert(COLS(w) == k && ROWS(dout) == m && COLS(dout) == n);
    if (m == 0 || n == 0 || k == 0) return; // nothing to add
    if (dx) {
        SAME_2D(dx, x);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)m, (blasint)k, (blasint)n, alpha, dout->data,
                    (blasint)tensor_ld(dout), w->data, (blasint)tensor_ld(w), 1.0f, dx->data, (blasint)tensor_ld(dx));
    }
    if (dw) {
        SAME_2D(dw, w);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)n, (blasint)k, (blasint)m, alpha, dout->data,
                    (blasint)tensor_ld(dout), x->data, (blasint)tensor_ld(x), 1.0f, dw->data, (blasint)tensor_ld(dw));
    }
}

// ---- embedding, rmsnorm, rope, swiglu ----------------------------------------

// Repeated ids add into one table row, so threads split the columns, not the tokens.
void cpu_embedding_backward(Tensor *dtable, const Tensor *dout, const int32_t *ids) {
    assert(dtable->ndim == 2 && dout->ndim == 2 && COLS(dtable) == COLS(dout));
    int64_t n = ROWS(dout), d = COLS(dout), blocks = (d + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for if (n * d > 65536)
    for (int64_t b = 0; b < blocks; b++) {
        int64_t j0 = b * COL_BLOCK, j1 = j0 + COL_BLOCK < d ? j0 + COL_BLOCK : d;
        for (int64_t i = 0; i < n; i++) {
            assert(ids[i] < ROWS(dtable));
            if (ids[i] < 0) continue; // a row of zeros in the forward: no table row to update
            const float *g = tensor_row_f32(dout, i);
            float *t = tensor_row_f32(dtable, ids[i]);
            for (int64_t j = j0; j < j1; j++) t[j] += g[j];
        }
    }
}

// The forward's 1 / sqrt(mean(x^2) + eps), computed exactly as cpu_rmsnorm does.
static float rms_inv(const float *x, int64_t d, float eps) {
    double ss = 0.0;
    for (int64_t j = 0; j < d; j++) ss += (double)x[j] * x[j];
    return (float)(1.0 / sqrt(ss / (double)d + (double)eps));
}

// y = x r w with r = (mean(x^2) + eps)^-1/2:
//   dx_k += r w_k dy_k - x_k r^3 / D * sum_j dy_j w_j x_j
//   dw_j += sum_n dy_nj x_nj r_n
void cpu_rmsnorm_backward(Tensor *dx, Tensor *dw, const Tensor *dout, const Tensor *x, const Tensor *w, float eps) {
    SAME_2D(dx, x);
    SAME_2D(dout, x);
    int64_t n = ROWS(x), d = COLS(x);
    assert(w->shape[0] == d && (!dw || dw->shape[0] == d));
    const float *wd = w->data;
    float *r = malloc((size_t)(n > 0 ? n : 1) * sizeof(float)); // [N] the forward's r per row
    assert(r);
#pragma omp parallel for if (n > 4)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = tensor_row_f32(x, i), *gi = tensor_row_f32(dout, i);
        float *dxi = tensor_row_f32(dx, i);
        float ri = r[i] = rms_inv(xi, d, eps);
        double dot = 0.0;
        for (int64_t j = 0; j < d; j++) dot += (double)gi[j] * wd[j] * xi[j];
        float c = (float)(dot * ri * ri * ri / (double)d);
        for (int64_t j = 0; j < d; j++) dxi[j] += ri * wd[j] * gi[j] - xi[j] * c;
    }
    if (dw) {
        float *dwd = dw->data;
        int64_t blocks = (d + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for if (n * d > 65536)
        for (int64_t b = 0; b < blocks; b++) {
            int64_t j0 = b * COL_BLOCK, nj = d - j0 < COL_BLOCK ? d - j0 : COL_BLOCK;
            double acc[COL_BLOCK] = {0};
            for (int64_t i = 0; i < n; i++) {
                const float *xi = tensor_row_f32(x, i) + j0, *gi = tensor_row_f32(dout, i) + j0;
                for (int64_t j = 0; j < nj; j++) acc[j] += (double)gi[j] * xi[j] * r[i];
            }
            for (int64_t j = 0; j < nj; j++) dwd[j0 + j] += (float)acc[j];
        }
    }
    free(r);
}

// The forward rotates each pair (x_j, x_{j+half}) by +angle; the backward
// applies the transpose, a rotation by -angle, to the gradient in place.
void cpu_rope_backward(Tensor *dx, const int32_t *pos, const float *inv_freq, int n_heads, int head_dim) {
    assert(COLS(dx) == (int64_t)n_heads * head_dim && head_dim % 2 == 0);
    int64_t n = ROWS(dx);
    int half = head_dim / 2;
#pragma omp parallel for if (n > 4)
    for (int64_t i = 0; i < n; i++) {
        float *row = tensor_row_f32(dx, i);
        for (int j = 0; j < half; j++) {
            double angle = (double)pos[i] * (double)inv_freq[j]; // as in cpu_rope
            float c = (float)cos(angle), s = (float)sin(angle);
            for (int h = 0; h < n_heads; h++) {
                float *gh = row + (int64_t)h * head_dim;
                float a = gh[j], b = gh[j + half];
                gh[j] = a * c + b * s;
                gh[j + half] = b * c - a * s;
            }
        }
    }
}

// out = silu(g) u, silu(g) = g sig(g), silu'(g) = sig(g) (1 + g (1 - sig(g))).
void cpu_swiglu_backward(Tensor *dgate, Tensor *dup, const Tensor *dout, const Tensor *gate, const Tensor *up) {
    SAME_2D(dgate, gate);
    SAME_2D(dup, up);
    SAME_2D(dout, gate);
    SAME_2D(up, gate);
    int64_t n = ROWS(gate), f = COLS(gate);
#pragma omp parallel for if (n > 4)
    for (int64_t i = 0; i < n; i++) {
        const float *g = tensor_row_f32(gate, i), *u = tensor_row_f32(up, i), *dy = tensor_row_f32(dout, i);
        float *dg = tensor_row_f32(dgate, i), *du = tensor_row_f32(dup, i);
        for (int64_t j = 0; j < f; j++) {
            float sig = 1.0f / (1.0f + expf(-g[j]));
            du[j] += dy[j] * g[j] * sig;
            dg[j] += dy[j] * u[j] * sig * (1.0f + g[j] * (1.0f - sig));
        }
    }
}

// ---- varlen attention ----------------------------------------------------------
//
// Work unit: one sequence and one head (forward) or one kv head with its
// group of query heads (backward, so that dk and dv rows have one writer).
// Inside, queries go in blocks of VARLEN_QBLOCK; a block of nq queries starting
// at t0 sees keys [0, t0 + nq) of its sequence, so the score block is
// [nq, t0 + nq] with row i's keys j > t0 + i masked. Bidirectional (encoders):
// every block sees all T keys, [nq, T], nothing masked.
#define VARLEN_QBLOCK 64

typedef struct {
    int64_t row0; // the sequence's first row
    int T;        // its length
    int hd;
    float scale;  // 1 / sqrt(head_dim)
    bool causal;  // query t sees keys <= t; else all T
} SeqHead;

// The keys a block of nq queries from t0 sees: [0, nk).
static int block_keys(const SeqHead *sh, int t0, int nq) { return sh->causal ? t0 + nq : sh->T; }

static int varlen_max_len(const VarlenShape *s, int64_t n_rows) {
    assert(s->cu[0] == 0 && s->cu[s->n_seq] == n_rows);
    int max_t = 0;
    for (int b = 0; b < s->n_seq; b++) {
        assert(s->cu[b + 1] >= s->cu[b]);
        if (s->cu[b + 1] - s->cu[b] > max_t) max_t = s->cu[b + 1] - s->cu[b];
    }
    return max_t;
}

static void varlen_check(const Tensor *q, const Tensor *k, const Tensor *v, const VarlenShape *s) {
    assert(s->n_heads % s->n_kv_heads == 0);
    assert(q->ndim == 2 && COLS(q) == (int64_t)s->n_heads * s->head_dim);
    assert(k->ndim == 2 && COLS(k) == (int64_t)s->n_kv_heads * s->head_dim && ROWS(k) == ROWS(q));
    SAME_2D(v, k);
}

// S [nq, nk] (ld nk) = scale * Q K^T for Q [nq, hd] (ld ldq), K [nk, hd] (ld ldk).
static void scores_block(float *S, const float *Q, blasint ldq, const float *K, blasint ldk, int nq, int nk, int hd,
                         float scale) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd, scale, Q, ldq, K, ldk, 0.0f, S, nk);
}

// Softmax of S [nq, nk] in place, causal (query i of the block sees keys j <= t0 + i)
// or not (every key); lse_out[i] (may be NULL) = max + log(sum) of row i's visible scores.
static void softmax_block(float *S, int nq, int nk, int t0, bool causal, float *lse_out) {
    for (int i = 0; i < nq; i++) {
        float *row = S + (int64_t)i * nk, maxs = -INFINITY;
        int visible = causal ? t0 + i + 1 : nk; // >= 1: a query always sees itself
        for (int j = 0; j < visible; j++) maxs = row[j] > maxs ? row[j] : maxs;
        float sum = 0.0f;
        for (int j = 0; j < visible; j++) {
            row[j] = expf(row[j] - maxs);
            sum += row[j];
        }
        float inv = 1.0f / sum;
        for (int j = 0; j < visible; j++) row[j] *= inv;
        for (int j = visible; j < nk; j++) row[j] = 0.0f;
        if (lse_out) lse_out[i] = maxs + logf(sum);
    }
}

static void varlen_forward_head(Tensor *out, Tensor *lse, const Tensor *q, const Tensor *k, const Tensor *v,
                                const SeqHead *sh, int h, int kvh, float *S) {
    int hd = sh->hd;
    const float *K = tensor_row_f32(k, sh->row0) + (int64_t)kvh * hd, *V = tensor_row_f32(v, sh->row0) + (int64_t)kvh * hd;
    for (int t0 = 0; t0 < sh->T; t0 += VARLEN_QBLOCK) {
        int nq = sh->T - t0 < VARLEN_QBLOCK ? sh->T - t0 : VARLEN_QBLOCK, nk = block_keys(sh, t0, nq);
        int64_t row = sh->row0 + t0;
        const float *Q = tensor_row_f32(q, row) + (int64_t)h * hd;
        float *O = tensor_row_f32(out, row) + (int64_t)h * hd;
        scores_block(S, Q, (blasint)tensor_ld(q), K, (blasint)tensor_ld(k), nq, nk, hd, sh->scale);
        softmax_block(S, nq, nk, t0, sh->causal, lse ? tensor_row_f32(lse, h) + row : NULL);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, nk, 1.0f, S, nk, V, (blasint)tensor_ld(v), 0.0f, O,
                    (blasint)tensor_ld(out));
    }
}

void cpu_attention_varlen(Tensor *out, Tensor *lse, const Tensor *q, const Tensor *k, const Tensor *v,
                          const VarlenShape *s) {
    varlen_check(q, k, v, s);
    SAME_2D(out, q);
    assert(!lse || (lse->ndim == 2 && ROWS(lse) == s->n_heads && COLS(lse) == ROWS(q)));
    int max_t = varlen_max_len(s, ROWS(q)), group = s->n_heads / s->n_kv_heads;
    int qb = max_t < VARLEN_QBLOCK ? max_t : VARLEN_QBLOCK;
    int64_t work = (int64_t)s->n_seq * s->n_heads;
    if (max_t == 0) return;
#pragma omp parallel
    {
        float *S = malloc((size_t)qb * (size_t)max_t * sizeof(float)); // [qb, max_t] scores of one block
        assert(S);
#pragma omp for schedule(dynamic, 1)
        for (int64_t w = 0; w < work; w++) {
            int b = (int)(w / s->n_heads), h = (int)(w % s->n_heads);
            SeqHead sh = {s->cu[b], s->cu[b + 1] - s->cu[b], s->head_dim, 1.0f / sqrtf((float)s->head_dim),
                          !s->bidirectional};
            varlen_forward_head(out, lse, q, k, v, &sh, h, h / group, S);
        }
        free(S);
    }
}

// The operands of one query head's backward within one sequence: pointers at
// the sequence's first row and the head's columns, with their row strides.
typedef struct {
    const float *q, *k, *v, *o, *dout, *lse; // lse: this head's row, at the sequence's first query
    float *dq, *dk, *dv;
    blasint ldq, ldk, ldv, ldo, lddo, lddq, lddk, lddv;
} HeadGrad;

// One query block's backward: P from the saved lse, dP = dO V^T,
// dS = P (dP - rowsum(dO O)), then dQ += scale dS K, dK += scale dS^T Q, dV += P^T dO.
static void varlen_backward_block(const HeadGrad *g, const SeqHead *sh, int t0, int nq, float *P, float *dP) {
    int hd = sh->hd, nk = block_keys(sh, t0, nq);
    const float *Q = g->q + (int64_t)t0 * g->ldq, *O = g->o + (int64_t)t0 * g->ldo;
    const float *dO = g->dout + (int64_t)t0 * g->lddo;
    scores_block(P, Q, g->ldq, g->k, g->ldk, nq, nk, hd, sh->scale);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd, 1.0f, dO, g->lddo, g->v, g->ldv, 0.0f, dP, nk);
    for (int i = 0; i < nq; i++) {
        float *p = P + (int64_t)i * nk, *dp = dP + (int64_t)i * nk, lse = g->lse[t0 + i];
        const float *oi = O + (int64_t)i * g->ldo, *doi = dO + (int64_t)i * g->lddo;
        double di = 0.0; // D_i = dO_i . O_i
        for (int e = 0; e < hd; e++) di += (double)doi[e] * oi[e];
        int visible = sh->causal ? t0 + i + 1 : nk;
        for (int j = 0; j < visible; j++) {
            p[j] = expf(p[j] - lse);
            dp[j] = p[j] * (dp[j] - (float)di);
        }
        for (int j = visible; j < nk; j++) p[j] = dp[j] = 0.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, nk, sh->scale, dP, nk, g->k, g->ldk, 1.0f,
                g->dq + (int64_t)t0 * g->lddq, g->lddq);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, nq, sh->scale, dP, nk, Q, g->ldq, 1.0f, g->dk, g->lddk);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nk, hd, nq, 1.0f, P, nk, dO, g->lddo, 1.0f, g->dv, g->lddv);
}

static HeadGrad head_grad(Tensor *dq, Tensor *dk, Tensor *dv, const Tensor *dout, const Tensor *q, const Tensor *k,
                          const Tensor *v, const Tensor *out, const Tensor *lse, int64_t row0, int h, int kvh, int hd) {
    int64_t qc = (int64_t)h * hd, kc = (int64_t)kvh * hd;
    return (HeadGrad){
        .q = tensor_row_f32(q, row0) + qc, .k = tensor_row_f32(k, row0) + kc, .v = tensor_row_f32(v, row0) + kc,
        .o = tensor_row_f32(out, row0) + qc, .dout = tensor_row_f32(dout, row0) + qc,
        .lse = tensor_row_f32(lse, h) + row0,
        .dq = tensor_row_f32(dq, row0) + qc, .dk = tensor_row_f32(dk, row0) + kc, .dv = tensor_row_f32(dv, row0) + kc,
        .ldq = (blasint)tensor_ld(q), .ldk = (blasint)tensor_ld(k), .ldv = (blasint)tensor_ld(v),
        .ldo = (blasint)tensor_ld(out), .lddo = (blasint)tensor_ld(dout), .lddq = (blasint)tensor_ld(dq),
        .lddk = (blasint)tensor_ld(dk), .lddv = (blasint)tensor_ld(dv)};
}

void cpu_attention_varlen_backward(Tensor *dq, Tensor *dk, Tensor *dv, const Tensor *dout, const Tensor *q,
                                   const Tensor *k, const Tensor *v, const Tensor *out, const Tensor *lse,
                                   const VarlenShape *s) {
    varlen_check(q, k, v, s);
    SAME_2D(dq, q);
    SAME_2D(dout, q);
    SAME_2D(out, q);
    SAME_2D(dk, k);
    SAME_2D(dv, k);
    assert(lse && lse->ndim == 2 && ROWS(lse) == s->n_heads && COLS(lse) == ROWS(q));
    int max_t = varlen_max_len(s, ROWS(q)), group = s->n_heads / s->n_kv_heads;
    int qb = max_t < VARLEN_QBLOCK ? max_t : VARLEN_QBLOCK;
    int64_t work = (int64_t)s->n_seq * s->n_kv_heads;
    if (max_t == 0) return;
#pragma omp parallel
    {
        float *P = malloc(2 * (size_t)qb * (size_t)max_t * sizeof(float)); // [2, qb, max_t]: P and dP/dS
        assert(P);
#pragma omp for schedule(dynamic, 1)
        for (int64_t w = 0; w < work; w++) {
            int b = (int)(w / s->n_kv_heads), kvh = (int)(w % s->n_kv_heads);
            SeqHead sh = {s->cu[b], s->cu[b + 1] - s->cu[b], s->head_dim, 1.0f / sqrtf((float)s->head_dim),
                          !s->bidirectional};
            for (int h = kvh * group; h < (kvh + 1) * group; h++) {
                HeadGrad g = head_grad(dq, dk, dv, dout, q, k, v, out, lse, sh.row0, h, kvh, s->head_dim);
                for (int t0 = 0; t0 < sh.T; t0 += VARLEN_QBLOCK) {
                    int nq = sh.T - t0 < VARLEN_QBLOCK ? sh.T - t0 : VARLEN_QBLOCK;
                    varlen_backward_block(&g, &sh, t0, nq, P, P + (size_t)qb * (size_t)max_t);
                }
            }
        }
        free(P);
    }
}

// ---- dropout, cross-entropy ------------------------------------------------------

// A 1-d or 2-d tensor seen as rows: rows, cols and the row stride.
static void as_rows(const Tensor *t, int64_t *rows, int64_t *cols, int64_t *ld) {
    assert(t->ndim == 1 || t->ndim == 2);
    *rows = t->ndim == 2 ? ROWS(t) : 1;
    *cols = t->shape[t->ndim - 1];
    *ld = t->ndim == 2 ? tensor_ld(t) : *cols;
}

// out[n, j] = keep(seed, n, j) ? x[n, j] * scale : 0 (dropout_hash.h has the formula).
void cpu_dropout(Tensor *out, const Tensor *x, float p, uint64_t seed) {
    assert(p >= 0.0f && p < 1.0f && out->ndim == x->ndim);
    int64_t n, d, ldx, ldo, n_out, d_out;
    as_rows(x, &n, &d, &ldx);
    as_rows(out, &n_out, &d_out, &ldo);
    assert(n == n_out && d == d_out);
    float *xd = x->data, *od = out->data;
    if (p == 0.0f) {
        if (od == xd && ldo == ldx) return; // in place: nothing to do
        for (int64_t i = 0; i < n; i++) memmove(od + i * ldo, xd + i * ldx, (size_t)d * sizeof(float));
        return;
    }
    float scale = 1.0f / (1.0f - p);
#pragma omp parallel for if (n * d > 16384)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = xd + i * ldx;
        float *oi = od + i * ldo;
        uint64_t key = dropout_row_key(seed, (uint64_t)i);
        for (int64_t j = 0; j < d; j++) oi[j] = dropout_uniform(key, (uint64_t)j) >= p ? xi[j] * scale : 0.0f;
    }
}

// The loss -log softmax(x)[target] of one row; when d is not NULL (it may be x)
// it receives scale * (softmax(x) - onehot(target)). target >= 0 here.
static double cross_entropy_row(float *d, const float *x, int64_t V, int32_t target, float scale) {
    float maxv = -INFINITY, xt = x[target]; // read before d may overwrite x
    for (int64_t j = 0; j < V; j++) maxv = x[j] > maxv ? x[j] : maxv;
    double sum = 0.0;
    if (d) {
        for (int64_t j = 0; j < V; j++) {
            d[j] = expf(x[j] - maxv);
            sum += d[j];
        }
        float f = (float)(scale / sum);
        for (int64_t j = 0; j < V; j++) d[j] *= f;
        d[target] -= scale;
    } else {
        for (int64_t j = 0; j < V; j++) sum += expf(x[j] - maxv);
    }
    return (double)maxv + log(sum) - (double)xt;
}

double cpu_cross_entropy(Tensor *dlogits, const Tensor *logits, const int32_t *targets, float scale) {
    assert(logits->ndim == 2);
    if (dlogits) SAME_2D(dlogits, logits);
    int64_t n = ROWS(logits), V = COLS(logits);
    double total = 0.0;
#pragma omp parallel for reduction(+ : total) if (n > 1)
    for (int64_t i = 0; i < n; i++) {
        float *d = dlogits ? tensor_row_f32(dlogits, i) : NULL;
        assert(targets[i] < V);
        if (targets[i] < 0) { // ignored row: no loss, zero gradient
            if (d) memset(d, 0, (size_t)V * sizeof(float));
            continue;
        }
        total += cross_entropy_row(d, tensor_row_f32(logits, i), V, targets[i], scale);
    }
    return total;
}

// ---- norms, scaling, AdamW -----------------------------------------------------------

double cpu_sumsq(const Tensor *x) {
    int64_t n, d, ld;
    if (tensor_is_contiguous(x)) { // any rank: one flat run
        n = 1;
        d = ld = tensor_numel(x);
    } else {
        as_rows(x, &n, &d, &ld);
    }
    const float *xd = x->data;
    double total = 0.0;
    if (n == 1) {
#pragma omp parallel for reduction(+ : total) if (d > 65536)
        for (int64_t j = 0; j < d; j++) total += (double)xd[j] * xd[j];
        return total;
    }
#pragma omp parallel for reduction(+ : total) if (n * d > 65536)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) total += (double)xd[i * ld + j] * xd[i * ld + j];
    return total;
}

void cpu_scale(Tensor *x, float alpha) {
    int64_t n, d, ld;
    if (tensor_is_contiguous(x)) {
        n = 1;
        d = ld = tensor_numel(x);
    } else {
        as_rows(x, &n, &d, &ld);
    }
    float *xd = x->data;
    if (n == 1) {
#pragma omp parallel for if (d > 65536)
        for (int64_t j = 0; j < d; j++) xd[j] *= alpha;
        return;
    }
#pragma omp parallel for if (n * d > 65536)
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < d; j++) xd[i * ld + j] *= alpha;
}

// torch.optim.AdamW's single-tensor step: the scalars in double (Python floats),
// cast to float where torch hands them to a float kernel; the element math in float.
void cpu_adamw(Tensor *p, const Tensor *g, Tensor *m, Tensor *v, const AdamWStep *h) {
    int64_t n = tensor_numel(p);
    assert(tensor_is_contiguous(p) && tensor_is_contiguous(g) && tensor_is_contiguous(m) && tensor_is_contiguous(v));
    assert(tensor_numel(g) == n && tensor_numel(m) == n && tensor_numel(v) == n && h->t >= 1);
    double lr = h->lr, b1 = h->beta1, b2 = h->beta2;
    float decay = (float)(1.0 - lr * (double)h->weight_decay);
    float w1 = (float)(1.0 - b1), fb2 = h->beta2, w2 = (float)(1.0 - b2), eps = h->eps;
    double bc1 = 1.0 - pow(b1, (double)h->t), bc2 = 1.0 - pow(b2, (double)h->t);
    float step = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    float *pd = p->data, *md = m->data, *vd = v->data;
    const float *gd = g->data;
#pragma omp parallel for if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float gi = gd[i];
        pd[i] *= decay;
        md[i] += w1 * (gi - md[i]); // torch: exp_avg.lerp_(grad, 1 - beta1)
        vd[i] = vd[i] * fb2 + w2 * (gi * gi);
        float denom = sqrtf(vd[i]) / bc2_sqrt + eps;
        pd[i] += -step * (md[i] / denom);
    }
}
