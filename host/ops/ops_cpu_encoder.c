// fp32 CPU implementations of the encoder ops (ops.h, "encoders": BERT,
// MobileBERT) and of their backwards (ops.h, "training"): LayerNorm, the
// per-column scale and shift (MobileBERT's NoNorm), the bias add and the
// element-wise activations. Same conventions as ops_cpu.c / ops_cpu_grad.c:
// OpenMP over independent rows; where every row adds into one [D] gradient
// (dw, db) the loop is split by columns instead, so no two threads write one
// element, and those sums are kept in double.
#include "ops_cpu.h"
#include "vec_math.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ROWS(t) ((t)->shape[0])
#define COLS(t) ((t)->shape[1])
#define SAME_2D(a, b) assert((a)->ndim == 2 && (b)->ndim == 2 && ROWS(a) == ROWS(b) && COLS(a) == COLS(b))
#define COL_BLOCK 64 // columns per task when rows add into one [D] gradient

// A [D] parameter (w, b) or its gradient: 1-d, or 2-d [D, 1], contiguous.
static const float *vec_of(const Tensor *t, int64_t d) {
    assert(t->shape[0] == d && (t->ndim == 1 || (t->ndim == 2 && COLS(t) == 1)));
    return t->data;
}

// ---- layernorm -------------------------------------------------------------------

// The row's mean and 1 / sqrt(var + eps) (biased variance, two passes in double),
// shared by the forward and the backward so that both see the same values.
static void row_moments(const float *x, int64_t d, float eps, float *mean, float *rstd) {
    double s = 0.0;
    for (int64_t j = 0; j < d; j++) s += x[j];
    double mu = s / (double)d, ss = 0.0;
    for (int64_t j = 0; j < d; j++) ss += ((double)x[j] - mu) * ((double)x[j] - mu);
    *mean = (float)mu;
    *rstd = (float)(1.0 / sqrt(ss / (double)d + (double)eps));
}

// out may alias x: a row's moments are taken before it is written.
void cpu_layernorm(Tensor *out, const Tensor *x, const Tensor *w, const Tensor *b, float eps) {
    SAME_2D(out, x);
    int64_t n = ROWS(x), d = COLS(x);
    const float *wd = vec_of(w, d), *bd = vec_of(b, d);
#pragma omp parallel for if (n > 4)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = tensor_row_f32(x, i);
        float *oi = tensor_row_f32(out, i), mean, rstd;
        row_moments(xi, d, eps, &mean, &rstd);
        for (int64_t j = 0; j < d; j++) oi[j] = ((xi[j] - mean) * rstd) * wd[j] + bd[j];
    }
}

// y = xh w + b with xh = (x - mean) r, r = (var + eps)^-1/2; with g = dy w:
//   dx += r (g - mean(g) - xh mean(g xh))
//   dw += sum_n dy xh,  db += sum_n dy
void cpu_layernorm_backward(Tensor *dx, Tensor *dw, Tensor *db, const Tensor *dout, const Tensor *x, const Tensor *w,
                            float eps) {
    SAME_2D(dout, x);
    if (dx) SAME_2D(dx, x);
    int64_t n = ROWS(x), d = COLS(x);
    const float *wd = vec_of(w, d);
    float *dwd = dw ? (float *)vec_of(dw, d) : NULL, *dbd = db ? (float *)vec_of(db, d) : NULL;
    float *mom = malloc(2 * (size_t)(n > 0 ? n : 1) * sizeof(float)); // [N, 2] each row's (mean, rstd)
    assert(mom);
#pragma omp parallel for if (n > 4)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = tensor_row_f32(x, i), *gi = tensor_row_f32(dout, i);
        row_moments(xi, d, eps, &mom[2 * i], &mom[2 * i + 1]);
        if (!dx) continue;
        float mean = mom[2 * i], r = mom[2 * i + 1], *dxi = tensor_row_f32(dx, i);
        double sg = 0.0, sgx = 0.0; // sum(g), sum(g xh)
        for (int64_t j = 0; j < d; j++) {
            double g = (double)gi[j] * wd[j];
            sg += g;
            sgx += g * ((double)(xi[j] - mean) * r);
        }
        float mg = (float)(sg / (double)d), mgx = (float)(sgx / (double)d);
        for (int64_t j = 0; j < d; j++) {
            float xh = (xi[j] - mean) * r;
            dxi[j] += r * (gi[j] * wd[j] - mg - xh * mgx);
        }
    }
    if (dwd || dbd) {
        int64_t blocks = (d + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for if (n * d > 65536)
        for (int64_t bk = 0; bk < blocks; bk++) {
            int64_t j0 = bk * COL_BLOCK, nj = d - j0 < COL_BLOCK ? d - j0 : COL_BLOCK;
            double aw[COL_BLOCK] = {0}, ab[COL_BLOCK] = {0};
            for (int64_t i = 0; i < n; i++) {
                const float *xi = tensor_row_f32(x, i) + j0, *gi = tensor_row_f32(dout, i) + j0;
                float mean = mom[2 * i], r = mom[2 * i + 1];
                for (int64_t j = 0; j < nj; j++) {
                    aw[j] += (double)gi[j] * ((xi[j] - mean) * r);
                    ab[j] += gi[j];
                }
            }
            for (int64_t j = 0; j < nj; j++) {
                if (dwd) dwd[j0 + j] += (float)aw[j];
                if (dbd) dbd[j0 + j] += (float)ab[j];
            }
        }
    }
    free(mom);
}

