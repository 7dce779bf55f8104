// Portable low-bit matmul kernels (lowbit.h): the fallback on CPUs without
// AVX2 and the reference the vector kernels are tested against. Sums are
// formed in double, so they are more accurate than any vector kernel.
#include "lowbit.h"

void bf16_rows_scalar(const LowbitOut *o, const Bf16Act *a, const uint16_t *w, int64_t ldw, int64_t n0, int64_t n1) {
    for (int64_t j = n0; j < n1; j++) {
        const uint16_t *wr = w + j * ldw;
        for (int i = 0; i < o->m; i++) {
            const float *x = a->x + i * a->ldx;
            double acc = 0.0;
            for (int64_t p = 0; p < a->k; p++) acc += (double)x[p] * (double)bf16_to_f32(wr[p]);
            lowbit_store(o, i, j, (float)acc);
        }
    }
}

void bf16_widen_scalar(float *dst, const uint16_t *src, int64_t k) {
    for (int64_t p = 0; p < k; p++) dst[p] = bf16_to_f32(src[p]);
}

void q8_rows_scalar(const LowbitOut *o, const Q8Act *a, const Q8Block *w, int64_t ldw, int64_t n0, int64_t n1) {
    for (int64_t j = n0; j < n1; j++) {
        const Q8Block *wr = w + j * ldw;
        for (int i = 0; i < o->m; i++) {
            const int8_t *xq = a->q + i * a->nb * Q8_BLOCK;
            const float *xd = a->d + i * a->nb;
            double acc = 0.0;
            for (int64_t b = 0; b < a->nb; b++) {
                int32_t s = 0;
                for (int t = 0; t < Q8_BLOCK; t++) s += (int32_t)wr[b].qs[t] * (int32_t)xq[b * Q8_BLOCK + t];
                acc += (double)s * (double)(q8_scale(&wr[b]) * xd[b]);
            }
            lowbit_store(o, i, j, (float)acc);
        }
    }
}
