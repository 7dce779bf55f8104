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
// Backwards are checked against central finite differences by tu_fd_check
// (test_util.h has the derivation of its tolerance), along a random direction
// and TU_FD_COORDS single coordinates. A wrong term fails by orders of magnitude.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "runtime/half.h"
#include "runtime/rng.h"
#include "test_util.h"

static const Device CPU = {DEV_CPU, 0};

static void expect_same(const char *what, const Tensor *a, const Tensor *b) {
    for (int64_t i = 0; i < tu_numel(a); i++)
        cr_expect_eq(*tu_elem(a, i), *tu_elem(b, i), "%s element %ld", what, (long)i);
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
    Tensor xb = tu_random_2d(rng, N + 1, D + 5), ob = tu_zeros_2d(N + 2, D + 3);
    for (int64_t i = 0; i < tu_numel(&xb); i++) *tu_elem(&xb, i) = offset + 2.0f * *tu_elem(&xb, i);
    Tensor w = tu_random_1d(rng, D, 1.0f, 0.3f), b = tu_random_1d(rng, D, 0.0f, 0.5f);
    Tensor x = tensor_cols(&xb, 2, D), ov = tensor_rows(&ob, 1, N);
    x = tensor_rows(&x, 1, N);
    ov = tensor_cols(&ov, 3, D);
    tu_fill(&ob, NAN);
    op_layernorm(&ov, &x, &w, &b, eps);
    double worst = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            double ref = layernorm_ref(tensor_row_f32(&x, i), D, eps, w.data, b.data, j), got = tu_at(&ov, i, j);
            worst = fmax(worst, fabs(got - ref) / (1 + fabs(ref)));
            cr_expect(fabs(got - ref) <= tol * (1 + fabs(ref)), "layernorm [%d, %d] offset %g: (%d, %d) %.8g vs %.8g",
                      N, D, offset, i, j, got, ref);
        }
    for (int j = 0; j < D + 3; j++) cr_expect(isnan(tu_at(&ob, 0, j)), "rows outside the output view untouched");
    cr_log_info("layernorm [%d, %d] offset %g: max relative error %.2e", N, D, offset, worst);
    // in place (out = x) gives the same values
    Tensor before = tu_copy_of(&ov);
    op_layernorm(&x, &x, &w, &b, eps);
    expect_same("layernorm in place", &before, &x);
    TU_FREE_ALL(&xb, &ob, &w, &b, &before);
}

Test(ops_encoder, layernorm_matches_formula) {
    Rng rng;
    rng_seed(&rng, 31);
    check_layernorm(&rng, 5, 37, 0.0f, 1e-12f, 1e-5); // BERT's eps
    check_layernorm(&rng, 3, 768, 0.5f, 1e-5f, 1e-5);
    check_layernorm(&rng, 4, 64, 1000.0f, 1e-12f, 1e-4); // two passes: no cancellation in the variance
    // a constant row: var = 0, the output is b
    Tensor x = tu_zeros_2d(1, 8), w = tu_random_1d(&rng, 8, 1.0f, 0.3f), b = tu_random_1d(&rng, 8, 0.0f, 0.5f),
           out = tu_zeros_2d(1, 8);
    tu_fill(&x, 3.25f);
    op_layernorm(&out, &x, &w, &b, 1e-5f);
    for (int j = 0; j < 8; j++) cr_expect_eq(tu_at(&out, 0, j), ((float *)b.data)[j], "constant row -> b");
    TU_FREE_ALL(&x, &w, &b, &out);
}

// The FD cases of this file's ops: out = f(x, w, b), L = sum(r ⊙ out).
typedef enum { CASE_LAYERNORM, CASE_SCALE_SHIFT, CASE_BIAS, CASE_ACTIVATION } CaseOp;

typedef struct {
    CaseOp op;
    Tensor xb;              // x's parent buffer, where x is a view of one
    Tensor x, w, b, out, r; // x, out, r [N, D]; w, b [D]
    float eps;              // layernorm
    bool with_b;            // scale_shift: b, else NULL
    Activation act;         // activation
} OpCase;

