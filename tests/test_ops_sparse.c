// Contextual-sparsity ops (ops.h, "contextual sparsity") on the CPU against
// references written independently here: op_topk_rows against a sort of
// (score descending, index ascending) pairs, op_ffn_sparse against a plain
// double-precision loop and, with every neuron selected, against the dense
// FFN built from op_matmul + op_swiglu + op_matmul_add.
// Tolerances: 1e-5 of max|ref| (fp32 against double, sums of <= a few hundred
// terms of O(1): ~1e-7..1e-6 expected); top-k is exact.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "ops/ops_cpu.h"
#include "runtime/rng.h"
#include "test_util.h"

static const Device CPU = {DEV_CPU, 0};

static Tensor i32_2d(int64_t rows, int64_t cols) {
    Tensor t;
    cr_assert_eq(tensor_alloc_2d(&t, DT_I32, CPU, rows, cols), ST_OK);
    return t;
}
static int32_t *i32_row(const Tensor *t, int64_t r) { return (int32_t *)t->data + r * t->stride[0]; }

// ---- op_topk_rows ------------------------------------------------------------------

typedef struct {
    float v;
    int32_t j;
} Scored;

// The key of ops.h's order: NaN as -inf, -0 == +0 (a comparison of floats does that).
static float canon(float v) { return isnan(v) ? -INFINITY : v; }

