// The training ops (ops.h, "training") on the CPU.
//
// Every backward is checked against central finite differences of a scalar
// L = sum(r ⊙ f(inputs)) with a fixed random projection r (so dout = r):
// for a random direction u and for a few single coordinates, the analytic
// <grad, delta> against (L(x + delta) - L(x - delta)) / 2, where delta is the
// perturbation eps * u as actually stored in fp32 (so the rounding of x + eps u
// does not count as error). L is accumulated in double; f runs in fp32.
// Tolerance: |analytic - numeric| <= FD_REL * max(|analytic|, |numeric|, FD_FLOOR),
// FD_REL = 1e-2 (fp32 forward, eps = 1e-3: the numeric side carries about
// 1e-7 * sqrt(#outputs) / eps of rounding noise, observed below 1e-5 absolute
// here) and FD_FLOOR = 1e-2, the gradient size below which that absolute
// noise is what is compared. Gradients of these cases are O(1), so a wrong
// term fails by orders of magnitude (observed errors are ~1e-5 relative).
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/dropout_hash.h"
#include "ops/ops.h"
#include "runtime/rng.h"

#define FD_EPS 1e-3f
#define FD_REL 1e-2
#define FD_FLOOR 1e-2
#define FD_COORDS 6 // single coordinates checked per input, besides the random direction

static const Device CPU = {DEV_CPU, 0};

// ---- tensors -------------------------------------------------------------------

static Tensor zeros_2d(int64_t rows, int64_t cols) {
    Tensor t;
    cr_assert_eq(tensor_alloc_2d(&t, DT_F32, CPU, rows, cols), ST_OK);
    return t;
}

static Tensor random_2d(Rng *r, int64_t rows, int64_t cols) {
    Tensor t = zeros_2d(rows, cols);
    for (int64_t i = 0; i < rows * cols; i++) ((float *)t.data)[i] = rng_normal(r);
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

// sum(r ⊙ y) in double.
static double project(const Tensor *r, const Tensor *y) {
    double s = 0.0;
    for (int64_t i = 0; i < numel(y); i++) s += (double)*elem(r, i) * *elem(y, i);
    return s;
}

static float at(const Tensor *t, int64_t i, int64_t j) { return tensor_row_f32(t, i)[j]; }

// ---- the finite-difference check -------------------------------------------------

typedef double (*LossFn)(void *ctx); // L(current inputs), in double

static double fd_err(double analytic, double numeric) {
    double m = fmax(fmax(fabs(analytic), fabs(numeric)), FD_FLOOR);
    return fabs(analytic - numeric) / m;
}

// (L(x + delta) - L(x - delta)) / 2 for x += s * eps * u, and <grad, delta>,
// with delta the perturbation as stored. u[i] = 0 leaves element i alone.
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

// Checks grad (same shape as x, the view the op reads) against finite
// differences of loss along a random direction and FD_COORDS coordinates;
// returns the largest relative error seen.
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

// ---- matmul ----------------------------------------------------------------------------

typedef struct {
    Tensor x, w, out, r; // x [M, K] and w [N, K] are column-prefix views; out, r [M, N]
    float alpha;
} MatmulCase;

static double matmul_loss(void *ctx) {
    MatmulCase *c = ctx;
    fill(&c->out, 0.0f);
    op_matmul_add(&c->out, &c->x, &c->w, c->alpha);
    return project(&c->r, &c->out);
}

// FD of out = alpha x w^T on strided views, with dx and dw strided too, and each
// gradient also formed alone (the other NULL).
Test(ops_grad, fd_matmul) {
    Rng rng;
    rng_seed(&rng, 11);
    int M = 5, K = 12, N = 7;
    Tensor xb = random_2d(&rng, M, K + 8), wb = random_2d(&rng, N + 2, K + 8), out = zeros_2d(M, N);
    Tensor r = random_2d(&rng, M, N), dxb = zeros_2d(M, K + 3), dwb = zeros_2d(N, K + 5);
    MatmulCase c = {tensor_cols(&xb, 0, K), tensor_rows(&wb, 0, N), out, r, 0.7f};
    c.w = tensor_cols(&c.w, 0, K);
    Tensor dx = tensor_cols(&dxb, 0, K), dw = tensor_cols(&dwb, 0, K);
    op_matmul_backward(&dx, &dw, &r, &c.x, &c.w, c.alpha);
    fd_check("matmul dx", matmul_loss, &c, &c.x, &dx, &rng);
    fd_check("matmul dw", matmul_loss, &c, &c.w, &dw, &rng);
    cr_expect_eq(at(&dxb, 2, K), 0.0f, "dx columns outside the view are untouched");
    cr_expect_eq(at(&dwb, 3, K + 1), 0.0f, "dw columns outside the view are untouched");
    Tensor dx1 = zeros_2d(M, K), dw1 = zeros_2d(N, K);
    op_matmul_backward(&dx1, NULL, &r, &c.x, &c.w, c.alpha);
    op_matmul_backward(NULL, &dw1, &r, &c.x, &c.w, c.alpha);
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++) cr_expect_float_eq(at(&dx1, i, k), at(&dx, i, k), 1e-6);
    for (int j = 0; j < N; j++)
        for (int k = 0; k < K; k++) cr_expect_float_eq(at(&dw1, j, k), at(&dw, j, k), 1e-6);
    Tensor *all[] = {&xb, &wb, &out, &r, &dxb, &dwb, &dx1, &dw1};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
}

