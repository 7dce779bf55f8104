// lowbit.h: the matmul kernels for low-bit CPU weights, one file per
// instruction set (lowbit_scalar.c, lowbit_avx2.c, lowbit_avx512.c), behind
// ops_cpu_lowbit.c, which picks one at run time. Internal to ops/.
//
// A kernel computes the columns [n0, n1) of
//     y[i, j] = alpha * sum_p x[i, p] * w[j, p] + beta * y[i, j],     i < m <= LOWBIT_MAX_M,
// reading each weight row once for all m activation rows (decode reads the
// weights once per token). beta == 0 writes y without reading it. w is a
// row-major [n, k] view whose rows are ldw apart (a prefix of a wider matrix's
// rows and columns is a view). The scalar kernels are the reference of the tests.
#ifndef ELASTILM_LOWBIT_H
#define ELASTILM_LOWBIT_H

#include <stdint.h>

#include "runtime/q8.h"

#define LOWBIT_MAX_M 4 // activation rows the kernels take; more go through f32 panels and sgemm

// Runs ROW(j, M) for every output column j in [n0, n1) with M = m (1..LOWBIT_MAX_M) as a
// compile-time constant, so that each row kernel is specialised and unrolled for it.
#define LOWBIT_EACH_COLUMN(m, n0, n1, ROW)                                   \
    do {                                                                     \
        switch (m) {                                                         \
        case 1: for (int64_t j = (n0); j < (n1); j++) ROW(j, 1); break;      \
        case 2: for (int64_t j = (n0); j < (n1); j++) ROW(j, 2); break;      \
        case 3: for (int64_t j = (n0); j < (n1); j++) ROW(j, 3); break;      \
        default: for (int64_t j = (n0); j < (n1); j++) ROW(j, 4); break;     \
        }                                                                    \
    } while (0)

typedef struct {
    float *y;     // [m, n] output, rows ldy apart
    int64_t ldy;
    int m;        // 1..LOWBIT_MAX_M
    float alpha, beta;
} LowbitOut;

// Activations for bf16 weights: x itself and, for the AVX-512 BF16 kernel
// only, x split into two bf16 parts, x = hi + lo + e with |e| <= 2^-16 |x|
// (so that the bf16 dot-product instruction keeps fp32 accuracy), zero-padded
// from k to kp = k rounded up to 32.
typedef struct {
    const float *x;          // [m, k], rows ldx apart
    int64_t ldx;
    int64_t k;
    const uint16_t *hi, *lo; // [m, kp] each, or NULL
    int64_t kp;
} Bf16Act;

// Activations for q8_0 weights, quantised per block of 32 like the weights
// but with an f32 scale: x[i, p] = d[i, p / 32] * q[i, p] + e, |e| <= d / 2;
// q is zero past k, so a weight block that a column prefix cuts adds nothing
// past the prefix.
typedef struct {
    const int8_t *q; // [m, nb * 32]
    const float *d;  // [m, nb]
    int64_t nb;      // blocks per row: q8_blocks(k)
} Q8Act;

typedef void (*Bf16Rows)(const LowbitOut *o, const Bf16Act *a, const uint16_t *w, int64_t ldw, int64_t n0, int64_t n1);
// ldw in blocks here: 34-byte blocks between the starts of two weight rows.
typedef void (*Q8Rows)(const LowbitOut *o, const Q8Act *a, const Q8Block *w, int64_t ldw, int64_t n0, int64_t n1);

void bf16_rows_scalar(const LowbitOut *o, const Bf16Act *a, const uint16_t *w, int64_t ldw, int64_t n0, int64_t n1);
void bf16_rows_avx2(const LowbitOut *o, const Bf16Act *a, const uint16_t *w, int64_t ldw, int64_t n0, int64_t n1);
void bf16_rows_avx512(const LowbitOut *o, const Bf16Act *a, const uint16_t *w, int64_t ldw, int64_t n0, int64_t n1);
void q8_rows_scalar(const LowbitOut *o, const Q8Act *a, const Q8Block *w, int64_t ldw, int64_t n0, int64_t n1);
void q8_rows_avx2(const LowbitOut *o, const Q8Act *a, const Q8Block *w, int64_t ldw, int64_t n0, int64_t n1);
void q8_rows_avx512(const LowbitOut *o, const Q8Act *a, const Q8Block *w, int64_t ldw, int64_t n0, int64_t n1);

// The first k values of a weight row as floats, for the prefill panels
// (exact: a shift for bf16, one product d * q for q8_0; the scalar q8_0 one
// is q8_dequantize_row).
void bf16_widen_scalar(float *dst, const uint16_t *src, int64_t k);
void bf16_widen_avx2(float *dst, const uint16_t *src, int64_t k);
void q8_widen_avx2(float *dst, const Q8Block *src, int64_t k);

// y[i, j] from the dot product acc.
static inline void lowbit_store(const LowbitOut *o, int i, int64_t j, float acc) {
    float *y = o->y + (int64_t)i * o->ldy + j;
    *y = o->beta == 0.0f ? o->alpha * acc : o->alpha * acc + o->beta * *y;
}

#endif