static int by_score_then_index(const void *a, const void *b) {
    const Scored *x = a, *y = b;
    float u = canon(x->v), w = canon(y->v);
    if (u != w) return u > w ? -1 : 1;
    return (x->j > y->j) - (x->j < y->j);
}
static int by_int(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

// The k best of a row: sort every (score, index), take k, sort the indices.
static void topk_ref(const float *s, int64_t f, int64_t k, int32_t *out) {
    Scored *p = malloc((size_t)f * sizeof *p);
    for (int64_t j = 0; j < f; j++) p[j] = (Scored){s[j], (int32_t)j};
    qsort(p, (size_t)f, sizeof *p, by_score_then_index);
    for (int64_t i = 0; i < k; i++) out[i] = p[i].j;
    qsort(out, (size_t)k, sizeof *out, by_int);
    free(p);
}

// scores: a column view of a wider parent; idx: a column view too (row stride > k).
static void expect_topk(const Tensor *scores, int64_t k, const char *what) {
    int64_t n = scores->shape[0], f = scores->shape[1];
    Tensor ip = i32_2d(n, k + 3);
    for (int64_t i = 0; i < tu_numel(&ip); i++) ((int32_t *)ip.data)[i] = -7;
    Tensor idx = tensor_cols(&ip, 1, k);
    op_topk_rows(&idx, scores);
    int32_t *want = malloc((size_t)k * sizeof *want);
    for (int64_t r = 0; r < n; r++) {
        topk_ref(tensor_row_f32(scores, r), f, k, want);
        const int32_t *got = i32_row(&idx, r);
        for (int64_t i = 0; i < k; i++)
            cr_assert_eq(got[i], want[i], "%s: row %lld of %lld, F %lld, k %lld: idx[%lld] = %d, want %d", what,
                         (long long)r, (long long)n, (long long)f, (long long)k, (long long)i, got[i], want[i]);
        cr_assert_eq(i32_row(&ip, r)[0], -7, "%s: wrote left of the view", what);
        cr_assert_eq(i32_row(&ip, r)[k + 1], -7, "%s: wrote right of the view", what);
        cr_assert_eq(i32_row(&ip, r)[k + 2], -7, "%s: wrote right of the view", what);
    }
    free(want);
    tensor_free(&ip);
}

Test(ops_sparse, topk_random_rows) {
    Rng r;
    rng_seed(&r, 11);
    const int64_t shapes[][2] = {{1, 1}, {1, 7}, {3, 64}, {37, 150}, {5, 1536}, {2, 1000}, {37, 1536}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        int64_t n = shapes[s][0], f = shapes[s][1];
        Tensor parent = tu_random_2d(&r, n + 1, f + 5);
        Tensor rows = tensor_rows(&parent, 1, n), scores = tensor_cols(&rows, 3, f);
        const int64_t ks[] = {1, 2, f / 3, f / 2 + 1, f - 1, f};
        for (size_t q = 0; q < sizeof ks / sizeof *ks; q++)
            if (ks[q] >= 1 && ks[q] <= f) expect_topk(&scores, ks[q], "random");
        tensor_free(&parent);
    }
}

// Few distinct values: most of the choice is among equal scores (lower index wins).
Test(ops_sparse, topk_ties_go_to_lower_indices) {
    Rng r;
    rng_seed(&r, 12);
    // a constant row: the first k indices
    Tensor c = tu_zeros_2d(3, 40);
    tu_fill(&c, 0.25f);
    Tensor idx = i32_2d(3, 9);
    op_topk_rows(&idx, &c);
    for (int64_t row = 0; row < 3; row++)
        for (int i = 0; i < 9; i++) cr_assert_eq(i32_row(&idx, row)[i], i, "constant row %lld", (long long)row);
    tensor_free(&idx);
    // j % 5: the four 4s (4, 9, 14, 19), then the first three 3s (3, 8, 13)
    Tensor m = tu_zeros_2d(1, 23);
    for (int j = 0; j < 23; j++) tensor_row_f32(&m, 0)[j] = (float)(j % 5);
    idx = i32_2d(1, 7);
    op_topk_rows(&idx, &m);
    const int32_t want[7] = {3, 4, 8, 9, 13, 14, 19};
    for (int i = 0; i < 7; i++) cr_assert_eq(i32_row(&idx, 0)[i], want[i], "j %% 5: idx[%d]", i);
    tensor_free(&idx);
    expect_topk(&m, 7, "j % 5");
    // random small integers (many ties at every k), negative and positive
    Tensor t = tu_zeros_2d(37, 300);
    for (int64_t i = 0; i < tu_numel(&t); i++) *tu_elem(&t, i) = (float)((int)rng_below(&r, 7) - 3);
    for (int64_t k = 1; k <= 300; k += 37) expect_topk(&t, k, "small integers");
    expect_topk(&t, 300, "small integers");
    tensor_free(&c), tensor_free(&m), tensor_free(&t);
}

// -0 ties with +0; infinities order as values; NaN counts as -inf (ties with it).
Test(ops_sparse, topk_signed_zero_inf_nan) {
    const float v[] = {-0.0f, 0.0f, NAN, -INFINITY, INFINITY, -1e-38f, 1e-45f, -2.0f, 3e38f, -0.0f, NAN, 0.0f};
    const int64_t f = sizeof v / sizeof *v;
    Tensor s = tu_zeros_2d(1, f);
    memcpy(s.data, v, sizeof v);
    for (int64_t k = 1; k <= f; k++) expect_topk(&s, k, "specials");
    Tensor idx = i32_2d(1, 5);
    op_topk_rows(&idx, &s);
    // inf (4), 3e38 (8), 1e-45 (6), then the first two zeros of {0, 1, 9, 11}: 0 and 1
    const int32_t want[5] = {0, 1, 4, 6, 8};
    for (int i = 0; i < 5; i++) cr_assert_eq(i32_row(&idx, 0)[i], want[i], "specials k 5: idx[%d]", i);
    tensor_free(&idx), tensor_free(&s);
}

// ---- op_ffn_sparse ------------------------------------------------------------------

typedef struct {
    int64_t n, d, f, k;
    Tensor xp, gp, up, dp, op;  // parents
    Tensor x, wg, wu, wdt, out; // the views the op sees
    Tensor idx;                 // [n, k]
    float *out0;                // out before the op, row-major [n, d]
} FfnCase;

// x a column view of a wider parent; the weights row-prefix (and column-prefix)
// views of bigger matrices (an elastic level's slice: row stride > d); out a
// strided view holding random values (the op adds into it); idx k distinct
// random indices per row in ascending order (the order op_topk_rows writes),
// or with repeats when dup.
static void ffn_case_init(FfnCase *c, Rng *r, int64_t n, int64_t d, int64_t f, int64_t k, bool dup) {
    *c = (FfnCase){.n = n, .d = d, .f = f, .k = k};
    c->xp = tu_random_2d(r, n, d + 9);
    c->gp = tu_random_2d(r, f + 3, d + 5);
    c->up = tu_random_2d(r, f + 3, d + 5);
    c->dp = tu_random_2d(r, f + 7, d + 2);
    c->op = tu_random_2d(r, n + 2, d + 4);
    float sw = 1.0f / sqrtf((float)d), sd = 1.0f / sqrtf((float)k > 0 ? (float)k : 1.0f);
    for (int64_t i = 0; i < tu_numel(&c->gp); i++) ((float *)c->gp.data)[i] *= sw;
    for (int64_t i = 0; i < tu_numel(&c->up); i++) ((float *)c->up.data)[i] *= sw;
    for (int64_t i = 0; i < tu_numel(&c->dp); i++) ((float *)c->dp.data)[i] *= sd;
    c->x = tensor_cols(&c->xp, 4, d);
    Tensor t = tensor_rows(&c->gp, 0, f);
    c->wg = tensor_cols(&t, 0, d);
    t = tensor_rows(&c->up, 0, f);
    c->wu = tensor_cols(&t, 0, d);
    t = tensor_rows(&c->dp, 0, f);
    c->wdt = tensor_cols(&t, 0, d);
    t = tensor_rows(&c->op, 1, n);
    c->out = tensor_cols(&t, 3, d);
    c->out0 = malloc((size_t)(n * d) * sizeof *c->out0);
    for (int64_t i = 0; i < n; i++) memcpy(c->out0 + i * d, tensor_row_f32(&c->out, i), (size_t)d * sizeof(float));
    c->idx = i32_2d(n, k);
    int32_t *perm = malloc((size_t)f * sizeof *perm);
    for (int64_t i = 0; i < n; i++) {
        int32_t *row = i32_row(&c->idx, i);
        if (dup) {
            for (int64_t q = 0; q < k; q++) row[q] = (int32_t)rng_below(r, (uint64_t)(f < 4 ? f : 4)); // many repeats
            continue;
        }
        for (int64_t j = 0; j < f; j++) perm[j] = (int32_t)j;
        for (int64_t q = 0; q < k; q++) { // partial Fisher-Yates: k distinct
            int64_t o = q + (int64_t)rng_below(r, (uint64_t)(f - q));
            int32_t tmp = perm[q];
            perm[q] = perm[o], perm[o] = tmp;
        }
        memcpy(row, perm, (size_t)k * sizeof *row);
        qsort(row, (size_t)k, sizeof *row, by_int);
    }
    free(perm);
}

static void ffn_case_free(FfnCase *c) {
    TU_FREE_ALL(&c->xp, &c->gp, &c->up, &c->dp, &c->op, &c->idx);
    free(c->out0);
}

// max|out - ref| / max|ref| over the view, ref in double; the parent's other
// elements must keep their values (they were random: checked against a copy).
static double ffn_rel_err(const FfnCase *c) {
    double maxd = 0, maxr = 0;
    for (int64_t i = 0; i < c->n; i++) {
        const float *x = tensor_row_f32(&c->x, i);
        const int32_t *ir = i32_row(&c->idx, i);
        double *ref = calloc((size_t)c->d, sizeof *ref);
        for (int64_t q = 0; q < c->k; q++) {
            const float *g = tensor_row_f32(&c->wg, ir[q]), *u = tensor_row_f32(&c->wu, ir[q]),
                        *w = tensor_row_f32(&c->wdt, ir[q]);
            double sg = 0, su = 0;
            for (int64_t e = 0; e < c->d; e++) sg += (double)x[e] * g[e], su += (double)x[e] * u[e];
            double h = sg / (1.0 + exp(-sg)) * su;
            for (int64_t e = 0; e < c->d; e++) ref[e] += h * w[e];
        }
        for (int64_t e = 0; e < c->d; e++) {
            double want = c->out0[i * c->d + e] + ref[e], got = tensor_row_f32(&c->out, i)[e];
            if (!isfinite(got)) return INFINITY;
            maxd = fmax(maxd, fabs(got - want));
            maxr = fmax(maxr, fabs(want));
        }
        free(ref);
    }
    return maxr > 0 ? maxd / maxr : maxd;
}

static void expect_untouched_outside(const FfnCase *c, const Tensor *op_before) {
    for (int64_t i = 0; i < c->op.shape[0]; i++)
        for (int64_t e = 0; e < c->op.shape[1]; e++) {
            bool in = i >= 1 && i < 1 + c->n && e >= 3 && e < 3 + c->d;
            if (!in)
                cr_assert_eq(tu_at(&c->op, i, e), tu_at(op_before, i, e), "out's parent changed outside the view at (%lld, %lld)",
                             (long long)i, (long long)e);
        }
}

static void run_ffn_case(Rng *r, int64_t n, int64_t d, int64_t f, int64_t k, bool dup) {
    FfnCase c;
    ffn_case_init(&c, r, n, d, f, k, dup);
    Tensor before = tu_copy_of(&c.op);
    op_ffn_sparse(&c.out, &c.x, &c.wg, &c.wu, &c.wdt, &c.idx);
    double err = ffn_rel_err(&c);
    cr_expect(err <= 1e-5, "ffn_sparse N %lld D %lld F %lld k %lld%s: rel err %.3g", (long long)n, (long long)d,
              (long long)f, (long long)k, dup ? " (repeated indices)" : "", err);
    expect_untouched_outside(&c, &before);
    tensor_free(&before);
    ffn_case_free(&c);
}

// Both CPU strategies: gathered (N <= 4) and dense sgemm (N >= 5).
Test(ops_sparse, ffn_against_double_reference) {
    Rng r;
    rng_seed(&r, 21);
    const int64_t ns[] = {1, 2, 3, 4, 5, 17, 64};
    const int64_t d = 77, f = 150; // d: vector body and scalar tail
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        const int64_t ks[] = {1, f / 3, f};
        for (size_t b = 0; b < sizeof ks / sizeof *ks; b++) run_ffn_case(&r, ns[a], d, f, ks[b], false);
    }
    run_ffn_case(&r, 2, 64, 40, 13, false); // d a multiple of 16
    run_ffn_case(&r, 200, 48, 90, 30, false); // the dense path over more than one block of rows
}