// out += alpha x w^T keeps what out held, for many rows (sgemm) and for one (gemv).
Test(ops_grad, matmul_add_accumulates_alpha_product) {
    Rng rng;
    rng_seed(&rng, 12);
    int K = 9, N = 6;
    for (int M = 1; M <= 5; M += 4) {
        Tensor x = random_2d(&rng, M, K), w = random_2d(&rng, N, K), out = random_2d(&rng, M, N), before = zeros_2d(M, N);
        copy_into(&before, &out);
        op_matmul_add(&out, &x, &w, -1.5f);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double ref = at(&before, i, j);
                for (int k = 0; k < K; k++) ref += -1.5 * at(&x, i, k) * at(&w, j, k);
                cr_expect_float_eq(at(&out, i, j), (float)ref, 1e-5, "M=%d out[%d][%d]", M, i, j);
            }
        tensor_free(&x);
        tensor_free(&w);
        tensor_free(&out);
        tensor_free(&before);
    }
}

// ---- embedding, rmsnorm, rope, swiglu -----------------------------------------------------

typedef struct {
    Tensor table, out, r;
    const int32_t *ids;
} EmbeddingCase;

static double embedding_loss(void *ctx) {
    EmbeddingCase *c = ctx;
    op_embedding(&c->out, &c->table, c->ids);
    return project(&c->r, &c->out);
}

Test(ops_grad, fd_embedding_repeated_ids) {
    Rng rng;
    rng_seed(&rng, 13);
    int32_t ids[8] = {1, 3, 1, 0, 5, 1, 3, 2}; // 1 three times, 3 twice, 4 never
    EmbeddingCase c = {random_2d(&rng, 6, 10), zeros_2d(8, 10), random_2d(&rng, 8, 10), ids};
    Tensor dtable = zeros_2d(6, 10);
    op_embedding_backward(&dtable, &c.r, ids);
    fd_check("embedding dtable", embedding_loss, &c, &c.table, &dtable, &rng);
    for (int j = 0; j < 10; j++) {
        cr_expect_eq(at(&dtable, 4, j), 0.0f, "an unused row gets no gradient");
        cr_expect_float_eq(at(&dtable, 1, j), at(&c.r, 0, j) + at(&c.r, 2, j) + at(&c.r, 5, j), 1e-6);
    }
    tensor_free(&c.table);
    tensor_free(&c.out);
    tensor_free(&c.r);
    tensor_free(&dtable);
}