// ---- scale and shift, bias ---------------------------------------------------------------

void cpu_scale_shift(Tensor *out, const Tensor *x, const Tensor *w, const Tensor *b) {
    SAME_2D(out, x);
    int64_t n = ROWS(x), d = COLS(x);
    const float *wd = vec_of(w, d), *bd = b ? vec_of(b, d) : NULL;
#pragma omp parallel for if (n > 16)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = tensor_row_f32(x, i);
        float *oi = tensor_row_f32(out, i);
        if (bd)
            for (int64_t j = 0; j < d; j++) oi[j] = xi[j] * wd[j] + bd[j];
        else
            for (int64_t j = 0; j < d; j++) oi[j] = xi[j] * wd[j];
    }
}

void cpu_bias_add(Tensor *x, const Tensor *b) {
    assert(x->ndim == 2);
    int64_t n = ROWS(x), d = COLS(x);
    const float *bd = vec_of(b, d);
#pragma omp parallel for if (n > 16)
    for (int64_t i = 0; i < n; i++) {
        float *xi = tensor_row_f32(x, i);
        for (int64_t j = 0; j < d; j++) xi[j] += bd[j];
    }
}

// dw += sum_n dout x (x may be NULL: not formed), db += sum_n dout, by column blocks.
static void column_sums(float *dw, float *db, const Tensor *dout, const Tensor *x) {
    int64_t n = ROWS(dout), d = COLS(dout), blocks = (d + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for if (n * d > 65536)
    for (int64_t bk = 0; bk < blocks; bk++) {
        int64_t j0 = bk * COL_BLOCK, nj = d - j0 < COL_BLOCK ? d - j0 : COL_BLOCK;
        double aw[COL_BLOCK] = {0}, ab[COL_BLOCK] = {0};
        for (int64_t i = 0; i < n; i++) {
            const float *gi = tensor_row_f32(dout, i) + j0;
            if (dw) {
                const float *xi = tensor_row_f32(x, i) + j0;
                for (int64_t j = 0; j < nj; j++) aw[j] += (double)gi[j] * xi[j];
            }
            for (int64_t j = 0; j < nj; j++) ab[j] += gi[j];
        }
        for (int64_t j = 0; j < nj; j++) {
            if (dw) dw[j0 + j] += (float)aw[j];
            if (db) db[j0 + j] += (float)ab[j];
        }
    }
}

void cpu_scale_shift_backward(Tensor *dx, Tensor *dw, Tensor *db, const Tensor *dout, const Tensor *x,
                              const Tensor *w) {
    SAME_2D(dout, x);
    int64_t n = ROWS(x), d = COLS(x);
    const float *wd = vec_of(w, d);
    if (dx) {
        SAME_2D(dx, x);
#pragma omp parallel for if (n > 16)
        for (int64_t i = 0; i < n; i++) {
            const float *gi = tensor_row_f32(dout, i);
            float *dxi = tensor_row_f32(dx, i);
            for (int64_t j = 0; j < d; j++) dxi[j] += gi[j] * wd[j];
        }
    }
    if (dw || db) column_sums(dw ? (float *)vec_of(dw, d) : NULL, db ? (float *)vec_of(db, d) : NULL, dout, x);
}

void cpu_bias_backward(Tensor *db, const Tensor *dout) {
    assert(dout->ndim == 2);
    column_sums(NULL, (float *)vec_of(db, COLS(dout)), dout, NULL);
}

// ---- activations ---------------------------------------------------------------------------

// act(x) in fp32; GELU is the exact one (erf), as transformers' "gelu":
//   GELU(x) = x Phi(x),  GELU'(x) = Phi(x) + x phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi).
// glibc's erff is scalar (and ~10% of a 1-thread encoder training step), so Phi is
// computed here in a form the compiler vectorises (no calls, no branches; selects):
//   Q(a) = Phi(-a) = exp(-a^2/2) R(a) for a = |x|, Phi(x) = x > 0 ? 1 - Q : Q,
//   R(a) = t S(t), t = 1 / (1 + p a), S a degree-8 polynomial in t,
// S fitted (our own fit: Lawson-weighted least squares for the minimax relative error
// of R on a in [0, 12.5], p = 0.26) to R(a) = erfc(a / sqrt 2) exp(a^2 / 2) / 2 in
// double: max relative error 1.6e-8. exp is ops_exp (vec_math.h), whose input here
// stays in [-78.2, 0]. Measured against erf in double over every float step 1e-4 in
// [-10, 10] and the tails (tests/test_ops_gelu.c): |error| <= ~1e-7 max(1, |x|) for
// both GELU and GELU'. Inputs are clamped to |x| <= GELU_XC = 12.5 inside, where
// exp(-x^2/2) R is still a normal float (no denormal arithmetic): beyond it GELU is x
// (x > 0) or -12.5 Q(12.5) ~ -5e-35 (x < 0, the limit 0 within 1e-34), GELU' 1 or
// ~-5e-34; +-inf give those limits, NaN stays NaN. No FMA contraction (-std=c11 turns
// it off), so the SSE2 and any wider code give the same bits.
// GCC threads the clamps' constant arms through the whole formula (Q(12.5) folds to a
// constant), leaving trapping arithmetic under branches that it then will not
// if-convert: without OPS_VECTORISABLE neither GELU loop vectorises at -O2.

#define GELU_XC 12.5f
#define GELU_P 0.26f
#define INV_SQRT_2PI 0.3989422804014327f

// Phi(x) and phi(x) for |x| <= GELU_XC (x may be NaN).
OPS_VECTORISABLE static inline void gelu_phi(float x, float *Phi, float *phi) {
    float a = fabsf(x);
    float t = 1.0f / (1.0f + GELU_P * a);
    float S = 0.10376620580011646f +
              t * (0.10289972840105191f +
                   t * (0.10383824245968559f +
                        t * (0.04795260767794944f +
                             t * (0.16801348565073468f +
                                  t * (-0.1610033565571224f +
                                       t * (0.2601613774263435f + t * (-0.15697956216483921f + t * 0.031351263460664545f)))))));
    float e = ops_exp(-0.5f * (a * a));
    float Q = e * (t * S);
    float P = 1.0f - Q; // both computed: selects, not branches, so that the loops vectorise
    *Phi = isgreater(x, 0.0f) ? P : Q;
    *phi = e * INV_SQRT_2PI;
}

// The selects use the quiet comparisons (isless, isgreater: no FP exception on NaN), which
// GCC if-converts like any non-trapping operation.
OPS_VECTORISABLE static inline float gelu_clamp(float x) { // NaN passes through
    x = isless(x, -GELU_XC) ? -GELU_XC : x;
    return isgreater(x, GELU_XC) ? GELU_XC : x;
}

OPS_VECTORISABLE static void gelu_row(float *out, const float *x, int64_t n) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        float xj = x[j], xc = gelu_clamp(xj), Phi, phi;
        gelu_phi(xc, &Phi, &phi);
        out[j] = (isgreater(xj, GELU_XC) ? xj : xc) * Phi;
    }
}

