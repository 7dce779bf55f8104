// The encoder ops (ops.h, "encoders": layernorm, scale_shift, bias_add,
// activations), their backwards, bidirectional varlen attention and the
// embedding's negative ids, on the CPU.
//
// Forwards are compared with naive references in double:
//   - layernorm: |got - ref| <= 1e-5 (1 + |ref|) (fp32 arithmetic on O(1) values: a
//     few ulps, ~1e-6 observed); on rows offset by 1000 the mean itself rounds to
//     fp32 (ulp(1000) / 2 = 3e-5 of a unit deviation), so 1e-4 there;
//   - scale_shift, bias_add: 1e-6 (1 + |ref|) (one or two fp32 roundings);
//   - activations: 1e-6 (1 + |ref|) (erff / tanhf are within a few ulps);
//   - varlen attention (bidirectional): out and lse 1e-5 (1 + |ref|), as the
//     causal test in test_ops_grad.c.
// Backwards are checked against central finite differences as test_ops_grad.c
// does (its comment has the derivation): L = sum(r ⊙ f(inputs)) accumulated in
// double, f in fp32, eps = 1e-3; |analytic - numeric| <= 1e-2 max(|analytic|,
// |numeric|, 1e-2), along a random direction and FD_COORDS single coordinates.
// A wrong term fails by orders of magnitude.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "runtime/half.h"
#include "runtime/rng.h"

#define FD_EPS 1e-3f
#define FD_REL 1e-2
#define FD_FLOOR 1e-2
#define FD_COORDS 6

static const Device CPU = {DEV_CPU, 0};

// ---- tensors -------------------------------------------------------------------

static Tensor zeros_2d(int64_t rows, int64_t cols) {
    Tensor t;
    cr_assert_eq(tensor_alloc_2d(&t, DT_F32, CPU, rows, cols), ST_OK);
    return t;
}

static Tensor zeros_1d(int64_t n) {
    Tensor t;
    cr_assert_eq(tensor_alloc_1d(&t, DT_F32, CPU, n), ST_OK);
    return t;
}

static Tensor random_2d(Rng *r, int64_t rows, int64_t cols) {
    Tensor t = zeros_2d(rows, cols);
    for (int64_t i = 0; i < rows * cols; i++) ((float *)t.data)[i] = rng_normal(r);
    return t;
}

// A [D] parameter around mean with spread sd.
static Tensor random_1d(Rng *r, int64_t n, float mean, float sd) {
    Tensor t = zeros_1d(n);
    for (int64_t i = 0; i < n; i++) ((float *)t.data)[i] = mean + sd * rng_normal(r);
    return t;
}

static int64_t n_rows(const Tensor *t) { return t->ndim == 2 ? t->shape[0] : 1; }
static int64_t n_cols(const Tensor *t) { return t->shape[t->ndim - 1]; }
static int64_t numel(const Tensor *t) { return n_rows(t) * n_cols(t); }

// Element i (row-major over the logical shape) of a 1-d or 2-d f32 tensor or view.
static float *elem(const Tensor *t, int64_t i) {
    if (t->ndim == 1) return (float *)t->data + i;
    return tensor_row_f32(t, i / n_cols(t)) + i % n_cols(t);
}

static void fill(Tensor *t, float v) {
    for (int64_t i = 0; i < numel(t); i++) *elem(t, i) = v;
}

static void copy_into(Tensor *dst, const Tensor *src) {
    cr_assert_eq(numel(dst), numel(src));
    for (int64_t i = 0; i < numel(src); i++) *elem(dst, i) = *elem(src, i);
}

static Tensor copy_of(const Tensor *t) {
    Tensor c = t->ndim == 1 ? zeros_1d(n_cols(t)) : zeros_2d(n_rows(t), n_cols(t));
    copy_into(&c, t);
    return c;
}

static double project(const Tensor *r, const Tensor *y) {
    double s = 0.0;
    for (int64_t i = 0; i < numel(y); i++) s += (double)*elem(r, i) * *elem(y, i);
    return s;
}

static float at(const Tensor *t, int64_t i, int64_t j) { return tensor_row_f32(t, i)[j]; }

static void free_all(Tensor **all, size_t n) {
    for (size_t i = 0; i < n; i++) tensor_free(all[i]);
}
#define FREE_ALL(...)                                        \
    do {                                                     \
        Tensor *all_[] = {__VA_ARGS__};                      \
        free_all(all_, sizeof all_ / sizeof *all_);          \
    } while (0)

// ---- the finite-difference check (as test_ops_grad.c) -------------------------------

typedef double (*LossFn)(void *ctx);

static double fd_err(double analytic, double numeric) {
    double m = fmax(fmax(fabs(analytic), fabs(numeric)), FD_FLOOR);
    return fabs(analytic - numeric) / m;
}