static double op_case_loss(void *ctx) {
    OpCase *c = ctx;
    switch (c->op) {
    case CASE_LAYERNORM: op_layernorm(&c->out, &c->x, &c->w, &c->b, c->eps); break;
    case CASE_SCALE_SHIFT: op_scale_shift(&c->out, &c->x, &c->w, c->with_b ? &c->b : NULL); break;
    case CASE_BIAS: // in place: out = x, then out += b
        tu_copy_into(&c->out, &c->x);
        op_bias_add(&c->out, &c->b);
        break;
    case CASE_ACTIVATION: op_activation(&c->out, &c->x, c->act); break;
    }
    return tu_project(&c->r, &c->out);
}

// A layernorm or scale_shift case: x = columns [c0, c0 + D) of xb, a random
// [N, D + pad] buffer; w around 1 and b around 0 (spread 0.5); r random.
static OpCase affine_case(Rng *rng, CaseOp op, int N, int D, int c0, int pad) {
    OpCase c = {.op = op, .xb = tu_random_2d(rng, N, D + pad)};
    c.x = tensor_cols(&c.xb, c0, D);
    c.w = tu_random_1d(rng, D, 1.0f, 0.5f);
    c.b = tu_random_1d(rng, D, 0.0f, 0.5f);
    c.out = tu_zeros_2d(N, D);
    c.r = tu_random_2d(rng, N, D);
    return c;
}

Test(ops_encoder, fd_layernorm) {
    Rng rng;
    rng_seed(&rng, 32);
    int N = 4, D = 12;
    OpCase c = affine_case(&rng, CASE_LAYERNORM, N, D, 3, 6);
    c.eps = 1e-5f;
    // r = y + noise: the terms through the mean and the variance matter as much as the direct one
    op_case_loss(&c);
    for (int64_t i = 0; i < N * D; i++) *tu_elem(&c.r, i) = *tu_elem(&c.out, i) + 0.5f * *tu_elem(&c.r, i);
    Tensor dxb = tu_zeros_2d(N, D + 2), dx = tensor_cols(&dxb, 1, D), dw = tu_zeros_1d(D), db = tu_zeros_1d(D);
    op_layernorm_backward(&dx, &dw, &db, &c.r, &c.x, &c.w, c.eps);
    tu_fd_check("layernorm dx", op_case_loss, &c, &c.x, &dx, &rng);
    tu_fd_check("layernorm dw", op_case_loss, &c, &c.w, &dw, &rng);
    tu_fd_check("layernorm db", op_case_loss, &c, &c.b, &db, &rng);
    for (int i = 0; i < N; i++) {
        cr_expect_eq(tu_at(&dxb, i, 0), 0.0f, "dx columns outside the view untouched");
        cr_expect_eq(tu_at(&dxb, i, D + 1), 0.0f, "dx columns outside the view untouched");
    }
    // each gradient alone (the others NULL) is the same
    Tensor dx1 = tu_zeros_2d(N, D), dw1 = tu_zeros_1d(D), db1 = tu_zeros_1d(D);
    op_layernorm_backward(&dx1, NULL, NULL, &c.r, &c.x, &c.w, c.eps);
    op_layernorm_backward(NULL, &dw1, NULL, &c.r, &c.x, &c.w, c.eps);
    op_layernorm_backward(NULL, NULL, &db1, &c.r, &c.x, &c.w, c.eps);
    expect_same("layernorm dx alone", &dx1, &dx);
    expect_same("layernorm dw alone", &dw1, &dw);
    expect_same("layernorm db alone", &db1, &db);
    // and the sum of dx over a row is 0 (the mean is subtracted)
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int j = 0; j < D; j++) s += tu_at(&dx, i, j);
        cr_expect(fabs(s) < 1e-5, "row %d: sum dx = %g", i, s);
    }
    TU_FREE_ALL(&c.xb, &c.w, &c.b, &c.out, &c.r, &dxb, &dw, &db, &dx1, &dw1, &db1);
}

// ---- scale_shift, bias ---------------------------------------------------------------------