OPS_VECTORISABLE static void gelu_grad_row(float *dx, const float *g, const float *x, int64_t n) {
#pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        float xc = gelu_clamp(x[j]), Phi, phi;
        gelu_phi(xc, &Phi, &phi);
        dx[j] += g[j] * (Phi + xc * phi);
    }
}

// One row of act(x) (out may be x); ReLU as torch (0 at 0), tanh by tanhf.
static void act_row(float *out, const float *x, int64_t n, Activation a) {
    switch (a) {
    case ACT_GELU: gelu_row(out, x, n); return;
    case ACT_RELU:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) out[j] = isgreater(x[j], 0.0f) ? x[j] : 0.0f;
        return;
    case ACT_TANH:
        for (int64_t j = 0; j < n; j++) out[j] = tanhf(x[j]);
        return;
    }
}

// dx += g act'(x) for one row: ReLU' = [x > 0] (0 at 0, as torch); tanh' = 1 - tanh^2.
static void act_grad_row(float *dx, const float *g, const float *x, int64_t n, Activation a) {
    switch (a) {
    case ACT_GELU: gelu_grad_row(dx, g, x, n); return;
    case ACT_RELU:
#pragma omp simd
        for (int64_t j = 0; j < n; j++) dx[j] += g[j] * (isgreater(x[j], 0.0f) ? 1.0f : 0.0f);
        return;
    case ACT_TANH:
        for (int64_t j = 0; j < n; j++) {
            float t = tanhf(x[j]);
            dx[j] += g[j] * (1.0f - t * t);
        }
        return;
    }
}

void cpu_activation(Tensor *out, const Tensor *x, Activation act) {
    SAME_2D(out, x);
    assert(act == ACT_GELU || act == ACT_RELU || act == ACT_TANH);
    int64_t n = ROWS(x), f = COLS(x);
#pragma omp parallel for if (n > 4)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = tensor_row_f32(x, i);
        float *oi = tensor_row_f32(out, i);
        act_row(oi, xi, f, act);
    }
}

void cpu_activation_backward(Tensor *dx, const Tensor *dout, const Tensor *x, Activation act) {
    SAME_2D(dx, x);
    SAME_2D(dout, x);
    assert(act == ACT_GELU || act == ACT_RELU || act == ACT_TANH);
    int64_t n = ROWS(x), f = COLS(x);
#pragma omp parallel for if (n > 4)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = tensor_row_f32(x, i), *gi = tensor_row_f32(dout, i);
        float *dxi = tensor_row_f32(dx, i);
        act_grad_row(dxi, gi, xi, f, act);
    }
}