// (L(x + delta) - L(x - delta)) / 2 and <grad, delta>, delta as stored in fp32.
static void fd_pair(LossFn loss, void *ctx, Tensor *x, const Tensor *grad, const float *u, double *analytic,
                    double *numeric) {
    int64_t n = numel(x);
    float *x0 = malloc((size_t)n * sizeof(float)), *xp = malloc((size_t)n * sizeof(float));
    cr_assert(x0 && xp);
    for (int64_t i = 0; i < n; i++) x0[i] = *elem(x, i);
    for (int64_t i = 0; i < n; i++) *elem(x, i) = xp[i] = x0[i] + FD_EPS * u[i];
    double lp = loss(ctx);
    for (int64_t i = 0; i < n; i++) *elem(x, i) = x0[i] - FD_EPS * u[i];
    double lm = loss(ctx);
    double a = 0.0;
    for (int64_t i = 0; i < n; i++) {
        a += (double)*elem(grad, i) * ((double)xp[i] - (double)*elem(x, i)) / 2.0;
        *elem(x, i) = x0[i];
    }
    *analytic = a;
    *numeric = (lp - lm) / 2.0;
    free(x0);
    free(xp);
}

static double fd_check(const char *what, LossFn loss, void *ctx, Tensor *x, const Tensor *grad, Rng *rng) {
    int64_t n = numel(x);
    cr_assert_eq(numel(grad), n, "%s: gradient shape", what);
    float *u = calloc((size_t)n, sizeof(float));
    cr_assert(u);
    double a, num, worst;
    for (int64_t i = 0; i < n; i++) u[i] = rng_normal(rng);
    fd_pair(loss, ctx, x, grad, u, &a, &num);
    worst = fd_err(a, num);
    cr_expect(fd_err(a, num) <= FD_REL, "%s: direction: analytic %.6g numeric %.6g", what, a / FD_EPS, num / FD_EPS);
    for (int c = 0; c < FD_COORDS; c++) {
        memset(u, 0, (size_t)n * sizeof(float));
        int64_t i = (int64_t)rng_below(rng, (uint64_t)n);
        u[i] = 1.0f;
        fd_pair(loss, ctx, x, grad, u, &a, &num);
        cr_expect(fd_err(a, num) <= FD_REL, "%s: element %ld: analytic %.6g numeric %.6g", what, (long)i, a / FD_EPS,
                  num / FD_EPS);
        worst = fmax(worst, fd_err(a, num));
    }
    free(u);
    cr_log_info("fd %s: max relative error %.2e", what, worst);
    return worst;
}

// b = 2 a element by element (a backward called twice accumulates), a not trivially zero.
static void expect_doubled(const char *what, const Tensor *once, const Tensor *twice) {
    double largest = 0;
    for (int64_t i = 0; i < numel(once); i++) {
        double a = *elem(once, i), b = *elem(twice, i);
        largest = fmax(largest, fabs(a));
        cr_expect_float_eq(b, 2 * a, 1e-5 * (1 + fabs(a)), "%s element %ld: once %g twice %g", what, (long)i, a, b);
    }
    cr_expect(largest > 0.1, "%s: the gradient is not trivially zero", what);
}

static void expect_same(const char *what, const Tensor *a, const Tensor *b) {
    for (int64_t i = 0; i < numel(a); i++) cr_expect_eq(*elem(a, i), *elem(b, i), "%s element %ld", what, (long)i);
}

// ---- layernorm -------------------------------------------------------------------------

// (x - mean) / sqrt(var + eps) * w + b in double, biased variance.
static double layernorm_ref(const float *x, int64_t d, double eps, const float *w, const float *b, int64_t j) {
    double mu = 0, var = 0;
    for (int64_t k = 0; k < d; k++) mu += x[k];
    mu /= (double)d;
    for (int64_t k = 0; k < d; k++) var += (x[k] - mu) * (x[k] - mu);
    var /= (double)d;
    return (x[j] - mu) / sqrt(var + eps) * w[j] + b[j];
}