Test(ops_encoder, scale_shift_and_bias_add_match_formula) {
    Rng rng;
    rng_seed(&rng, 33);
    int N = 6, D = 40;
    Tensor xb = tu_random_2d(&rng, N + 2, D + 4), x = tensor_cols(&xb, 4, D);
    x = tensor_rows(&x, 1, N);
    Tensor w = tu_random_1d(&rng, D, 1.0f, 0.5f), b = tu_random_1d(&rng, D, 0.0f, 1.0f);
    Tensor out = tu_zeros_2d(N, D), out_nob = tu_zeros_2d(N, D);
    op_scale_shift(&out, &x, &w, &b);
    op_scale_shift(&out_nob, &x, &w, NULL);
    const float *wd = w.data, *bd = b.data;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            double y = (double)tu_at(&x, i, j) * wd[j];
            cr_expect(fabs(tu_at(&out, i, j) - (y + bd[j])) <= 1e-6 * (1 + fabs(y + bd[j])), "scale_shift (%d, %d)", i,
                      j);
            cr_expect(fabs(tu_at(&out_nob, i, j) - y) <= 1e-6 * (1 + fabs(y)), "scale_shift, b NULL (%d, %d)", i, j);
        }
    // bias_add on a strided view leaves the parent's other columns and rows alone
    Tensor before = tu_copy_of(&xb);
    op_bias_add(&x, &b);
    for (int i = 0; i < N + 2; i++)
        for (int j = 0; j < D + 4; j++) {
            bool in = i >= 1 && i <= N && j >= 4;
            float want = in ? tu_at(&before, i, j) + bd[j - 4] : tu_at(&before, i, j);
            cr_expect_eq(tu_at(&xb, i, j), want, "bias_add parent (%d, %d)", i, j);
        }
    TU_FREE_ALL(&xb, &w, &b, &out, &out_nob, &before);
}

Test(ops_encoder, fd_scale_shift) {
    Rng rng;
    rng_seed(&rng, 34);
    int N = 5, D = 9;
    OpCase c = affine_case(&rng, CASE_SCALE_SHIFT, N, D, 0, 3);
    c.with_b = true;
    Tensor dx = tu_zeros_2d(N, D), dw = tu_zeros_1d(D), db = tu_zeros_1d(D);
    op_scale_shift_backward(&dx, &dw, &db, &c.r, &c.x, &c.w);
    tu_fd_check("scale_shift dx", op_case_loss, &c, &c.x, &dx, &rng);
    tu_fd_check("scale_shift dw", op_case_loss, &c, &c.w, &dw, &rng);
    tu_fd_check("scale_shift db", op_case_loss, &c, &c.b, &db, &rng);
    c.with_b = false; // NoNorm without a bias: the same dx and dw
    tu_fd_check("scale_shift (no b) dx", op_case_loss, &c, &c.x, &dx, &rng);
    tu_fd_check("scale_shift (no b) dw", op_case_loss, &c, &c.w, &dw, &rng);
    Tensor dw1 = tu_zeros_1d(D), db1 = tu_zeros_1d(D);
    op_scale_shift_backward(NULL, &dw1, NULL, &c.r, &c.x, &c.w);
    op_scale_shift_backward(NULL, NULL, &db1, &c.r, &c.x, &c.w);
    expect_same("scale_shift dw alone", &dw1, &dw);
    expect_same("scale_shift db alone", &db1, &db);
    TU_FREE_ALL(&c.xb, &c.w, &c.b, &c.out, &c.r, &dx, &dw, &db, &dw1, &db1);
}