// An index listed twice counts twice, on both paths.
Test(ops_sparse, ffn_repeated_indices) {
    Rng r;
    rng_seed(&r, 22);
    run_ffn_case(&r, 3, 40, 30, 9, true);
    run_ffn_case(&r, 9, 40, 30, 9, true);
}

// The portable loops (no AVX2), as on a CPU without it.
Test(ops_sparse, ffn_portable_kernels) {
    cpu_lowbit_set_isa(CPU_ISA_SCALAR);
    Rng r;
    rng_seed(&r, 23);
    run_ffn_case(&r, 1, 77, 150, 50, false);
    run_ffn_case(&r, 4, 64, 150, 150, false);
    cpu_lowbit_set_isa(CPU_ISA_AVX512);
}

// The gathered path gives the same bits on 1 and 2 threads (each output
// element is summed in one order whatever the split).
Test(ops_sparse, ffn_gathered_independent_of_threads) {
    Rng r;
    rng_seed(&r, 24);
    FfnCase c;
    ffn_case_init(&c, &r, 3, 301, 600, 400, false);
    Tensor start = tu_copy_of(&c.out), once;
    ops_set_threads(1);
    op_ffn_sparse(&c.out, &c.x, &c.wg, &c.wu, &c.wdt, &c.idx);
    once = tu_copy_of(&c.out);
    tu_copy_into(&c.out, &start);
    ops_set_threads(2);
    op_ffn_sparse(&c.out, &c.x, &c.wg, &c.wu, &c.wdt, &c.idx);
    for (int64_t i = 0; i < tu_numel(&once); i++)
        cr_assert_eq(*tu_elem(&c.out, i), *tu_elem(&once, i), "element %lld differs between 1 and 2 threads", (long long)i);
    cr_expect(ffn_rel_err(&c) <= 1e-5);
    TU_FREE_ALL(&start, &once);
    ffn_case_free(&c);
    ops_set_threads(0);
}