static void check_layernorm(Rng *rng, int N, int D, float offset, float eps, double tol) {
    Tensor xb = random_2d(rng, N + 1, D + 5), ob = zeros_2d(N + 2, D + 3);
    for (int64_t i = 0; i < numel(&xb); i++) *elem(&xb, i) = offset + 2.0f * *elem(&xb, i);
    Tensor w = random_1d(rng, D, 1.0f, 0.3f), b = random_1d(rng, D, 0.0f, 0.5f);
    Tensor x = tensor_cols(&xb, 2, D), ov = tensor_rows(&ob, 1, N);
    x = tensor_rows(&x, 1, N);
    ov = tensor_cols(&ov, 3, D);
    fill(&ob, NAN);
    op_layernorm(&ov, &x, &w, &b, eps);
    double worst = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            double ref = layernorm_ref(tensor_row_f32(&x, i), D, eps, w.data, b.data, j), got = at(&ov, i, j);
            worst = fmax(worst, fabs(got - ref) / (1 + fabs(ref)));
            cr_expect(fabs(got - ref) <= tol * (1 + fabs(ref)), "layernorm [%d, %d] offset %g: (%d, %d) %.8g vs %.8g",
                      N, D, offset, i, j, got, ref);
        }
    for (int j = 0; j < D + 3; j++) cr_expect(isnan(at(&ob, 0, j)), "rows outside the output view untouched");
    cr_log_info("layernorm [%d, %d] offset %g: max relative error %.2e", N, D, offset, worst);
    // in place (out = x) gives the same values
    Tensor before = copy_of(&ov);
    op_layernorm(&x, &x, &w, &b, eps);
    expect_same("layernorm in place", &before, &x);
    FREE_ALL(&xb, &ob, &w, &b, &before);
}

Test(ops_encoder, layernorm_matches_formula) {
    Rng rng;
    rng_seed(&rng, 31);
    check_layernorm(&rng, 5, 37, 0.0f, 1e-12f, 1e-5); // BERT's eps
    check_layernorm(&rng, 3, 768, 0.5f, 1e-5f, 1e-5);
    check_layernorm(&rng, 4, 64, 1000.0f, 1e-12f, 1e-4); // two passes: no cancellation in the variance
    // a constant row: var = 0, the output is b
    Tensor x = zeros_2d(1, 8), w = random_1d(&rng, 8, 1.0f, 0.3f), b = random_1d(&rng, 8, 0.0f, 0.5f), out = zeros_2d(1, 8);
    fill(&x, 3.25f);
    op_layernorm(&out, &x, &w, &b, 1e-5f);
    for (int j = 0; j < 8; j++) cr_expect_eq(at(&out, 0, j), ((float *)b.data)[j], "constant row -> b");
    FREE_ALL(&x, &w, &b, &out);
}

typedef struct {
    Tensor x, w, b, out, r;
    float eps;
} LayernormCase;

static double layernorm_loss(void *ctx) {
    LayernormCase *c = ctx;
    op_layernorm(&c->out, &c->x, &c->w, &c->b, c->eps);
    return project(&c->r, &c->out);
}

Test(ops_encoder, fd_layernorm) {
    Rng rng;
    rng_seed(&rng, 32);
    int N = 4, D = 12;
    Tensor xb = random_2d(&rng, N, D + 6);
    LayernormCase c = {tensor_cols(&xb, 3, D), random_1d(&rng, D, 1.0f, 0.5f), random_1d(&rng, D, 0.0f, 0.5f),
                       zeros_2d(N, D), random_2d(&rng, N, D), 1e-5f};
    // r = y + noise: the terms through the mean and the variance matter as much as the direct one
    layernorm_loss(&c);
    for (int64_t i = 0; i < N * D; i++) *elem(&c.r, i) = *elem(&c.out, i) + 0.5f * *elem(&c.r, i);
    Tensor dxb = zeros_2d(N, D + 2), dx = tensor_cols(&dxb, 1, D), dw = zeros_1d(D), db = zeros_1d(D);
    op_layernorm_backward(&dx, &dw, &db, &c.r, &c.x, &c.w, c.eps);
    fd_check("layernorm dx", layernorm_loss, &c, &c.x, &dx, &rng);
    fd_check("layernorm dw", layernorm_loss, &c, &c.w, &dw, &rng);
    fd_check("layernorm db", layernorm_loss, &c, &c.b, &db, &rng);
    for (int i = 0; i < N; i++) {
        cr_expect_eq(at(&dxb, i, 0), 0.0f, "dx columns outside the view untouched");
        cr_expect_eq(at(&dxb, i, D + 1), 0.0f, "dx columns outside the view untouched");
    }
    // each gradient alone (the others NULL) is the same
    Tensor dx1 = zeros_2d(N, D), dw1 = zeros_1d(D), db1 = zeros_1d(D);
    op_layernorm_backward(&dx1, NULL, NULL, &c.r, &c.x, &c.w, c.eps);
    op_layernorm_backward(NULL, &dw1, NULL, &c.r, &c.x, &c.w, c.eps);
    op_layernorm_backward(NULL, NULL, &db1, &c.r, &c.x, &c.w, c.eps);
    expect_same("layernorm dx alone", &dx1, &dx);
    expect_same("layernorm dw alone", &dw1, &dw);
    expect_same("layernorm db alone", &db1, &db);
    // and the sum of dx over a row is 0 (the mean is subtracted)
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int j = 0; j < D; j++) s += at(&dx, i, j);
        cr_expect(fabs(s) < 1e-5, "row %d: sum dx = %g", i, s);
    }
    FREE_ALL(&xb, &c.w, &c.b, &c.out, &c.r, &dxb, &dw, &db, &dx1, &dw1, &db1);
}