typedef struct {
    Tensor x, w, out, r; // x [N, D] a column view; w [D]
    float eps;
} RmsnormCase;

static double rmsnorm_loss(void *ctx) {
    RmsnormCase *c = ctx;
    op_rmsnorm(&c->out, &c->x, &c->w, c->eps);
    return project(&c->r, &c->out);
}

Test(ops_grad, fd_rmsnorm) {
    Rng rng;
    rng_seed(&rng, 14);
    int N = 4, D = 12;
    Tensor xb = random_2d(&rng, N, D + 6), w;
    cr_assert_eq(tensor_alloc_1d(&w, DT_F32, CPU, D), ST_OK);
    for (int j = 0; j < D; j++) ((float *)w.data)[j] = 1.0f + 0.5f * rng_normal(&rng);
    RmsnormCase c = {tensor_cols(&xb, 0, D), w, zeros_2d(N, D), random_2d(&rng, N, D), 1e-5f};
    // r = y + noise: a projection along the output makes the gradient's radial
    // term (through the 1/rms factor) as large as the direct one
    rmsnorm_loss(&c);
    for (int64_t i = 0; i < N * D; i++) *elem(&c.r, i) = *elem(&c.out, i) + 0.5f * *elem(&c.r, i);
    Tensor dx = zeros_2d(N, D), dx_alone = zeros_2d(N, D), dw;
    cr_assert_eq(tensor_alloc_1d(&dw, DT_F32, CPU, D), ST_OK);
    op_rmsnorm_backward(&dx, &dw, &c.r, &c.x, &c.w, c.eps);
    fd_check("rmsnorm dx", rmsnorm_loss, &c, &c.x, &dx, &rng);
    fd_check("rmsnorm dw", rmsnorm_loss, &c, &c.w, &dw, &rng);
    op_rmsnorm_backward(&dx_alone, NULL, &c.r, &c.x, &c.w, c.eps);
    for (int64_t i = 0; i < N * D; i++) cr_expect_eq(*elem(&dx_alone, i), *elem(&dx, i), "dw = NULL gives the same dx");
    Tensor *all[] = {&xb, &w, &c.out, &c.r, &dx, &dx_alone, &dw};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
}

typedef struct {
    Tensor x, y, r; // y = rope(x)
    const int32_t *pos;
    const float *inv_freq;
    int n_heads, head_dim;
} RopeCase;

static double rope_loss(void *ctx) {
    RopeCase *c = ctx;
    copy_into(&c->y, &c->x);
    op_rope(&c->y, c->pos, c->inv_freq, c->n_heads, c->head_dim);
    return project(&c->r, &c->y);
}

Test(ops_grad, fd_rope) {
    Rng rng;
    rng_seed(&rng, 15);
    int32_t pos[3] = {0, 7, 1000};
    float inv_freq[4] = {1.0f, 0.3f, 0.05f, 0.001f};
    RopeCase c = {random_2d(&rng, 3, 16), zeros_2d(3, 16), random_2d(&rng, 3, 16), pos, inv_freq, 2, 8};
    Tensor dx = zeros_2d(3, 16);
    copy_into(&dx, &c.r);
    op_rope_backward(&dx, pos, inv_freq, 2, 8); // in place on the gradient
    fd_check("rope dx", rope_loss, &c, &c.x, &dx, &rng);
    tensor_free(&c.x);
    tensor_free(&c.y);
    tensor_free(&c.r);
    tensor_free(&dx);
}

typedef struct {
    Tensor gate, up, out, r;
} SwigluCase;

static double swiglu_loss(void *ctx) {
    SwigluCase *c = ctx;
    op_swiglu(&c->out, &c->gate, &c->up);
    return project(&c->r, &c->out);
}