Test(ops_encoder, fd_bias) {
    Rng rng;
    rng_seed(&rng, 35);
    int N = 7, D = 70; // more than one column block of the CPU's reduction (64)
    OpCase c = {.op = CASE_BIAS,
                .x = tu_random_2d(&rng, N, D),
                .out = tu_zeros_2d(N, D),
                .b = tu_random_1d(&rng, D, 0.0f, 1.0f),
                .r = tu_random_2d(&rng, N, D)};
    Tensor rb = tu_random_2d(&rng, N, D + 5), rv = tensor_cols(&rb, 5, D); // dout as a strided view
    tu_copy_into(&rv, &c.r);
    Tensor db = tu_zeros_1d(D);
    op_bias_backward(&db, &rv);
    tu_fd_check("bias db", op_case_loss, &c, &c.b, &db, &rng);
    for (int j = 0; j < D; j++) {
        double s = 0;
        for (int i = 0; i < N; i++) s += tu_at(&c.r, i, j);
        cr_expect_float_eq(((float *)db.data)[j], (float)s, 1e-5, "db[%d] = column sum", j);
    }
    TU_FREE_ALL(&c.x, &c.out, &c.b, &c.r, &rb, &db);
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
    Tensor x = tu_zeros_2d(N, F), out = tu_zeros_2d(N, F);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < F; j++) tensor_row_f32(&x, i)[j] = (float)(i + 1) * (-10.0f + 0.05f * (float)j) / 2.0f;
    const Activation acts[] = {ACT_GELU, ACT_RELU, ACT_TANH};
    for (int a = 0; a < 3; a++) {
        op_activation(&out, &x, acts[a]);
        double worst = 0;
        for (int64_t i = 0; i < N * F; i++) {
            double ref = act_ref(acts[a], *tu_elem(&x, i)), got = *tu_elem(&out, i);
            worst = fmax(worst, fabs(got - ref) / (1 + fabs(ref)));
            cr_expect(fabs(got - ref) <= 1e-6 * (1 + fabs(ref)), "%s(%g) = %.9g, want %.9g", act_name(acts[a]),
                      *tu_elem(&x, i), got, ref);
        }
        cr_log_info("%s: max relative error %.2e", act_name(acts[a]), worst);
        Tensor y = tu_copy_of(&x);
        op_activation(&y, &y, acts[a]); // in place
        expect_same("activation in place", &out, &y);
        tensor_free(&y);
    }
    // known values of the exact GELU (not the tanh approximation: 0.841192 at 1)
    Tensor one = tu_zeros_2d(1, 3), g = tu_zeros_2d(1, 3);
    tensor_row_f32(&one, 0)[0] = 1.0f, tensor_row_f32(&one, 0)[1] = -1.0f, tensor_row_f32(&one, 0)[2] = 3.0f;
    op_activation(&g, &one, ACT_GELU);
    cr_expect_float_eq(tu_at(&g, 0, 0), 0.8413447460685429f, 1e-7);
    cr_expect_float_eq(tu_at(&g, 0, 1), -0.15865525393145707f, 1e-7);
    cr_expect_float_eq(tu_at(&g, 0, 2), 2.9959502733646880f, 1e-6);
    TU_FREE_ALL(&x, &out, &one, &g);
}

Test(ops_encoder, fd_activations) {
    Rng rng;
    rng_seed(&rng, 36);
    const Activation acts[] = {ACT_GELU, ACT_RELU, ACT_TANH};
    for (int a = 0; a < 3; a++) {
        int N = 4, F = 25;
        Tensor xb = tu_random_2d(&rng, N, F + 4);
        OpCase c = {.op = CASE_ACTIVATION,
                    .x = tensor_cols(&xb, 2, F),
                    .out = tu_zeros_2d(N, F),
                    .r = tu_random_2d(&rng, N, F),
                    .act = acts[a]};
        // ReLU's kink: keep every x at least 0.05 away from 0, so x +- eps stays on one side
        for (int64_t i = 0; i < tu_numel(&c.x); i++)
            if (fabsf(*tu_elem(&c.x, i)) < 0.05f) *tu_elem(&c.x, i) = *tu_elem(&c.x, i) < 0 ? -0.05f : 0.05f;
        Tensor dx = tu_zeros_2d(N, F);
        op_activation_backward(&dx, &c.r, &c.x, c.act);
        char what[48];
        snprintf(what, sizeof what, "%s dx", act_name(acts[a]));
        tu_fd_check(what, op_case_loss, &c, &c.x, &dx, &rng);
        TU_FREE_ALL(&xb, &c.out, &c.r, &dx);
    }
}

// ---- the += contract of the new backwards -------------------------------------------------------

