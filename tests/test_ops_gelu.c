// The exact GELU of op_activation / op_activation_backward (host/ops/ops_cpu_encoder.c:
// its own vectorised erf, not libm's erff) against erf in double:
//   |gelu(x) - ref(x)| <= 1e-6 max(1, |x|) and the same for GELU'(x) = Phi(x) + x phi(x),
// over every x = -10 + 1e-4 k in [-10, 10], the tails (+-1e-30 .. +-100, decades and
// the clamp at 12.5 in between), the limits at +-inf (GELU: +inf and 0; GELU': 1 and 0)
// and NaN in -> NaN out; also in place and on row-strided views (a tensor_cols view of
// a wider tensor, where the columns outside must stay untouched).
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "ops/ops.h"

static const Device CPU = {DEV_CPU, 0};

static double gelu_ref(double x) {
    if (isinf(x)) return x > 0 ? x : 0.0;
    return 0.5 * x * erfc(-x / sqrt(2.0));
}

static double gelu_grad_ref(double x) {
    if (isinf(x)) return x > 0 ? 1.0 : 0.0;
    return 0.5 * erfc(-x / sqrt(2.0)) + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
}

// The grid: n floats into xs (NULL: count only).
static int64_t grid(float *xs) {
    int64_t n = 0;
    for (int64_t k = 0; k <= 200000; k++, n++)
        if (xs) xs[n] = (float)(-10.0 + 1e-4 * (double)k);
    for (int e = -30; e <= 2; e++)
        for (int m = 1; m <= 9; m++)
            for (int s = -1; s <= 1; s += 2, n++)
                if (xs) xs[n] = (float)(s * m * pow(10.0, e));
    const float extra[] = {0.0f, -0.0f, 12.4f, 12.5f, 12.6f, 13.0f, 13.2f, 20.0f, 1e10f, 3e38f, FLT_MIN, 1e-40f};
    for (size_t i = 0; i < sizeof extra / sizeof *extra; i++, n += 2)
        if (xs) xs[n] = extra[i], xs[n + 1] = -extra[i];
    return n;
}

static Tensor zeros(int64_t rows, int64_t cols) {
    Tensor t;
    cr_assert_eq(tensor_alloc_2d(&t, DT_F32, CPU, rows, cols), ST_OK);
    return t;
}

Test(ops_gelu, dense_grid_against_double) {
    int64_t n = grid(NULL);
    Tensor x = zeros(1, n), y = zeros(1, n), dx = zeros(1, n), g = zeros(1, n);
    float *xs = tensor_row_f32(&x, 0);
    grid(xs);
    for (int64_t i = 0; i < n; i++) tensor_row_f32(&g, 0)[i] = 1.0f;
    op_activation(&y, &x, ACT_GELU);
    op_activation_backward(&dx, &g, &x, ACT_GELU);
    double worst_f = 0, worst_d = 0, at_f = 0, at_d = 0;
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        double xi = xs[i], tol = fmax(1.0, fabs(xi));
        double ef = fabs(tensor_row_f32(&y, 0)[i] - gelu_ref(xi)) / tol;
        double ed = fabs(tensor_row_f32(&dx, 0)[i] - gelu_grad_ref(xi)) / tol;
        if (!(ef <= 1e-6) || !(ed <= 1e-6)) {
            if (bad++ < 10)
                cr_expect(false, "x = %.9g: gelu %.9g (want %.9g), gelu' %.9g (want %.9g)", xi,
                          tensor_row_f32(&y, 0)[i], gelu_ref(xi), tensor_row_f32(&dx, 0)[i], gelu_grad_ref(xi));
        }
        if (ef > worst_f) worst_f = ef, at_f = xi;
        if (ed > worst_d) worst_d = ed, at_d = xi;
    }
    cr_expect_eq(bad, 0, "%d of %ld points outside 1e-6 max(1, |x|)", bad, (long)n);
    cr_log_info("gelu: max |err| / max(1, |x|) %.3g at %g; gelu': %.3g at %g (%ld points)", worst_f, at_f, worst_d, at_d,
                (long)n);
    tensor_free(&x), tensor_free(&y), tensor_free(&dx), tensor_free(&g);
}

