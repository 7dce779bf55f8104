// Contextual sparsity on the CPU (ops.h, "contextual sparsity"): the top-k
// neurons of each row of predictor scores, and the SwiGLU FFN over them.
//
// cpu_topk_rows: per row an exact radix select on order-preserving 32-bit keys
// of the scores (4 passes of 8 bits, a 256-bin histogram each), then one pass
// in index order that keeps the keys above the k-th largest and, of the keys
// equal to it, the lowest indices: O(5 F) per row, ascending output without a
// sort. cuda/sparse_ffn.cu runs the same algorithm, so the backends select
// identical sets. Rows are split over the OpenMP threads.
//
// cpu_ffn_sparse, two strategies:
//  - gathered (N <= SPARSE_GATHER_MAX_ROWS rows: decode): phase 1 computes
//    h[n, i] = silu(x[n] . w_gate[j]) * (x[n] . w_up[j]) for j = idx[n, i],
//    one fused pass over x and both weight rows per neuron, the (row, neuron)
//    pairs split over the threads; phase 2 accumulates h[n, i] * w_down_t[j, :]
//    over i in order, each thread owning a contiguous range of the D columns
//    (16-aligned), then adds the sum into out. Only the k selected rows of the
//    three matrices are read: the work is k/F of the dense FFN's. Every output
//    element is summed in the same order whatever the thread count, so the
//    result does not depend on it. The inner loops are AVX2+FMA when the CPU
//    has them (and ELASTILM_CPU_ISA / cpu_lowbit_set_isa allow: the cap of the
//    low-bit kernels, ops_cpu.h), else portable loops (OpenMP simd);
//  - dense (more rows: prefill): per block of SPARSE_DENSE_BLOCK rows, two
//    sgemms for the gate and up projections of ALL F neurons, h = silu(g) * u,
//    every neuron not listed in the row's idx set to zero (a listed one added
//    once per listing), then one sgemm out += h @ w_down_t. The same sum with
//    zeros for the unselected terms; the cost is the dense FFN's (sgemm on many
//    rows beats re-reading k scattered weight rows per token).
#include <assert.h>
#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "ops_cpu.h"

// Rows up to which cpu_ffn_sparse gathers the selected neurons; above it the
// dense sgemm path. At 4 rows the gathered path reads 4 k scattered rows per
// matrix, while sgemm's packing already pays off (ops_cpu.c switches from gemv
// to sgemm above 2 rows).
#define SPARSE_GATHER_MAX_ROWS 4
// Rows per block of the dense path: its scratch is 2 * block * F floats.
#define SPARSE_DENSE_BLOCK 128

#define ROWS(t) ((t)->shape[0])
#define COLS(t) ((t)->shape[1])

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) { // ops have no status: running out of memory for scratch is fatal here
        fprintf(stderr, "elastilm: out of memory (%zu bytes of sparse FFN scratch)\n", bytes);
        abort();
    }
    return p;
}

static inline int32_t *i32_row(const Tensor *t, int64_t r) { return (int32_t *)t->data + r * t->stride[0]; }

// ---- top-k ------------------------------------------------------------------------

// A key whose unsigned order is the scores' order: NaN as -inf, -0 as +0 (so
// that equal values tie and go to the lower index).
static inline uint32_t order_key(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) u = 0xff800000u; // NaN -> -inf
    if ((u & 0x7fffffffu) == 0) u = 0;                     // -0 -> +0
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