Test(ops_encoder, backward_accumulates) {
    Rng rng;
    rng_seed(&rng, 37);
    int N = 4, D = 10;
    Tensor x = tu_random_2d(&rng, N, D), dout = tu_random_2d(&rng, N, D);
    Tensor w = tu_random_1d(&rng, D, 1.0f, 0.5f);
    Tensor dx = tu_zeros_2d(N, D), dw = tu_zeros_1d(D), db = tu_zeros_1d(D);
    op_layernorm_backward(&dx, &dw, &db, &dout, &x, &w, 1e-5f);
    Tensor dx1 = tu_copy_of(&dx), dw1 = tu_copy_of(&dw), db1 = tu_copy_of(&db);
    op_layernorm_backward(&dx, &dw, &db, &dout, &x, &w, 1e-5f);
    tu_expect_doubled("layernorm dx", &dx1, &dx);
    tu_expect_doubled("layernorm dw", &dw1, &dw);
    tu_expect_doubled("layernorm db", &db1, &db);
    TU_FREE_ALL(&dx, &dw, &db, &dx1, &dw1, &db1);

    dx = tu_zeros_2d(N, D), dw = tu_zeros_1d(D), db = tu_zeros_1d(D);
    op_scale_shift_backward(&dx, &dw, &db, &dout, &x, &w);
    dx1 = tu_copy_of(&dx), dw1 = tu_copy_of(&dw), db1 = tu_copy_of(&db);
    op_scale_shift_backward(&dx, &dw, &db, &dout, &x, &w);
    tu_expect_doubled("scale_shift dx", &dx1, &dx);
    tu_expect_doubled("scale_shift dw", &dw1, &dw);
    tu_expect_doubled("scale_shift db", &db1, &db);
    TU_FREE_ALL(&dx, &dw, &db, &dx1, &dw1, &db1);

    db = tu_zeros_1d(D);
    op_bias_backward(&db, &dout);
    db1 = tu_copy_of(&db);
    op_bias_backward(&db, &dout);
    tu_expect_doubled("bias db", &db1, &db);
    TU_FREE_ALL(&db, &db1);

    const Activation acts[] = {ACT_GELU, ACT_RELU, ACT_TANH};
    for (int a = 0; a < 3; a++) {
        dx = tu_zeros_2d(N, D);
        op_activation_backward(&dx, &dout, &x, acts[a]);
        dx1 = tu_copy_of(&dx);
        op_activation_backward(&dx, &dout, &x, acts[a]);
        tu_expect_doubled(act_name(acts[a]), &dx1, &dx);
        TU_FREE_ALL(&dx, &dx1);
    }
    TU_FREE_ALL(&x, &dout, &w);
}

// ---- embedding: negative ids ------------------------------------------------------------------

Test(ops_encoder, embedding_negative_ids) {
    Rng rng;
    rng_seed(&rng, 38);
    int32_t ids[9] = {-1, 2, -1, -1, 0, 4, -7, 2, -1}; // runs of negatives at both ends and inside
    int V = 5, D = 12, N = 9;
    TuEmbeddingCase c = {tu_random_2d(&rng, V, D), tu_zeros_2d(N, D), tu_random_2d(&rng, N, D), ids};
    tu_fill(&c.out, NAN);
    op_embedding(&c.out, &c.table, ids);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++)
            cr_expect_eq(tu_at(&c.out, i, j), ids[i] < 0 ? 0.0f : tu_at(&c.table, ids[i], j), "f32 row %d col %d", i,
                         j);
    // a bf16 table (the low-bit path): the same zeros, the widened rows elsewhere
    Tensor t16, out16 = tu_zeros_2d(N, D);
    cr_assert_eq(tensor_alloc_2d(&t16, DT_BF16, CPU, V, D), ST_OK);
    for (int64_t i = 0; i < V * D; i++) ((uint16_t *)t16.data)[i] = f32_to_bf16(((float *)c.table.data)[i]);
    tu_fill(&out16, NAN);
    op_embedding(&out16, &t16, ids);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < D; j++) {
            float want = ids[i] < 0 ? 0.0f : bf16_to_f32(((uint16_t *)t16.data)[ids[i] * D + j]);
            cr_expect_eq(tu_at(&out16, i, j), want, "bf16 row %d col %d", i, j);
        }
    // the backward skips them: FD through the forward, and the unused rows stay 0
    Tensor dtable = tu_zeros_2d(V, D);
    op_embedding_backward(&dtable, &c.r, ids);
    tu_fd_check("embedding dtable (negative ids)", tu_embedding_loss, &c, &c.table, &dtable, &rng);
    for (int j = 0; j < D; j++) {
        cr_expect_eq(tu_at(&dtable, 1, j), 0.0f, "row 1 is never used");
        cr_expect_eq(tu_at(&dtable, 3, j), 0.0f, "row 3 is never used");
        cr_expect_float_eq(tu_at(&dtable, 2, j), tu_at(&c.r, 1, j) + tu_at(&c.r, 7, j), 1e-6);
    }
    TU_FREE_ALL(&c.table, &c.out, &c.r, &t16, &out16, &dtable);
}