// ---- scale_shift, bias ---------------------------------------------------------------------

Test(ops_encoder, scale_shift_and_bias_add_match_formula) {
    Rng rng;
    rng_seed(&rng, 33);
    int N = 6, D = 40;
    Tensor xb = random_2d(&rng, N + 2, D + 4), x = tensor_cols(&xb, 4, D);
    x = tensor_rows(&x, 1, N);
    Tensor w = random_1d(&rng, D, 1.0f, 0.5f), b = random_1d(&rng, D, 0.0f, 1.0f);
    Tensor out = zeros_2d(N, D), out_nob = zeros_2d(N, D);
    op_scale_shift(&out, &x, &w, &b);
    op_scale_shift(&out_nob, &x, &w, NULL);
    const float *wd = w.data, *bd = b.data;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            double y = (double)at(&x, i, j) * wd[j];
            cr_expect(fabs(at(&out, i, j) - (y + bd[j])) <= 1e-6 * (1 + fabs(y + bd[j])), "scale_shift (%d, %d)", i, j);
            cr_expect(fabs(at(&out_nob, i, j) - y) <= 1e-6 * (1 + fabs(y)), "scale_shift, b NULL (%d, %d)", i, j);
        }
    // bias_add on a strided view leaves the parent's other columns and rows alone
    Tensor before = copy_of(&xb);
    op_bias_add(&x, &b);
    for (int i = 0; i < N + 2; i++)
        for (int j = 0; j < D + 4; j++) {
            bool in = i >= 1 && i <= N && j >= 4;
            float want = in ? at(&before, i, j) + bd[j - 4] : at(&before, i, j);
            cr_expect_eq(at(&xb, i, j), want, "bias_add parent (%d, %d)", i, j);
        }
    FREE_ALL(&xb, &w, &b, &out, &out_nob, &before);
}

typedef struct {
    Tensor x, w, b, out, r;
    bool with_b;
} ScaleShiftCase;

static double scale_shift_loss(void *ctx) {
    ScaleShiftCase *c = ctx;
    op_scale_shift(&c->out, &c->x, &c->w, c->with_b ? &c->b : NULL);
    return project(&c->r, &c->out);
}

Test(ops_encoder, fd_scale_shift) {
    Rng rng;
    rng_seed(&rng, 34);
    int N = 5, D = 9;
    Tensor xb = random_2d(&rng, N, D + 3);
    ScaleShiftCase c = {tensor_cols(&xb, 0, D), random_1d(&rng, D, 1.0f, 0.5f), random_1d(&rng, D, 0.0f, 0.5f),
                        zeros_2d(N, D), random_2d(&rng, N, D), true};
    Tensor dx = zeros_2d(N, D), dw = zeros_1d(D), db = zeros_1d(D);
    op_scale_shift_backward(&dx, &dw, &db, &c.r, &c.x, &c.w);
    fd_check("scale_shift dx", scale_shift_loss, &c, &c.x, &dx, &rng);
    fd_check("scale_shift dw", scale_shift_loss, &c, &c.w, &dw, &rng);
    fd_check("scale_shift db", scale_shift_loss, &c, &c.b, &db, &rng);
    c.with_b = false; // NoNorm without a bias: the same dx and dw
    fd_check("scale_shift (no b) dx", scale_shift_loss, &c, &c.x, &dx, &rng);
    fd_check("scale_shift (no b) dw", scale_shift_loss, &c, &c.w, &dw, &rng);
    Tensor dw1 = zeros_1d(D), db1 = zeros_1d(D);
    op_scale_shift_backward(NULL, &dw1, NULL, &c.r, &c.x, &c.w);
    op_scale_shift_backward(NULL, NULL, &db1, &c.r, &c.x, &c.w);
    expect_same("scale_shift dw alone", &dw1, &dw);
    expect_same("scale_shift db alone", &db1, &db);
    FREE_ALL(&xb, &c.w, &c.b, &c.out, &c.r, &dx, &dw, &db, &dw1, &db1);
}

typedef struct {
    Tensor x0, y, b, r; // y = x0 + b
} BiasCase;

static double bias_loss(void *ctx) {
    BiasCase *c = ctx;
    copy_into(&c->y, &c->x0);
    op_bias_add(&c->y, &c->b);
    return project(&c->r, &c->y);
}