// With every neuron selected the op is the dense FFN: out += (silu(x Wg^T) * (x Wu^T)) Wd^T,
// with Wd = w_down_t^T [D, F] as the model stores down_proj.weight.
Test(ops_sparse, ffn_all_neurons_is_dense_ffn) {
    Rng r;
    rng_seed(&r, 25);
    const int64_t ns[] = {1, 3, 4, 5, 17};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        const int64_t n = ns[a], d = 96, f = 256;
        FfnCase c;
        ffn_case_init(&c, &r, n, d, f, f, false);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < f; j++) cr_assert_eq(i32_row(&c.idx, i)[j], j);
        Tensor wd = tu_zeros_2d(d, f), gate = tu_zeros_2d(n, f), up = tu_zeros_2d(n, f), dense = tu_copy_of(&c.out);
        for (int64_t e = 0; e < d; e++)
            for (int64_t j = 0; j < f; j++) tensor_row_f32(&wd, e)[j] = tu_at(&c.wdt, j, e);
        op_matmul(&gate, &c.x, &c.wg);
        op_matmul(&up, &c.x, &c.wu);
        op_swiglu(&gate, &gate, &up);
        op_matmul_add(&dense, &gate, &wd, 1.0f);
        op_ffn_sparse(&c.out, &c.x, &c.wg, &c.wu, &c.wdt, &c.idx);
        double maxd = 0, maxr = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t e = 0; e < d; e++) {
                maxd = fmax(maxd, fabs((double)tu_at(&c.out, i, e) - tu_at(&dense, i, e)));
                maxr = fmax(maxr, fabs((double)tu_at(&dense, i, e)));
            }
        cr_expect(maxd <= 1e-5 * maxr, "N %lld: sparse with k = F vs dense FFN: max diff %.3g of %.3g", (long long)n, maxd,
                  maxr);
        cr_expect(ffn_rel_err(&c) <= 1e-5);
        TU_FREE_ALL(&wd, &gate, &up, &dense);
        ffn_case_free(&c);
    }
}

// The pipeline the ops are for: scores -> op_topk_rows -> op_ffn_sparse, and k = 0 adds nothing.
Test(ops_sparse, topk_then_ffn_and_empty_selection) {
    Rng r;
    rng_seed(&r, 26);
    FfnCase c;
    ffn_case_init(&c, &r, 2, 64, 120, 40, false);
    Tensor scores = tu_random_2d(&r, 2, 120);
    op_topk_rows(&c.idx, &scores);
    op_ffn_sparse(&c.out, &c.x, &c.wg, &c.wu, &c.wdt, &c.idx);
    cr_expect(ffn_rel_err(&c) <= 1e-5);
    Tensor none = i32_2d(2, 0), before = tu_copy_of(&c.out);
    op_ffn_sparse(&c.out, &c.x, &c.wg, &c.wu, &c.wdt, &none);
    for (int64_t i = 0; i < tu_numel(&before); i++) cr_assert_eq(*tu_elem(&c.out, i), *tu_elem(&before, i));
    TU_FREE_ALL(&scores, &none, &before);
    ffn_case_free(&c);
}