static void topk_row(const float *s, int64_t f, int64_t k, uint32_t *keys, int32_t *out) {
    for (int64_t j = 0; j < f; j++) keys[j] = order_key(s[j]);
    // The k-th largest key, 8 bits at a time from the top; need = its rank among
    // the keys that share the bits decided so far.
    uint32_t prefix = 0, mask = 0;
    int64_t need = k;
    for (int shift = 24; shift >= 0; shift -= 8) {
        int64_t hist[256] = {0};
        for (int64_t j = 0; j < f; j++)
            if ((keys[j] & mask) == prefix) hist[(keys[j] >> shift) & 255u]++;
        int b = 255;
        for (; b > 0 && hist[b] < need; b--) need -= hist[b];
        prefix |= (uint32_t)b << shift;
        mask |= 255u << shift;
    }
    // prefix is the k-th largest key; the first `need` keys equal to it are taken.
    int64_t o = 0;
    for (int64_t j = 0; j < f; j++)
        if (keys[j] > prefix || (keys[j] == prefix && need-- > 0)) out[o++] = (int32_t)j;
    assert(o == k);
    (void)o;
}

void cpu_topk_rows(Tensor *idx, const Tensor *scores) {
    assert(idx->ndim == 2 && scores->ndim == 2 && idx->dtype == DT_I32 && scores->dtype == DT_F32);
    assert(scores->dev.kind == DEV_CPU && idx->dev.kind == DEV_CPU);
    int64_t n = ROWS(scores), f = COLS(scores), k = COLS(idx);
    assert(ROWS(idx) == n && k >= 1 && k <= f && f <= INT32_MAX);
    assert(k <= 1 || idx->stride[1] == 1);
#pragma omp parallel if (n > 1 && n * f >= 65536)
    {
        uint32_t *keys = xmalloc((size_t)f * sizeof *keys);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < n; r++) topk_row(tensor_row_f32(scores, r), f, k, keys, i32_row(idx, r));
        free(keys);
    }
}

// ---- kernels of the gathered path --------------------------------------------------

// *ga = x . a, *gb = x . b over d elements.
typedef void (*Dot2Fn)(const float *x, const float *a, const float *b, int64_t d, float *ga, float *gb);
// y[c] += h[0] r[0][c] + h[1] r[1][c] + ... (in this order, nr <= 4 rows) over d elements.
typedef void (*AxpyRowsFn)(float *y, const float *h, const float *const *r, int nr, int64_t d);

static void dot2_portable(const float *x, const float *a, const float *b, int64_t d, float *ga, float *gb) {
    float sa = 0.0f, sb = 0.0f;
#pragma omp simd reduction(+ : sa, sb)
    for (int64_t c = 0; c < d; c++) {
        sa += x[c] * a[c];
        sb += x[c] * b[c];
    }
    *ga = sa, *gb = sb;
}

static void axpy_rows_portable(float *y, const float *h, const float *const *r, int nr, int64_t d) {
    for (int q = 0; q < nr; q++) {
        const float *rq = r[q];
        float hq = h[q];
#pragma omp simd
        for (int64_t c = 0; c < d; c++) y[c] += hq * rq[c];
    }
}

#define AVX2 __attribute__((target("avx2,fma")))

AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2 static void dot2_avx2(const float *x, const float *a, const float *b, int64_t d, float *ga, float *gb) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= d; c += 16) {
        __m256 x0 = _mm256_loadu_ps(x + c), x1 = _mm256_loadu_ps(x + c + 8);
        a0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(a + c), a0);
        a1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(a + c + 8), a1);
        b0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(b + c), b0);
        b1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(b + c + 8), b1);
    }
    for (; c + 8 <= d; c += 8) {
        __m256 x0 = _mm256_loadu_ps(x + c);
        a0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(a + c), a0);
        b0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(b + c), b0);
    }
    float sa = hsum8(_mm256_add_ps(a0, a1)), sb = hsum8(_mm256_add_ps(b0, b1));
    for (; c < d; c++) {
        sa = fmaf(x[c], a[c], sa);
        sb = fmaf(x[c], b[c], sb);
    }
    *ga = sa, *gb = sb;
}