Test(ops_encoder, fd_bias) {
    Rng rng;
    rng_seed(&rng, 35);
    int N = 7, D = 70; // more than one column block of the CPU's reduction (64)
    BiasCase c = {random_2d(&rng, N, D), zeros_2d(N, D), random_1d(&rng, D, 0.0f, 1.0f), random_2d(&rng, N, D)};
    Tensor rb = random_2d(&rng, N, D + 5), rv = tensor_cols(&rb, 5, D); // dout as a strided view
    copy_into(&rv, &c.r);
    Tensor db = zeros_1d(D);
    op_bias_backward(&db, &rv);
    fd_check("bias db", bias_loss, &c, &c.b, &db, &rng);
    for (int j = 0; j < D; j++) {
        double s = 0;
        for (int i = 0; i < N; i++) s += at(&c.r, i, j);
        cr_expect_float_eq(((float *)db.data)[j], (float)s, 1e-5, "db[%d] = column sum", j);
    }
    FREE_ALL(&c.x0, &c.y, &c.b, &c.r, &rb, &db);
}

// ---- activations ------------------------------------------------------------------------------

static double act_ref(Activation a, double x) {
    switch (a) {
    case ACT_GELU: return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
    case ACT_RELU: return x > 0 ? x : 0;
    case ACT_TANH: return tanh(x);
    }
    return NAN;
}

static const char *act_name(Activation a) { return a == ACT_GELU ? "gelu" : a == ACT_RELU ? "relu" : "tanh"; }

Test(ops_encoder, activations_match_formulas) {
    int N = 3, F = 401; // x from -10 to 10 in steps of 0.05 (and 0 exactly)
    Tensor x = zeros_2d(N, F), out = zeros_2d(N, F);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < F; j++) tensor_row_f32(&x, i)[j] = (float)(i + 1) * (-10.0f + 0.05f * (float)j) / 2.0f;
    const Activation acts[] = {ACT_GELU, ACT_RELU, ACT_TANH};
    for (int a = 0; a < 3; a++) {
        op_activation(&out, &x, acts[a]);
        double worst = 0;
        for (int64_t i = 0; i < N * F; i++) {
            double ref = act_ref(acts[a], *elem(&x, i)), got = *elem(&out, i);
            worst = fmax(worst, fabs(got - ref) / (1 + fabs(ref)));
            cr_expect(fabs(got - ref) <= 1e-6 * (1 + fabs(ref)), "%s(%g) = %.9g, want %.9g", act_name(acts[a]),
                      *elem(&x, i), got, ref);
        }
        cr_log_info("%s: max relative error %.2e", act_name(acts[a]), worst);
        Tensor y = copy_of(&x);
        op_activation(&y, &y, acts[a]); // in place
        expect_same("activation in place", &out, &y);
        tensor_free(&y);
    }
    // known values of the exact GELU (not the tanh approximation: 0.841192 at 1)
    Tensor one = zeros_2d(1, 3), g = zeros_2d(1, 3);
    tensor_row_f32(&one, 0)[0] = 1.0f, tensor_row_f32(&one, 0)[1] = -1.0f, tensor_row_f32(&one, 0)[2] = 3.0f;
    op_activation(&g, &one, ACT_GELU);
    cr_expect_float_eq(at(&g, 0, 0), 0.8413447460685429f, 1e-7);
    cr_expect_float_eq(at(&g, 0, 1), -0.15865525393145707f, 1e-7);
    cr_expect_float_eq(at(&g, 0, 2), 2.9959502733646880f, 1e-6);
    FREE_ALL(&x, &out, &one, &g);
}

typedef struct {
    Tensor x, out, r;
    Activation act;
} ActCase;

static double act_loss(void *ctx) {
    ActCase *c = ctx;
    op_activation(&c->out, &c->x, c->act);
    return project(&c->r, &c->out);
}

Test(ops_encoder, fd_activations) {
    Rng rng;
    rng_seed(&rng, 36);
    const Activation acts[] = {ACT_GELU, ACT_RELU, ACT_TANH};
    for (int a = 0; a < 3; a++) {
        int N = 4, F = 25;
        Tensor xb = random_2d(&rng, N, F + 4);
        ActCase c = {tensor_cols(&xb, 2, F), zeros_2d(N, F), random_2d(&rng, N, F), acts[a]};
        // ReLU's kink: keep every x at least 0.05 away from 0, so x +- eps stays on one side
        for (int64_t i = 0; i < numel(&c.x); i++)
            if (fabsf(*elem(&c.x, i)) < 0.05f) *elem(&c.x, i) = *elem(&c.x, i) < 0 ? -0.05f : 0.05f;
        Tensor dx = zeros_2d(N, F);
        op_activation_backward(&dx, &c.r, &c.x, c.act);
        char what[48];
        snprintf(what, sizeof what, "%s dx", act_name(acts[a]));
        fd_check(what, act_loss, &c, &c.x, &dx, &rng);
        FREE_ALL(&xb, &c.out, &c.r, &dx);
    }
}