Test(ops_grad, fd_swiglu) {
    Rng rng;
    rng_seed(&rng, 16);
    SwigluCase c = {random_2d(&rng, 3, 20), random_2d(&rng, 3, 20), zeros_2d(3, 20), random_2d(&rng, 3, 20)};
    Tensor dgate = zeros_2d(3, 20), dup = zeros_2d(3, 20);
    op_swiglu_backward(&dgate, &dup, &c.r, &c.gate, &c.up);
    fd_check("swiglu dgate", swiglu_loss, &c, &c.gate, &dgate, &rng);
    fd_check("swiglu dup", swiglu_loss, &c, &c.up, &dup, &rng);
    Tensor *all[] = {&c.gate, &c.up, &c.out, &c.r, &dgate, &dup};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
}

// ---- varlen attention ------------------------------------------------------------------

// Packed q, k, v as column-prefix views of wider buffers (a prefix of heads),
// with out, lse, r and the gradients.
typedef struct {
    VarlenShape s;
    int32_t cu[8];
    Tensor qb, kb, vb;     // the wider buffers
    Tensor q, k, v;        // [N, H*hd], [N, KV*hd] views of them
    Tensor out, lse, r;    // [N, H*hd], [H, N], [N, H*hd]
    Tensor dq, dk, dv;     // zeroed gradients
} AttnCase;

static void attn_case_init(AttnCase *c, Rng *rng, const int *lens, int n_seq, int H, int KV, int hd) {
    memset(c, 0, sizeof *c);
    c->cu[0] = 0;
    for (int b = 0; b < n_seq; b++) c->cu[b + 1] = c->cu[b] + lens[b];
    int N = c->cu[n_seq];
    c->s = (VarlenShape){c->cu, n_seq, H, KV, hd, false};
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
    Tensor *all[] = {&c->qb, &c->kb, &c->vb, &c->out, &c->lse, &c->r, &c->dq, &c->dk, &c->dv};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
}

static double attn_loss(void *ctx) {
    AttnCase *c = ctx;
    op_attention_varlen(&c->out, NULL, &c->q, &c->k, &c->v, &c->s);
    return project(&c->r, &c->out);
}

static void attn_backward(AttnCase *c) {
    op_attention_varlen(&c->out, &c->lse, &c->q, &c->k, &c->v, &c->s);
    op_attention_varlen_backward(&c->dq, &c->dk, &c->dv, &c->r, &c->q, &c->k, &c->v, &c->out, &c->lse, &c->s);
}

static void fd_attention(const char *name, const int *lens, int n_seq, int H, int KV, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    AttnCase c;
    attn_case_init(&c, &rng, lens, n_seq, H, KV, 8);
    attn_backward(&c);
    char what[64];
    snprintf(what, sizeof what, "%s dq", name);
    fd_check(what, attn_loss, &c, &c.q, &c.dq, &rng);
    snprintf(what, sizeof what, "%s dk", name);
    fd_check(what, attn_loss, &c, &c.k, &c.dk, &rng);
    snprintf(what, sizeof what, "%s dv", name);
    fd_check(what, attn_loss, &c, &c.v, &c.dv, &rng);
    attn_case_free(&c);
}

static const int LENS[3] = {1, 5, 9};

Test(ops_grad, fd_attention_varlen_mha) { fd_attention("attention mha", LENS, 3, 4, 4, 17); }
Test(ops_grad, fd_attention_varlen_gqa) { fd_attention("attention gqa", LENS, 3, 4, 2, 18); }
// A sequence longer than one query block (64) of the CPU kernel, next to a short one.
Test(ops_grad, fd_attention_varlen_long) { fd_attention("attention long", (const int[]){3, 70}, 2, 2, 1, 19); }