Test(ops_gelu, infinities_and_nan) {
    const float in[] = {INFINITY, -INFINITY, NAN, -NAN, 1.0f};
    Tensor x = zeros(1, 5), y = zeros(1, 5), dx = zeros(1, 5), g = zeros(1, 5);
    memcpy(tensor_row_f32(&x, 0), in, sizeof in);
    for (int i = 0; i < 5; i++) tensor_row_f32(&g, 0)[i] = 1.0f;
    op_activation(&y, &x, ACT_GELU);
    op_activation_backward(&dx, &g, &x, ACT_GELU);
    const float *o = tensor_row_f32(&y, 0), *d = tensor_row_f32(&dx, 0);
    cr_expect(isinf(o[0]) && o[0] > 0, "gelu(inf) = %g", o[0]);
    cr_expect(fabsf(o[1]) < 1e-30f, "gelu(-inf) = %g", o[1]);
    cr_expect(isnan(o[2]) && isnan(o[3]), "gelu(nan) = %g, %g", o[2], o[3]);
    cr_expect_eq(d[0], 1.0f, "gelu'(inf) = %g", d[0]);
    cr_expect(fabsf(d[1]) < 1e-30f, "gelu'(-inf) = %g", d[1]);
    cr_expect(isnan(d[2]) && isnan(d[3]), "gelu'(nan) = %g, %g", d[2], d[3]);
    cr_expect(fabs(o[4] - 0.8413447460685429) < 1e-7, "gelu(1) = %.9g", o[4]);
    tensor_free(&x), tensor_free(&y), tensor_free(&dx), tensor_free(&g);
}

// Rows of odd length (vector bodies and scalar tails) inside a wider tensor: a view of
// columns [3, 3 + F) with row stride F + 7; in place and out of place agree bit for bit,
// the columns outside the view keep their values, and the backward adds into dx.
Test(ops_gelu, in_place_and_strided) {
    const int N = 5, F = 37, W = F + 7;
    Tensor xb = zeros(N, W), yb = zeros(N, W), db = zeros(N, W), gb = zeros(N, W);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < W; j++) {
            tensor_row_f32(&xb, i)[j] = (float)(-6.0 + 12.0 * (i * W + j) / (N * W - 1));
            tensor_row_f32(&yb, i)[j] = -7.0f;
            tensor_row_f32(&db, i)[j] = 0.25f;
            tensor_row_f32(&gb, i)[j] = (float)(j % 5) - 2.0f;
        }
    Tensor x = tensor_cols(&xb, 3, F), y = tensor_cols(&yb, 3, F), d = tensor_cols(&db, 3, F), g = tensor_cols(&gb, 3, F);
    cr_assert_eq(tensor_ld(&x), W);
    op_activation(&y, &x, ACT_GELU);
    op_activation_backward(&d, &g, &x, ACT_GELU);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < W; j++) {
            double xi = tensor_row_f32(&xb, i)[j];
            float yv = tensor_row_f32(&yb, i)[j], dv = tensor_row_f32(&db, i)[j];
            if (j < 3 || j >= 3 + F) {
                cr_expect_eq(yv, -7.0f, "out[%d][%d] outside the view written", i, j);
                cr_expect_eq(dv, 0.25f, "dx[%d][%d] outside the view written", i, j);
                continue;
            }
            double gv = tensor_row_f32(&gb, i)[j];
            cr_expect(fabs(yv - gelu_ref(xi)) <= 1e-6 * fmax(1, fabs(xi)), "gelu(%g) = %.9g", xi, yv);
            cr_expect(fabs(dv - (0.25 + gv * gelu_grad_ref(xi))) <= 1e-6 * fmax(1, fabs(xi)) * (1 + fabs(gv)),
                      "dx at x = %g: %.9g", xi, dv);
        }
    op_activation(&x, &x, ACT_GELU); // in place: the same bits as out of place
    for (int i = 0; i < N; i++) {
        cr_expect_eq(memcmp(tensor_row_f32(&x, i), tensor_row_f32(&y, i), F * sizeof(float)), 0, "row %d in place", i);
        cr_expect_eq(tensor_row_f32(&xb, i)[0], (float)(-6.0 + 12.0 * (i * W) / (N * W - 1)), "row %d before the view", i);
    }
    tensor_free(&xb), tensor_free(&yb), tensor_free(&db), tensor_free(&gb);
}