// ---- the += contract of the new backwards -------------------------------------------------------

Test(ops_encoder, backward_accumulates) {
    Rng rng;
    rng_seed(&rng, 37);
    int N = 4, D = 10;
    Tensor x = random_2d(&rng, N, D), dout = random_2d(&rng, N, D);
    Tensor w = random_1d(&rng, D, 1.0f, 0.5f);
    Tensor dx = zeros_2d(N, D), dw = zeros_1d(D), db = zeros_1d(D);
    op_layernorm_backward(&dx, &dw, &db, &dout, &x, &w, 1e-5f);
    Tensor dx1 = copy_of(&dx), dw1 = copy_of(&dw), db1 = copy_of(&db);
    op_layernorm_backward(&dx, &dw, &db, &dout, &x, &w, 1e-5f);
    expect_doubled("layernorm dx", &dx1, &dx);
    expect_doubled("layernorm dw", &dw1, &dw);
    expect_doubled("layernorm db", &db1, &db);
    FREE_ALL(&dx, &dw, &db, &dx1, &dw1, &db1);

    dx = zeros_2d(N, D), dw = zeros_1d(D), db = zeros_1d(D);
    op_scale_shift_backward(&dx, &dw, &db, &dout, &x, &w);
    dx1 = copy_of(&dx), dw1 = copy_of(&dw), db1 = copy_of(&db);
    op_scale_shift_backward(&dx, &dw, &db, &dout, &x, &w);
    expect_doubled("scale_shift dx", &dx1, &dx);
    expect_doubled("scale_shift dw", &dw1, &dw);
    expect_doubled("scale_shift db", &db1, &db);
    FREE_ALL(&dx, &dw, &db, &dx1, &dw1, &db1);

    db = zeros_1d(D);
    op_bias_backward(&db, &dout);
    db1 = copy_of(&db);
    op_bias_backward(&db, &dout);
    expect_doubled("bias db", &db1, &db);
    FREE_ALL(&db, &db1);

    const Activation acts[] = {ACT_GELU, ACT_RELU, ACT_TANH};
    for (int a = 0; a < 3; a++) {
        dx = zeros_2d(N, D);
        op_activation_backward(&dx, &dout, &x, acts[a]);
        dx1 = copy_of(&dx);
        op_activation_backward(&dx, &dout, &x, acts[a]);
        expect_doubled(act_name(acts[a]), &dx1, &dx);
        FREE_ALL(&dx, &dx1);
    }
    FREE_ALL(&x, &dout, &w);
}

// ---- embedding: negative ids ------------------------------------------------------------------

typedef struct {
    Tensor table, out, r;
    const int32_t *ids;
} EmbeddingCase;

static double embedding_loss(void *ctx) {
    EmbeddingCase *c = ctx;
    op_embedding(&c->out, &c->table, c->ids);
    return project(&c->r, &c->out);
}

Test(ops_encoder, embedding_negative_ids) {
    Rng rng;
    rng_seed(&rng, 38);
    int32_t ids[9] = {-1, 2, -1, -1, 0, 4, -7, 2, -1}; // runs of negatives at both ends and inside
    int V = 5, D = 12, N = 9;
    EmbeddingCase c = {random_2d(&rng, V, D), zeros_2d(N, D), random_2d(&rng, N, D), ids};
    fill(&c.out, NAN);
    op_embedding(&c.out, &c.table, ids);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            cr_expect_eq(at(&c.out, i, j), ids[i] < 0 ? 0.0f : at(&c.table, ids[i], j), "f32 row %d col %d", i, j);
    // a bf16 table (the low-bit path): the same zeros, the widened rows elsewhere
    Tensor t16, out16 = zeros_2d(N, D);
    cr_assert_eq(tensor_alloc_2d(&t16, DT_BF16, CPU, V, D), ST_OK);
    for (int64_t i = 0; i < V * D; i++) ((uint16_t *)t16.data)[i] = f32_to_bf16(((float *)c.table.data)[i]);
    fill(&out16, NAN);
    op_embedding(&out16, &t16, ids);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            float want = ids[i] < 0 ? 0.0f : bf16_to_f32(((uint16_t *)t16.data)[ids[i] * D + j]);
            cr_expect_eq(at(&out16, i, j), want, "bf16 row %d col %d", i, j);
        }
    // the backward skips them: FD through the forward, and the unused rows stay 0
    Tensor dtable = zeros_2d(V, D);
    op_embedding_backward(&dtable, &c.r, ids);
    fd_check("embedding dtable (negative ids)", embedding_loss, &c, &c.table, &dtable, &rng);
    for (int j = 0; j < D; j++) {
        cr_expect_eq(at(&dtable, 1, j), 0.0f, "row 1 is never used");
        cr_expect_eq(at(&dtable, 3, j), 0.0f, "row 3 is never used");
        cr_expect_float_eq(at(&dtable, 2, j), at(&c.r, 1, j) + at(&c.r, 7, j), 1e-6);
    }
    FREE_ALL(&c.table, &c.out, &c.r, &t16, &out16, &dtable);
}