// out equals op_attention run on each sequence alone (n_past 0, cap = T, no
// padding); lse equals a naive log-sum-exp of the scaled scores.
Test(ops_grad, attention_varlen_matches_attention_and_lse) {
    Rng rng;
    rng_seed(&rng, 20);
    const int lens[4] = {1, 5, 9, 70};
    int H = 4, KV = 2, hd = 8;
    AttnCase c;
    attn_case_init(&c, &rng, lens, 4, H, KV, hd);
    op_attention_varlen(&c.out, &c.lse, &c.q, &c.k, &c.v, &c.s);
    Tensor ref = zeros_2d(c.cu[4], H * hd);
    double worst = 0, worst_lse = 0;
    for (int b = 0; b < 4; b++) {
        int T = lens[b], r0 = c.cu[b];
        int32_t *kmask = malloc((size_t)T * sizeof(int32_t));
        for (int t = 0; t < T; t++) kmask[t] = 1;
        Tensor q = tensor_rows(&c.q, r0, T), k = tensor_rows(&c.k, r0, T), v = tensor_rows(&c.v, r0, T);
        Tensor o = tensor_rows(&ref, r0, T);
        AttentionShape as = {1, T, 0, T, H, KV, hd};
        op_attention(&o, &q, &k, &v, kmask, &as, NULL);
        free(kmask);
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                double mx = -INFINITY, sum = 0, sc[70];
                for (int j = 0; j <= t; j++) {
                    double d = 0;
                    for (int e = 0; e < hd; e++) d += (double)at(&q, t, h * hd + e) * at(&k, j, h / (H / KV) * hd + e);
                    sc[j] = d / sqrt(hd);
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j <= t; j++) sum += exp(sc[j] - mx);
                double want = mx + log(sum), got = at(&c.lse, h, r0 + t);
                worst_lse = fmax(worst_lse, fabs(got - want));
                cr_expect_float_eq(got, want, 1e-5, "lse seq %d head %d t %d: %g vs %g", b, h, t, got, want);
            }
    }
    for (int64_t i = 0; i < numel(&ref); i++) {
        worst = fmax(worst, fabs(*elem(&ref, i) - *elem(&c.out, i)));
        cr_expect_float_eq(*elem(&c.out, i), *elem(&ref, i), 1e-5, "out element %ld", (long)i);
    }
    cr_log_info("attention_varlen: max |out - op_attention| %.2e, max |lse - naive| %.2e", worst, worst_lse);
    tensor_free(&ref);
    attn_case_free(&c);
}

// ---- cross-entropy, dropout -------------------------------------------------------------

typedef struct {
    Tensor logits;
    const int32_t *targets;
    float scale;
} CeCase;

static double ce_loss(void *ctx) {
    CeCase *c = ctx;
    return c->scale * op_cross_entropy(NULL, &c->logits, c->targets, c->scale);
}

Test(ops_grad, fd_cross_entropy) {
    Rng rng;
    rng_seed(&rng, 21);
    int32_t targets[5] = {3, -100, 0, 10, -1};
    CeCase c = {random_2d(&rng, 5, 11), targets, 0.25f};
    Tensor d = zeros_2d(5, 11);
    op_cross_entropy(&d, &c.logits, targets, c.scale); // d = dL/dlogits for L = scale * loss
    fd_check("cross_entropy dlogits", ce_loss, &c, &c.logits, &d, &rng);
    for (int j = 0; j < 11; j++) cr_expect_eq(at(&d, 1, j), 0.0f, "an ignored row gets zero gradient");
    tensor_free(&c.logits);
    tensor_free(&d);
}

