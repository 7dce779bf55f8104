// Q8_0 row quantisation (q8.h): the reference every kernel and test relies on.
#include "q8.h"

#include <math.h>
#include <string.h>

// The smallest positive f16 >= x (x >= 0 and finite), or an infinity when none is.
static uint16_t f16_at_least(float x) {
    uint16_t h = f32_to_f16(x);
    if (f16_to_f32(h) < x) h++; // positive f16 bit patterns are ordered like their values
    return h;
}

bool q8_quantize_row(Q8Block *dst, const float *src, int64_t k) {
    for (int64_t b = 0; b < q8_blocks(k); b++) {
        int64_t p0 = b * Q8_BLOCK, n = k - p0 < Q8_BLOCK ? k - p0 : Q8_BLOCK;
        float amax = 0.0f;
        for (int64_t i = 0; i < n; i++) {
            if (!isfinite(src[p0 + i])) return false;
            amax = fmaxf(amax, fabsf(src[p0 + i]));
        }
        Q8Block *blk = &dst[b];
        memset(blk->qs, 0, sizeof blk->qs);
        blk->d = 0;
        if (amax == 0.0f) continue;
        blk->d = f16_at_least(amax / 127.0f);
        if ((blk->d & 0x7c00u) == 0x7c00u) return false; // the scale overflows f16
        float d = f16_to_f32(blk->d);
        for (int64_t i = 0; i < n; i++) blk->qs[i] = q8_round(src[p0 + i] / d);
    }
    return true;
}

void q8_dequantize_row(float *dst, const Q8Block *src, int64_t k) {
    for (int64_t b = 0; b < q8_blocks(k); b++) {
        int64_t p0 = b * Q8_BLOCK, n = k - p0 < Q8_BLOCK ? k - p0 : Q8_BLOCK;
        float d = q8_scale(&src[b]);
        for (int64_t i = 0; i < n; i++) dst[p0 + i] = d * (float)src[b].qs[i];
    }
}