// ---- bidirectional varlen attention --------------------------------------------------------------

typedef struct {
    VarlenShape s;
    int32_t cu[8];
    Tensor qb, kb, vb;  // wider buffers
    Tensor q, k, v;     // [N, H*hd], [N, KV*hd] column-prefix views of them
    Tensor out, lse, r; // [N, H*hd], [H, N], [N, H*hd]
    Tensor dq, dk, dv;
} AttnCase;

static void attn_case_init(AttnCase *c, Rng *rng, const int *lens, int n_seq, int H, int KV, int hd, bool bidir) {
    memset(c, 0, sizeof *c);
    for (int b = 0; b < n_seq; b++) c->cu[b + 1] = c->cu[b] + lens[b];
    int N = c->cu[n_seq];
    c->s = (VarlenShape){.cu = c->cu, .n_seq = n_seq, .n_heads = H, .n_kv_heads = KV, .head_dim = hd,
                         .bidirectional = bidir};
    c->qb = random_2d(rng, N, (H + 1) * hd);
    c->kb = random_2d(rng, N, (KV + 1) * hd);
    c->vb = random_2d(rng, N, KV * hd + 3);
    c->q = tensor_cols(&c->qb, 0, H * hd);
    c->k = tensor_cols(&c->kb, 0, KV * hd);
    c->v = tensor_cols(&c->vb, 0, KV * hd);
    c->out = zeros_2d(N, H * hd);
    c->lse = zeros_2d(H, N);
    c->r = random_2d(rng, N, H * hd);
    c->dq = zeros_2d(N, H * hd);
    c->dk = zeros_2d(N, KV * hd);
    c->dv = zeros_2d(N, KV * hd);
}

static void attn_case_free(AttnCase *c) {
    FREE_ALL(&c->qb, &c->kb, &c->vb, &c->out, &c->lse, &c->r, &c->dq, &c->dk, &c->dv);
}

// Naive attention in double of query row t (absolute) and head h over the keys
// [k0, k1): out row into o[hd], returns the log-sum-exp of the scaled scores.
static double naive_attend(const AttnCase *c, int t, int h, int k0, int k1, double *o) {
    int hd = c->s.head_dim, kvh = h / (c->s.n_heads / c->s.n_kv_heads);
    double mx = -INFINITY, sum = 0, *sc = malloc((size_t)(k1 - k0) * sizeof(double));
    cr_assert(sc);
    for (int j = k0; j < k1; j++) {
        double d = 0;
        for (int e = 0; e < hd; e++) d += (double)at(&c->q, t, h * hd + e) * at(&c->k, j, kvh * hd + e);
        sc[j - k0] = d / sqrt(hd);
        mx = fmax(mx, sc[j - k0]);
    }
    for (int e = 0; e < hd; e++) o[e] = 0;
    for (int j = k0; j < k1; j++) {
        double p = exp(sc[j - k0] - mx);
        sum += p;
        for (int e = 0; e < hd; e++) o[e] += p * at(&c->v, j, kvh * hd + e);
    }
    for (int e = 0; e < hd; e++) o[e] /= sum;
    free(sc);
    return mx + log(sum);
}

// out and lse against the naive reference: a query sees its whole sequence
// (bidirectional) or the keys up to itself (causal, as test_ops_grad.c checks too);
// sequences of 1 and 0 tokens and one longer than the CPU's query block (64).
static void check_varlen_forward(bool bidir, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    const int lens[5] = {5, 1, 0, 70, 9};
    int H = 4, KV = 2, hd = 8;
    AttnCase c;
    attn_case_init(&c, &rng, lens, 5, H, KV, hd, bidir);
    op_attention_varlen(&c.out, &c.lse, &c.q, &c.k, &c.v, &c.s);
    double o[8], worst = 0, worst_lse = 0;
    for (int b = 0; b < 5; b++)
        for (int t = c.cu[b]; t < c.cu[b + 1]; t++)
            for (int h = 0; h < H; h++) {
                double lse = naive_attend(&c, t, h, c.cu[b], bidir ? c.cu[b + 1] : t + 1, o);
                double got_lse = at(&c.lse, h, t);
                worst_lse = fmax(worst_lse, fabs(got_lse - lse));
                cr_expect(fabs(got_lse - lse) <= 1e-5 * (1 + fabs(lse)), "lse seq %d t %d head %d: %g vs %g", b, t, h,
                          got_lse, lse);
                for (int e = 0; e < hd; e++) {
                    double got = at(&c.out, t, h * hd + e);
                    worst = fmax(worst, fabs(got - o[e]));
                    cr_expect(fabs(got - o[e]) <= 1e-5 * (1 + fabs(o[e])), "out seq %d t %d head %d col %d: %g vs %g", b,
                              t, h, e, got, o[e]);
                }
            }
    cr_log_info("varlen %s: max |out - naive| %.2e, max |lse - naive| %.2e", bidir ? "bidirectional" : "causal", worst,
                worst_lse);
    attn_case_free(&c);
}