// Every element gets the same chain of FMAs (h[0], h[1], ... in order) in the
// vector body and in the tail, so a column's sum does not depend on where a
// thread's column range starts or ends.
AVX2 static void axpy_rows_avx2(float *y, const float *h, const float *const *r, int nr, int64_t d) {
    int64_t c = 0;
    if (nr == 4) {
        __m256 h0 = _mm256_set1_ps(h[0]), h1 = _mm256_set1_ps(h[1]), h2 = _mm256_set1_ps(h[2]), h3 = _mm256_set1_ps(h[3]);
        for (; c + 8 <= d; c += 8) {
            __m256 v = _mm256_loadu_ps(y + c);
            v = _mm256_fmadd_ps(h0, _mm256_loadu_ps(r[0] + c), v);
            v = _mm256_fmadd_ps(h1, _mm256_loadu_ps(r[1] + c), v);
            v = _mm256_fmadd_ps(h2, _mm256_loadu_ps(r[2] + c), v);
            v = _mm256_fmadd_ps(h3, _mm256_loadu_ps(r[3] + c), v);
            _mm256_storeu_ps(y + c, v);
        }
    } else {
        for (; c + 8 <= d; c += 8) {
            __m256 v = _mm256_loadu_ps(y + c);
            for (int q = 0; q < nr; q++) v = _mm256_fmadd_ps(_mm256_set1_ps(h[q]), _mm256_loadu_ps(r[q] + c), v);
            _mm256_storeu_ps(y + c, v);
        }
    }
    for (; c < d; c++) {
        float v = y[c];
        for (int q = 0; q < nr; q++) v = fmaf(h[q], r[q][c], v);
        y[c] = v;
    }
}

// ---- the FFN ---------------------------------------------------------------------------

static void check_weight(const Tensor *w, int64_t f, int64_t d) {
    assert(w->ndim == 2 && w->dtype == DT_F32 && w->dev.kind == DEV_CPU); // no low-bit weights here
    assert(ROWS(w) == f && COLS(w) == d && (d <= 1 || w->stride[1] == 1));
    (void)w, (void)f, (void)d;
}

static inline float silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; } // as cpu_swiglu

static void ffn_gathered(Tensor *out, const Tensor *x, const Tensor *wg, const Tensor *wu, const Tensor *wdt,
                         const Tensor *idx) {
    const int64_t n = ROWS(x), d = COLS(x), k = COLS(idx);
    const bool avx2 = cpu_lowbit_isa(DT_BF16) >= CPU_ISA_AVX2; // AVX-512 CPUs have AVX2 and FMA
    const Dot2Fn dot2 = avx2 ? dot2_avx2 : dot2_portable;
    const AxpyRowsFn axpy = avx2 ? axpy_rows_avx2 : axpy_rows_portable;
    float *h = xmalloc((size_t)(n * k) * sizeof *h), *acc = xmalloc((size_t)(n * d) * sizeof *acc);
    const bool par = ops_get_threads() > 1 && n * k * d >= (1 << 16); // below: threads cost more than they save
#pragma omp parallel if (par)
    {
#pragma omp for schedule(static)
        for (int64_t t = 0; t < n * k; t++) {
            const int64_t r = t / k;
            const int32_t j = i32_row(idx, r)[t - r * k];
            float g, u;
            dot2(tensor_row_f32(x, r), tensor_row_f32(wg, j), tensor_row_f32(wu, j), d, &g, &u);
            h[t] = silu_mul(g, u);
        } // (the barrier: h is complete)
        const int64_t nt = omp_get_num_threads(), me = omp_get_thread_num();
        const int64_t per = ((d + nt - 1) / nt + 15) / 16 * 16;
        const int64_t c0 = me * per < d ? me * per : d, c1 = c0 + per < d ? c0 + per : d;
        for (int64_t r = 0; r < n && c1 > c0; r++) {
            float *y = acc + r * d + c0;
            memset(y, 0, (size_t)(c1 - c0) * sizeof *y);
            const int32_t *ir = i32_row(idx, r);
            for (int64_t i = 0; i < k; i += 4) {
                const int nr = k - i < 4 ? (int)(k - i) : 4;
                const float *rows[4];
                for (int q = 0; q < nr; q++) rows[q] = tensor_row_f32(wdt, ir[i + q]) + c0;
                axpy(y, h + r * k + i, rows, nr, c1 - c0);
            }
            float *o = tensor_row_f32(out, r);
            for (int64_t c = c0; c < c1; c++) o[c] += acc[r * d + c];
        }
    }
    free(h);
    free(acc);
}

