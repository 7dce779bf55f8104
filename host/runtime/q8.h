// q8.h: 8-bit block quantisation of weight rows (DT_Q8_0).
//
// The layout is GGUF's Q8_0: a row of k values is cut into ceil(k/32) blocks,
// each 32 int8 values and one IEEE f16 scale, value = scale * q. The last
// block of a row whose length is not a multiple of 32 is padded with q = 0.
// The scale of a block is the smallest f16 >= max|w| / 127, so every |q| <= 127
// and every weight is reproduced within half its block's scale:
//     |w - scale * q| <= scale / 2,    scale <= max|w| / 127 * (1 + 2^-10) (normal f16).
#ifndef ELASTILM_Q8_H
#define ELASTILM_Q8_H

#include <stdbool.h>
#include <stdint.h>

#include "half.h"

#define Q8_BLOCK 32 // values per block

typedef struct {
    uint16_t d;          // scale (IEEE f16)
    int8_t qs[Q8_BLOCK]; // [32] quantised values in [-127, 127]
} Q8Block;               // 34 bytes, no padding

_Static_assert(sizeof(Q8Block) == 34, "Q8Block must be GGUF's 34-byte block_q8_0");

static inline int64_t q8_blocks(int64_t k) { return (k + Q8_BLOCK - 1) / Q8_BLOCK; }

// v rounded to the nearest integer (ties to even) and clamped to [-127, 127]
// (NaN: 0): adding and subtracting 1.5 * 2^23 rounds in the FPU's default
// mode for |v| < 2^22, without a libm call (nearbyintf is one on baseline x86-64).
static inline int8_t q8_round(float v) {
    float r = (v + 12582912.0f) - 12582912.0f;
    return (int8_t)(r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r == r ? r : 0.0f);
}
static inline float q8_scale(const Q8Block *b) { return f16_to_f32(b->d); }

// Quantises k floats into q8_blocks(k) blocks. False when a block's scale does
// not fit an f16 (a non-finite value, or |w| > 127 * 65504); dst is then partly written.
bool q8_quantize_row(Q8Block *dst, const float *src, int64_t k);
// The first k values of a quantised row as floats.
void q8_dequantize_row(float *dst, const Q8Block *src, int64_t k);

#endif
