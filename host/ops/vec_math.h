// vec_math.h: float math written so that GCC vectorises the loops that call it
// (no calls, no branches), for the CPU backend's element loops (GELU).
//
// OPS_VECTORISABLE lets GCC if-convert the clamps and selects of such loops:
// with -ftrapping-math (the default) it keeps the branches, and the loop stays
// scalar; nothing in the backend reads the FP exception flags, so this changes
// no result.
#ifndef ELASTILM_VEC_MATH_H
#define ELASTILM_VEC_MATH_H

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#define OPS_VECTORISABLE __attribute__((optimize("no-trapping-math")))
#else
#define OPS_VECTORISABLE
#endif

// exp(y) for y in [-86, 86] (callers clamp: the result and 2^n stay normal
// floats): Cody-Waite reduction y = n ln2 + r, |r| <= ln2 / 2, ln2 split into a
// 16-bit head (n ln2_hi exact) and a tail; exp(r) by its degree-7 Taylor
// polynomial (truncation 5e-9 relative), times 2^n built in the exponent bits.
// Within 1.1e-7 relative of exp in double (measured over [-86, 2]).
OPS_VECTORISABLE static inline float ops_exp(float y) {
    const float shifter = 12582912.0f; // 1.5 * 2^23: adding it rounds to an integer
    float kf = y * 1.44269504088896341f + shifter;
    uint32_t kbits;
    memcpy(&kbits, &kf, sizeof kbits);
    kf -= shifter; // n = round(y / ln2), |n| <= 125
    float r = (y - kf * 0.693145751953125f) - kf * 1.428606820309417e-06f;
    float e = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    uint32_t sbits = (kbits << 23) + 0x3f800000u; // 2^n: the shifter's bits shift out
    float s;
    memcpy(&s, &sbits, sizeof s);
    return e * s;
}

#endif