static void ffn_dense(Tensor *out, const Tensor *x, const Tensor *wg, const Tensor *wu, const Tensor *wdt,
                      const Tensor *idx) {
    const int64_t n = ROWS(x), d = COLS(x), f = ROWS(wg), k = COLS(idx);
    const int64_t block = n < SPARSE_DENSE_BLOCK ? n : SPARSE_DENSE_BLOCK;
    float *g = xmalloc((size_t)(block * f) * sizeof *g), *u = xmalloc((size_t)(block * f) * sizeof *u);
    for (int64_t r0 = 0; r0 < n; r0 += block) {
        const int64_t m = n - r0 < block ? n - r0 : block;
        const float *xr = tensor_row_f32(x, r0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)f, (blasint)d, 1.0f, xr,
                    (blasint)tensor_ld(x), wg->data, (blasint)tensor_ld(wg), 0.0f, g, (blasint)f);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)f, (blasint)d, 1.0f, xr,
                    (blasint)tensor_ld(x), wu->data, (blasint)tensor_ld(wu), 0.0f, u, (blasint)f);
        // h into g for every neuron, then u = h at the listed neurons and 0 elsewhere
#pragma omp parallel for schedule(static) if (m * f >= 65536)
        for (int64_t r = 0; r < m; r++) {
            float *gr = g + r * f, *ur = u + r * f;
            for (int64_t j = 0; j < f; j++) gr[j] = silu_mul(gr[j], ur[j]);
            memset(ur, 0, (size_t)f * sizeof *ur);
            const int32_t *ir = i32_row(idx, r0 + r);
            for (int64_t i = 0; i < k; i++) ur[ir[i]] += gr[ir[i]];
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)m, (blasint)d, (blasint)f, 1.0f, u, (blasint)f,
                    wdt->data, (blasint)tensor_ld(wdt), 1.0f, tensor_row_f32(out, r0), (blasint)tensor_ld(out));
    }
    free(g);
    free(u);
}

void cpu_ffn_sparse(Tensor *out, const Tensor *x, const Tensor *w_gate, const Tensor *w_up, const Tensor *w_down_t,
                    const Tensor *idx) {
    assert(out->ndim == 2 && x->ndim == 2 && idx->ndim == 2);
    assert(out->dtype == DT_F32 && x->dtype == DT_F32 && idx->dtype == DT_I32);
    assert(out->dev.kind == DEV_CPU && x->dev.kind == DEV_CPU && idx->dev.kind == DEV_CPU);
    const int64_t n = ROWS(x), d = COLS(x), f = ROWS(w_gate), k = COLS(idx);
    assert(ROWS(out) == n && COLS(out) == d && ROWS(idx) == n && (k <= 1 || idx->stride[1] == 1));
    assert(d <= 1 || (x->stride[1] == 1 && out->stride[1] == 1));
    check_weight(w_gate, f, d);
    check_weight(w_up, f, d);
    check_weight(w_down_t, f, d);
    for (int64_t r = 0; r < n; r++) { // an index outside the weights is a caller's bug: fail before reading
        const int32_t *ir = i32_row(idx, r);
        for (int64_t i = 0; i < k; i++) assert(ir[i] >= 0 && ir[i] < f);
        (void)ir;
    }
    if (n == 0 || d == 0 || k == 0) return;
    if (n <= SPARSE_GATHER_MAX_ROWS) ffn_gathered(out, x, w_gate, w_up, w_down_t, idx);
    else ffn_dense(out, x, w_gate, w_up, w_down_t, idx);
}