// Loss and gradient against a naive double computation; dlogits aliasing
// logits gives bit for bit what a separate buffer gets.
Test(ops_grad, cross_entropy_matches_naive_and_aliasing) {
    Rng rng;
    rng_seed(&rng, 22);
    int N = 6, V = 50;
    int32_t targets[6] = {7, -100, 49, 0, -100, 23};
    Tensor logits = random_2d(&rng, N, V), d = random_2d(&rng, N, V), alias = zeros_2d(N, V);
    for (int64_t i = 0; i < N * V; i++) ((float *)logits.data)[i] *= 4.0f; // peaky rows
    ((float *)logits.data)[3 * V] = 80.0f;                                // a logit that overflows expf unshifted
    copy_into(&alias, &logits);
    double want = 0;
    double loss = op_cross_entropy(&d, &logits, targets, 0.5f);
    for (int i = 0; i < N; i++) {
        if (targets[i] < 0) continue;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < V; j++) mx = fmax(mx, at(&logits, i, j));
        for (int j = 0; j < V; j++) sum += exp(at(&logits, i, j) - mx);
        double lse = mx + log(sum);
        want += lse - at(&logits, i, targets[i]);
        for (int j = 0; j < V; j++) {
            double g = 0.5 * (exp(at(&logits, i, j) - lse) - (j == targets[i]));
            cr_expect_float_eq(at(&d, i, j), (float)g, 1e-6, "dlogits[%d][%d]", i, j);
        }
    }
    cr_expect_float_eq(loss, want, 1e-5 * fabs(want), "loss %.9g vs naive %.9g", loss, want);
    double loss_alias = op_cross_entropy(&alias, &alias, targets, 0.5f);
    cr_expect_eq(loss_alias, loss, "aliased loss %.17g vs %.17g", loss_alias, loss);
    cr_expect_eq(memcmp(alias.data, d.data, (size_t)(N * V) * sizeof(float)), 0, "aliased dlogits differ");
    cr_expect_eq(op_cross_entropy(NULL, &logits, targets, 0.5f), loss, "the loss does not depend on dlogits");
    tensor_free(&logits);
    tensor_free(&d);
    tensor_free(&alias);
}

typedef struct {
    Tensor x, out, r;
    float p;
    uint64_t seed;
} DropoutCase;

static double dropout_loss(void *ctx) {
    DropoutCase *c = ctx;
    op_dropout(&c->out, &c->x, c->p, c->seed);
    return project(&c->r, &c->out);
}

Test(ops_grad, fd_dropout) {
    Rng rng;
    rng_seed(&rng, 23);
    DropoutCase c = {random_2d(&rng, 6, 40), zeros_2d(6, 40), random_2d(&rng, 6, 40), 0.3f, 99};
    Tensor dx = zeros_2d(6, 40);
    op_dropout(&dx, &c.r, c.p, c.seed); // the backward is the same op on the gradient
    fd_check("dropout dx", dropout_loss, &c, &c.x, &dx, &rng);
    tensor_free(&c.x);
    tensor_free(&c.out);
    tensor_free(&c.r);
    tensor_free(&dx);
}

// The hash is splitmix64 as documented: S(0) is splitmix64's first output from state 0.
Test(ops_grad, dropout_hash_is_splitmix64) {
    cr_expect_eq(dropout_splitmix(0), 0xe220a8397b1dcdafULL);
    uint64_t h = dropout_splitmix(dropout_splitmix(dropout_splitmix(5) ^ 7) ^ 11);
    cr_expect_eq(dropout_uniform(dropout_row_key(5, 7), 11), (float)(h >> 40) / 16777216.0f);
}