// ---- bidirectional varlen attention --------------------------------------------------------------

// Naive attention in double of query row t (absolute) and head h over the keys
// [k0, k1): out row into o[hd], returns the log-sum-exp of the scaled scores.
static double naive_attend(const TuAttnCase *c, int t, int h, int k0, int k1, double *o) {
    int hd = c->s.head_dim, kvh = h / (c->s.n_heads / c->s.n_kv_heads);
    double mx = -INFINITY, sum = 0, *sc = malloc((size_t)(k1 - k0) * sizeof(double));
    cr_assert(sc);
    for (int j = k0; j < k1; j++) {
        double d = 0;
        for (int e = 0; e < hd; e++) d += (double)tu_at(&c->q, t, h * hd + e) * tu_at(&c->k, j, kvh * hd + e);
        sc[j - k0] = d / sqrt(hd);
        mx = fmax(mx, sc[j - k0]);
    }
    for (int e = 0; e < hd; e++) o[e] = 0;
    for (int j = k0; j < k1; j++) {
        double p = exp(sc[j - k0] - mx);
        sum += p;
        for (int e = 0; e < hd; e++) o[e] += p * tu_at(&c->v, j, kvh * hd + e);
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
    TuAttnCase c;
    tu_attn_case_init(&c, &rng, lens, 5, H, KV, hd, bidir);
    op_attention_varlen(&c.out, &c.lse, &c.q, &c.k, &c.v, &c.s);
    double o[8], worst = 0, worst_lse = 0;
    for (int b = 0; b < 5; b++)
        for (int t = c.cu[b]; t < c.cu[b + 1]; t++)
            for (int h = 0; h < H; h++) {
                double lse = naive_attend(&c, t, h, c.cu[b], bidir ? c.cu[b + 1] : t + 1, o);
                double got_lse = tu_at(&c.lse, h, t);
                worst_lse = fmax(worst_lse, fabs(got_lse - lse));
                cr_expect(fabs(got_lse - lse) <= 1e-5 * (1 + fabs(lse)), "lse seq %d t %d head %d: %g vs %g", b, t, h,
                          got_lse, lse);
                for (int e = 0; e < hd; e++) {
                    double got = tu_at(&c.out, t, h * hd + e);
                    worst = fmax(worst, fabs(got - o[e]));
                    cr_expect(fabs(got - o[e]) <= 1e-5 * (1 + fabs(o[e])), "out seq %d t %d head %d col %d: %g vs %g", b,
                              t, h, e, got, o[e]);
                }
            }
    cr_log_info("varlen %s: max |out - naive| %.2e, max |lse - naive| %.2e", bidir ? "bidirectional" : "causal", worst,
                worst_lse);
    tu_attn_case_free(&c);
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
    TuAttnCase bi, ca;
    tu_attn_case_init(&bi, &rng, lens, 3, 2, 2, 8, true);
    rng_seed(&rng, 42);
    tu_attn_case_init(&ca, &rng, lens, 3, 2, 2, 8, false);
    op_attention_varlen(&bi.out, NULL, &bi.q, &bi.k, &bi.v, &bi.s);
    op_attention_varlen(&ca.out, NULL, &ca.q, &ca.k, &ca.v, &ca.s);
    for (int b = 0; b < 3; b++)
        for (int t = bi.cu[b]; t < bi.cu[b + 1]; t++) {
            bool last = t == bi.cu[b + 1] - 1;
            int same = 0;
            for (int e = 0; e < 16; e++) same += tu_at(&bi.out, t, e) == tu_at(&ca.out, t, e);
            if (last) cr_expect_eq(same, 16, "row %d (its sequence's last) sees the same keys", t);
            else cr_expect_lt(same, 16, "row %d sees later keys when bidirectional", t);
        }
    tu_attn_case_free(&bi);
    tu_attn_case_free(&ca);
}

static void fd_attention(const char *name, const int *lens, int n_seq, int H, int KV, uint64_t seed) {
    TuAttnCase c;
    tu_attn_fd_case(&c, name, lens, n_seq, H, KV, seed, true);
    // the += contract (the FD loop left out at a perturbed input: the forward again first)
    tu_attn_expect_accumulates("bidirectional", &c);
    tu_attn_case_free(&c);
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
