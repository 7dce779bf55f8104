// AVX-512 low-bit matmul kernels (lowbit.h), compiled for their targets only;
// ops_cpu_lowbit.c runs them where the CPU has the extensions.
//  - bf16 (AVX512F/BW + AVX512_BF16): _mm512_dpbf16_ps on 32 weights at a
//    time, once with x's high bf16 part and once with its low part (Bf16Act),
//    so the result keeps fp32 accuracy in x instead of rounding x to bf16.
//  - q8_0 (AVX512F/BW + AVX512_VNNI): two blocks per 512-bit register, |x| (u8)
//    times w with x's sign (s8) in _mm512_dpbusd_epi32, lanes 0-7 scaled by
//    the first block's scales and 8-15 by the second's.
// NOTE: these kernels are compiled everywhere but only run on CPUs with the
// extensions; the AMD EPYC (Zen 2/3, AVX2 only) this was written on could not
// run them. tests/test_weights.c checks every kernel the CPU it runs on has.
#include <immintrin.h>

#include "lowbit.h"

#define AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))
#define AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vnni,f16c")))
#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 4") // tile loops: accumulators in registers

AVX512BF16 INLINE void bf16_row(const LowbitOut *o, const Bf16Act *a, const uint16_t *wr, int64_t j, int M) {
    __m512 hi[LOWBIT_MAX_M], lo[LOWBIT_MAX_M];
    UNROLL for (int i = 0; i < M; i++) hi[i] = lo[i] = _mm512_setzero_ps();
    for (int64_t p = 0; p < a->k; p += 32) {
        // the row's last values: a masked load (x's parts are zero-padded to kp)
        __m512i wv = a->k - p >= 32 ? _mm512_loadu_si512(wr + p)
                                    : _mm512_maskz_loadu_epi16((__mmask32)((1u << (a->k - p)) - 1u), wr + p);
        UNROLL for (int i = 0; i < M; i++) {
            __m512i xh = _mm512_loadu_si512(a->hi + i * a->kp + p), xl = _mm512_loadu_si512(a->lo + i * a->kp + p);
            hi[i] = _mm512_dpbf16_ps(hi[i], (__m512bh)wv, (__m512bh)xh);
            lo[i] = _mm512_dpbf16_ps(lo[i], (__m512bh)wv, (__m512bh)xl);
        }
    }
    UNROLL for (int i = 0; i < M; i++) lowbit_store(o, i, j, _mm512_reduce_add_ps(_mm512_add_ps(hi[i], lo[i])));
}

AVX512BF16 void bf16_rows_avx512(const LowbitOut *o, const Bf16Act *a, const uint16_t *w, int64_t ldw, int64_t n0,
                                 int64_t n1) {
#define BF16_ROW(j, M) bf16_row(o, a, w + (j) * ldw, (j), (M))
    LOWBIT_EACH_COLUMN(o->m, n0, n1, BF16_ROW);
#undef BF16_ROW
}

// 16 int32 lanes, each the sum of 4 products x * w.
AVX512VNNI INLINE __m512i q8_dot(__m512i wq, __m512i xq) {
    __m512i sw = _mm512_mask_sub_epi8(wq, _mm512_movepi8_mask(xq), _mm512_setzero_si512(), wq); // w with x's sign
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(xq), sw);
}

AVX512VNNI INLINE void q8_row(const LowbitOut *o, const Q8Act *a, const Q8Block *wr, int64_t j, int M) {
    __m512 acc[LOWBIT_MAX_M];
    UNROLL for (int i = 0; i < M; i++) acc[i] = _mm512_setzero_ps();
    int64_t nb = a->nb, b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m512i wq = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)wr[b].qs)),
                                        _mm256_loadu_si256((const __m256i *)wr[b + 1].qs), 1);
        float d0 = _cvtsh_ss(wr[b].d), d1 = _cvtsh_ss(wr[b + 1].d);
        UNROLL for (int i = 0; i < M; i++) {
            const float *xd = a->d + i * nb;
            __m512i xq = _mm512_loadu_si512(a->q + (i * nb + b) * Q8_BLOCK);
            __m512 sc = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(d0 * xd[b]), _mm512_set1_ps(d1 * xd[b + 1]));
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(q8_dot(wq, xq)), sc, acc[i]);
        }
    }
    if (b < nb) { // an odd last block in the low half, zeros in the high half
        __m512i wq = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)wr[b].qs));
        float d0 = _cvtsh_ss(wr[b].d);
        UNROLL for (int i = 0; i < M; i++) {
            __m512i xq = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(a->q + (i * nb + b) * Q8_BLOCK)));
            __m512 sc = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(d0 * a->d[i * nb + b]), _mm512_setzero_ps());
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(q8_dot(wq, xq)), sc, acc[i]);
        }
    }
    UNROLL for (int i = 0; i < M; i++) lowbit_store(o, i, j, _mm512_reduce_add_ps(acc[i]));
}

AVX512VNNI void q8_rows_avx512(const LowbitOut *o, const Q8Act *a, const Q8Block *w, int64_t ldw, int64_t n0,
                               int64_t n1) {
#define Q8_ROW(j, M) q8_row(o, a, w + (j) * ldw, (j), (M))
    LOWBIT_EACH_COLUMN(o->m, n0, n1, Q8_ROW);
#undef Q8_ROW
}