Test(ops_grad, dropout_statistics_and_determinism) {
    int R = 250, C = 400; // 100k elements
    float p = 0.3f;
    Tensor x = zeros_2d(R, C), a = zeros_2d(R, C), b = zeros_2d(R, C), other = zeros_2d(R, C);
    fill(&x, 1.0f);
    ((float *)x.data)[5] = 3.0f;
    op_dropout(&a, &x, p, 1234);
    op_dropout(&b, &x, p, 1234);
    op_dropout(&other, &x, p, 1235);
    int64_t kept = 0, differ = 0, bad_scale = 0;
    float scale = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < (int64_t)R * C; i++) {
        float ai = ((float *)a.data)[i], xi = ((float *)x.data)[i];
        if (ai != 0.0f) {
            kept++;
            if (fabsf(ai - xi * scale) > 1e-6f * fabsf(xi * scale)) bad_scale++;
        }
        differ += (ai != 0.0f) != (((float *)other.data)[i] != 0.0f);
    }
    double frac = (double)kept / (R * C);
    cr_expect(fabs(frac - (1.0 - p)) < 0.01, "kept fraction %.4f, want %.2f", frac, 1.0 - p);
    cr_expect_eq(bad_scale, 0, "%ld kept values not scaled by 1/(1-p)", (long)bad_scale);
    cr_expect_eq(memcmp(a.data, b.data, (size_t)R * C * sizeof(float)), 0, "same seed, same output");
    // independent masks disagree on a fraction 2 p (1 - p) = 0.42 of the elements
    cr_expect(differ > R * C / 3, "another seed changes only %ld of %d decisions", (long)differ, R * C);
    // in place, and on a column view: the mask is a function of (row, column) only
    Tensor in_place = zeros_2d(R, C);
    copy_into(&in_place, &x);
    op_dropout(&in_place, &in_place, p, 1234);
    cr_expect_eq(memcmp(in_place.data, a.data, (size_t)R * C * sizeof(float)), 0, "in place gives the same output");
    Tensor xv = tensor_cols(&x, 0, 100), ov = tensor_cols(&other, 0, 100);
    op_dropout(&ov, &xv, p, 1234);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < 100; j++) cr_expect_eq(at(&other, i, j), at(&a, i, j), "view (%d, %d)", i, j);
    // p = 0 is a copy
    op_dropout(&b, &x, 0.0f, 1234);
    cr_expect_eq(memcmp(b.data, x.data, (size_t)R * C * sizeof(float)), 0, "p = 0 copies");
    cr_log_info("dropout: kept %.4f of %d at p = %.1f; another seed flips %ld", frac, R * C, p, (long)differ);
    Tensor *all[] = {&x, &a, &b, &other, &in_place};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
}

// ---- the += contract ---------------------------------------------------------------------

static void expect_doubled(const char *what, const Tensor *once, const Tensor *twice) {
    double largest = 0;
    for (int64_t i = 0; i < numel(once); i++) {
        double a = *elem(once, i), b = *elem(twice, i);
        largest = fmax(largest, fabs(a));
        cr_expect_float_eq(b, 2 * a, 1e-5 * (1 + fabs(a)), "%s element %ld: once %g twice %g", what, (long)i, a, b);
    }
    cr_expect(largest > 0.1, "%s: the gradient is not trivially zero", what);
}

static Tensor copy_of(const Tensor *t) {
    Tensor c = zeros_2d(n_rows(t), n_cols(t));
    copy_into(&c, t);
    return c;
}

Test(ops_grad, backward_accumulates) {
    Rng rng;
    rng_seed(&rng, 24);
    Tensor x = random_2d(&rng, 4, 6), w = random_2d(&rng, 5, 6), dout = random_2d(&rng, 4, 5);
    Tensor dx = zeros_2d(4, 6), dw = zeros_2d(5, 6);
    op_matmul_backward(&dx, &dw, &dout, &x, &w, 1.3f);
    Tensor dx1 = copy_of(&dx), dw1 = copy_of(&dw);
    op_matmul_backward(&dx, &dw, &dout, &x, &w, 1.3f);
    expect_doubled("matmul dx", &dx1, &dx);
    expect_doubled("matmul dw", &dw1, &dw);

    AttnCase c;
    attn_case_init(&c, &rng, LENS, 3, 4, 2, 8);
    attn_backward(&c);
    Tensor dq1 = copy_of(&c.dq), dk1 = copy_of(&c.dk), dv1 = copy_of(&c.dv);
    op_attention_varlen_backward(&c.dq, &c.dk, &c.dv, &c.r, &c.q, &c.k, &c.v, &c.out, &c.lse, &c.s);
    expect_doubled("attention dq", &dq1, &c.dq);
    expect_doubled("attention dk", &dk1, &c.dk);
    expect_doubled("attention dv", &dv1, &c.dv);
    attn_case_free(&c);
    Tensor *all[] = {&x, &w, &dout, &dx, &dw, &dx1, &dw1, &dq1, &dk1, &dv1};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
}

// ---- optimizer and norms ---------------------------------------------------------------------