Test(ops_encoder, attention_varlen_bidirectional_matches_naive) { check_varlen_forward(true, 40); }
Test(ops_encoder, attention_varlen_causal_matches_naive) { check_varlen_forward(false, 41); }

// A sequence's first query sees its last key only when bidirectional: the outputs
// differ from the causal ones except at each sequence's last row (which sees
// everything either way), where they are equal bit for bit.
Test(ops_encoder, attention_varlen_bidirectional_differs_from_causal) {
    Rng rng;
    rng_seed(&rng, 42);
    const int lens[3] = {4, 1, 6};
    AttnCase bi, ca;
    attn_case_init(&bi, &rng, lens, 3, 2, 2, 8, true);
    rng_seed(&rng, 42);
    attn_case_init(&ca, &rng, lens, 3, 2, 2, 8, false);
    op_attention_varlen(&bi.out, NULL, &bi.q, &bi.k, &bi.v, &bi.s);
    op_attention_varlen(&ca.out, NULL, &ca.q, &ca.k, &ca.v, &ca.s);
    for (int b = 0; b < 3; b++)
        for (int t = bi.cu[b]; t < bi.cu[b + 1]; t++) {
            bool last = t == bi.cu[b + 1] - 1;
            int same = 0;
            for (int e = 0; e < 16; e++) same += at(&bi.out, t, e) == at(&ca.out, t, e);
            if (last) cr_expect_eq(same, 16, "row %d (its sequence's last) sees the same keys", t);
            else cr_expect_lt(same, 16, "row %d sees later keys when bidirectional", t);
        }
    attn_case_free(&bi);
    attn_case_free(&ca);
}

static double attn_loss(void *ctx) {
    AttnCase *c = ctx;
    op_attention_varlen(&c->out, NULL, &c->q, &c->k, &c->v, &c->s);
    return project(&c->r, &c->out);
}

static void fd_attention(const char *name, const int *lens, int n_seq, int H, int KV, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    AttnCase c;
    attn_case_init(&c, &rng, lens, n_seq, H, KV, 8, true);
    op_attention_varlen(&c.out, &c.lse, &c.q, &c.k, &c.v, &c.s);
    op_attention_varlen_backward(&c.dq, &c.dk, &c.dv, &c.r, &c.q, &c.k, &c.v, &c.out, &c.lse, &c.s);
    char what[80];
    snprintf(what, sizeof what, "%s dq", name);
    fd_check(what, attn_loss, &c, &c.q, &c.dq, &rng);
    snprintf(what, sizeof what, "%s dk", name);
    fd_check(what, attn_loss, &c, &c.k, &c.dk, &rng);
    snprintf(what, sizeof what, "%s dv", name);
    fd_check(what, attn_loss, &c, &c.v, &c.dv, &rng);
    // the += contract (the FD loop left out at a perturbed input: the forward again first)
    op_attention_varlen(&c.out, &c.lse, &c.q, &c.k, &c.v, &c.s);
    Tensor dq1 = copy_of(&c.dq), dk1 = copy_of(&c.dk), dv1 = copy_of(&c.dv);
    op_attention_varlen_backward(&c.dq, &c.dk, &c.dv, &c.r, &c.q, &c.k, &c.v, &c.out, &c.lse, &c.s);
    expect_doubled("bidirectional dq", &dq1, &c.dq);
    expect_doubled("bidirectional dk", &dk1, &c.dk);
    expect_doubled("bidirectional dv", &dv1, &c.dv);
    FREE_ALL(&dq1, &dk1, &dv1);
    attn_case_free(&c);
}

Test(ops_encoder, fd_attention_varlen_bidirectional_mha) {
    fd_attention("bidirectional mha", (const int[]){1, 5, 9}, 3, 4, 4, 43);
}
Test(ops_encoder, fd_attention_varlen_bidirectional_gqa) {
    fd_attention("bidirectional gqa", (const int[]){1, 5, 9}, 3, 4, 2, 44);
}
// A sequence longer than one query block (64): later blocks' keys reach back into earlier ones.
Test(ops_encoder, fd_attention_varlen_bidirectional_long) {
    fd_attention("bidirectional long", (const int[]){3, 70}, 2, 2, 1, 45);
}
