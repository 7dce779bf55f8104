// AVX2 + FMA low-bit matmul kernels (lowbit.h), compiled for that target
// only (the build's flags stay generic; ops_cpu_lowbit.c checks the CPU).
//  - bf16: 8 weights at a time widened to f32 by a 16-bit shift, one FMA per
//    activation row, 2-4 such vectors per step (independent FMA chains).
//  - q8_0: per block of 32, |x| (u8) times w with x's sign (s8) in
//    _mm256_maddubs_epi16 (pairs stay within int16: 2 * 127 * 127 < 2^15),
//    _mm256_madd_epi16 to int32, then one FMA by the two blocks' scales.
#include <immintrin.h>

#include "lowbit.h"

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline))
// Loops over the (constant after inlining) tile sizes, unrolled so that the
// accumulators stay in registers (-O2 alone keeps them in memory).
#define UNROLL _Pragma("GCC unroll 4")

AVX2 INLINE float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 8 bf16 values as f32: the bits shifted into the high half.
AVX2 INLINE __m256 bf16x8(const uint16_t *p) {
    __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}

// Weight row j against M activation rows, U vectors of 8 per step: M * U
// independent FMA chains (the FMA latency, not the loads, bounds one chain).
// M and U are constants after inlining.
AVX2 INLINE void bf16_row(const LowbitOut *o, const Bf16Act *a, const uint16_t *wr, int64_t j, int M, int U) {
    __m256 acc[LOWBIT_MAX_M][4];
    UNROLL for (int i = 0; i < M; i++) UNROLL for (int u = 0; u < U; u++) acc[i][u] = _mm256_setzero_ps();
    int64_t k = a->k, p = 0;
    for (; p + 8 * U <= k; p += 8 * U) {
        __m256 wv[4];
        UNROLL for (int u = 0; u < U; u++) wv[u] = bf16x8(wr + p + 8 * u);
        UNROLL for (int i = 0; i < M; i++) {
            const float *x = a->x + i * a->ldx + p;
            UNROLL for (int u = 0; u < U; u++) acc[i][u] =
                _mm256_fmadd_ps(wv[u], _mm256_loadu_ps(x + 8 * u), acc[i][u]);
        }
    }
    for (; p + 8 <= k; p += 8) {
        __m256 wv = bf16x8(wr + p);
        UNROLL for (int i = 0; i < M; i++) acc[i][0] =
            _mm256_fmadd_ps(wv, _mm256_loadu_ps(a->x + i * a->ldx + p), acc[i][0]);
    }
    UNROLL for (int i = 0; i < M; i++) {
        __m256 sum = acc[i][0];
        UNROLL for (int u = 1; u < U; u++) sum = _mm256_add_ps(sum, acc[i][u]);
        float s = hsum(sum);
        for (int64_t q = p; q < k; q++) s += a->x[i * a->ldx + q] * bf16_to_f32(wr[q]);
        lowbit_store(o, i, j, s);
    }
}

AVX2 void bf16_rows_avx2(const LowbitOut *o, const Bf16Act *a, const uint16_t *w, int64_t ldw, int64_t n0, int64_t n1) {
#define BF16_ROW(j, M) bf16_row(o, a, w + (j) * ldw, (j), (M), (M) <= 2 ? 4 : 2) // fewer rows: deeper unroll
    LOWBIT_EACH_COLUMN(o->m, n0, n1, BF16_ROW);
#undef BF16_ROW
}

// sum over the block of x * w as 8 int32 lanes (each 4 products).
AVX2 INLINE __m256i q8_dot(__m256i wq, __m256i xq) {
    __m256i ax = _mm256_sign_epi8(xq, xq); // |x|
    __m256i sw = _mm256_sign_epi8(wq, xq); // w with x's sign (0 where x is 0)
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sw), _mm256_set1_epi16(1));
}

// acc[i] += block b's dot products (weights wb) for the M activation rows.
AVX2 INLINE void q8_block(__m256 *acc, const Q8Block *wb, const Q8Act *a, int64_t b, int M) {
    __m256i wq = _mm256_loadu_si256((const __m256i *)wb->qs);
    float dw = _cvtsh_ss(wb->d);
    UNROLL for (int i = 0; i < M; i++) {
        __m256i xq = _mm256_loadu_si256((const __m256i *)(a->q + (i * a->nb + b) * Q8_BLOCK));
        __m256 s = _mm256_cvtepi32_ps(q8_dot(wq, xq));
        acc[i] = _mm256_fmadd_ps(s, _mm256_set1_ps(dw * a->d[i * a->nb + b]), acc[i]);
    }
}

// One weight row j against M activation rows; even and odd blocks go to two
// accumulators (two independent FMA chains).
AVX2 INLINE void q8_row(const LowbitOut *o, const Q8Act *a, const Q8Block *wr, int64_t j, int M) {
    __m256 even[LOWBIT_MAX_M], odd[LOWBIT_MAX_M];
    UNROLL for (int i = 0; i < M; i++) even[i] = odd[i] = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= a->nb; b += 2) {
        q8_block(even, &wr[b], a, b, M);
        q8_block(odd, &wr[b + 1], a, b + 1, M);
    }
    if (b < a->nb) q8_block(even, &wr[b], a, b, M);
    UNROLL for (int i = 0; i < M; i++) lowbit_store(o, i, j, hsum(_mm256_add_ps(even[i], odd[i])));
}

AVX2 void q8_rows_avx2(const LowbitOut *o, const Q8Act *a, const Q8Block *w, int64_t ldw, int64_t n0, int64_t n1) {
#define Q8_ROW(j, M) q8_row(o, a, w + (j) * ldw, (j), (M))
    LOWBIT_EACH_COLUMN(o->m, n0, n1, Q8_ROW);
#undef Q8_ROW
}

AVX2 void bf16_widen_avx2(float *dst, const uint16_t *src, int64_t k) {
    int64_t p = 0;
    for (; p + 8 <= k; p += 8) _mm256_storeu_ps(dst + p, bf16x8(src + p));
    for (; p < k; p++) dst[p] = bf16_to_f32(src[p]);
}

AVX2 void q8_widen_avx2(float *dst, const Q8Block *src, int64_t k) {
    for (int64_t b = 0, p0 = 0; p0 < k; b++, p0 += Q8_BLOCK) {
        float d = _cvtsh_ss(src[b].d);
        if (k - p0 < Q8_BLOCK) { // a row's cut last block
            for (int64_t i = 0; i < k - p0; i++) dst[p0 + i] = d * (float)src[b].qs[i];
            break;
        }
        __m256 dv = _mm256_set1_ps(d);
        for (int i = 0; i < Q8_BLOCK; i += 8) {
            __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(src[b].qs + i)));
            _mm256_storeu_ps(dst + p0 + i, _mm256_mul_ps(dv, _mm256_cvtepi32_ps(q)));
        }
    }
}