// Three AdamW steps against the formula in double (torch.optim.AdamW, weight decay on).
Test(ops_grad, adamw_three_steps_match_reference) {
    Rng rng;
    rng_seed(&rng, 25);
    enum { n = 1000 };
    Tensor p, g, m, v;
    cr_assert_eq(tensor_alloc_1d(&p, DT_F32, CPU, n), ST_OK);
    cr_assert_eq(tensor_alloc_1d(&g, DT_F32, CPU, n), ST_OK);
    cr_assert_eq(tensor_alloc_1d(&m, DT_F32, CPU, n), ST_OK);
    cr_assert_eq(tensor_alloc_1d(&v, DT_F32, CPU, n), ST_OK);
    static double rp[n], rm[n], rv[n];
    float *pd = p.data, *gd = g.data;
    for (int i = 0; i < n; i++) rp[i] = pd[i] = rng_normal(&rng);
    AdamWStep h = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    double worst = 0;
    for (int t = 1; t <= 3; t++) {
        for (int i = 0; i < n; i++) gd[i] = rng_normal(&rng) * (i % 10 == 0 ? 1e-4f : 1.0f);
        h.t = t;
        op_adamw(&p, &g, &m, &v, &h);
        double b1 = h.beta1, b2 = h.beta2, lr = h.lr;
        for (int i = 0; i < n; i++) {
            rp[i] *= 1 - lr * (double)h.weight_decay;
            rm[i] = b1 * rm[i] + (1 - b1) * gd[i];
            rv[i] = b2 * rv[i] + (1 - b2) * (double)gd[i] * gd[i];
            double denom = sqrt(rv[i]) / sqrt(1 - pow(b2, t)) + (double)h.eps;
            rp[i] -= lr / (1 - pow(b1, t)) * rm[i] / denom;
            worst = fmax(worst, fabs(pd[i] - rp[i]));
            cr_expect_float_eq(pd[i], rp[i], 2e-6 * (1 + fabs(rp[i])), "step %d p[%d] %.9g vs %.9g", t, i, pd[i], rp[i]);
            // m can cancel to near 0: its rounding is relative to the terms, not to the sum
            double m_tol = 1e-6 * (fabs(rm[i]) + fabs(gd[i]) + 1e-9);
            cr_expect_float_eq(((float *)m.data)[i], rm[i], m_tol, "step %d m[%d] %.9g vs %.9g", t, i,
                               ((float *)m.data)[i], rm[i]);
            cr_expect_float_eq(((float *)v.data)[i], rv[i], 1e-6 * (1e-9 + fabs(rv[i])), "step %d v[%d] %.9g vs %.9g", t, i,
                               ((float *)v.data)[i], rv[i]);
        }
    }
    cr_log_info("adamw: max |p - reference| after 3 steps %.2e", worst);
    tensor_free(&p);
    tensor_free(&g);
    tensor_free(&m);
    tensor_free(&v);
}

Test(ops_grad, sumsq_and_scale_on_views) {
    Rng rng;
    rng_seed(&rng, 26);
    Tensor a = random_2d(&rng, 7, 13);
    Tensor view = tensor_cols(&a, 2, 5);
    double want = 0, want_view = 0;
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 13; j++) {
            want += (double)at(&a, i, j) * at(&a, i, j);
            if (j >= 2 && j < 7) want_view += (double)at(&a, i, j) * at(&a, i, j);
        }
    cr_expect_float_eq(op_sumsq(&a), want, 1e-12 * want);
    cr_expect_float_eq(op_sumsq(&view), want_view, 1e-12 * want_view);
    float before00 = at(&a, 0, 0), before03 = at(&a, 0, 3);
    op_scale(&view, -2.0f);
    cr_expect_eq(at(&a, 0, 0), before00, "outside the view is untouched");
    cr_expect_eq(at(&a, 0, 3), -2.0f * before03);
    cr_expect_float_eq(op_sumsq(&view), 4 * want_view, 1e-6 * want_view);
    tensor_free(&a);
}
