// The training ops (ops.h, "training") on the CPU.
//
// Every backward is checked against central finite differences of a scalar
// L = sum(r ⊙ f(inputs)) with a fixed random projection r (so dout = r), by
// tu_fd_check (test_util.h has the derivation of its tolerance). Gradients of
// these cases are O(1), so a wrong term fails by orders of magnitude (observed
// errors are ~1e-5 relative).
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/dropout_hash.h"
#include "ops/ops.h"
#include "runtime/rng.h"
#include "test_util.h"

// ---- matmul ----------------------------------------------------------------------------

typedef struct {
    Tensor x, w, out, r; // x [M, K] and w [N, K] are column-prefix views; out, r [M, N]
    float alpha;
} MatmulCase;

static double matmul_loss(void *ctx) {
    MatmulCase *c = ctx;
    tu_fill(&c->out, 0.0f);
    op_matmul_add(&c->out, &c->x, &c->w, c->alpha);
    return tu_project(&c->r, &c->out);
}

// FD of out = alpha x w^T on strided views, with dx and dw strided too, and each
// gradient also formed alone (the other NULL).
Test(ops_grad, fd_matmul) {
    Rng rng;
    rng_seed(&rng, 11);
    int M = 5, K = 12, N = 7;
    Tensor xb = tu_random_2d(&rng, M, K + 8), wb = tu_random_2d(&rng, N + 2, K + 8), out = tu_zeros_2d(M, N);
    Tensor r = tu_random_2d(&rng, M, N), dxb = tu_zeros_2d(M, K + 3), dwb = tu_zeros_2d(N, K + 5);
    MatmulCase c = {tensor_cols(&xb, 0, K), tensor_rows(&wb, 0, N), out, r, 0.7f};
    c.w = tensor_cols(&c.w, 0, K);
    Tensor dx = tensor_cols(&dxb, 0, K), dw = tensor_cols(&dwb, 0, K);
    op_matmul_backward(&dx, &dw, &r, &c.x, &c.w, c.alpha);
    tu_fd_check("matmul dx", matmul_loss, &c, &c.x, &dx, &rng);
    tu_fd_check("matmul dw", matmul_loss, &c, &c.w, &dw, &rng);
    cr_expect_eq(tu_at(&dxb, 2, K), 0.0f, "dx columns outside the view are untouched");
    cr_expect_eq(tu_at(&dwb, 3, K + 1), 0.0f, "dw columns outside the view are untouched");
    Tensor dx1 = tu_zeros_2d(M, K), dw1 = tu_zeros_2d(N, K);
    op_matmul_backward(&dx1, NULL, &r, &c.x, &c.w, c.alpha);
    op_matmul_backward(NULL, &dw1, &r, &c.x, &c.w, c.alpha);
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++) cr_expect_float_eq(tu_at(&dx1, i, k), tu_at(&dx, i, k), 1e-6);
    for (int j = 0; j < N; j++)
        for (int k = 0; k < K; k++) cr_expect_float_eq(tu_at(&dw1, j, k), tu_at(&dw, j, k), 1e-6);
    TU_FREE_ALL(&xb, &wb, &out, &r, &dxb, &dwb, &dx1, &dw1);
}

// out += alpha x w^T keeps what out held, for many rows (sgemm) and for one (gemv).
Test(ops_grad, matmul_add_accumulates_alpha_product) {
    Rng rng;
    rng_seed(&rng, 12);
    int K = 9, N = 6;
    for (int M = 1; M <= 5; M += 4) {
        Tensor x = tu_random_2d(&rng, M, K), w = tu_random_2d(&rng, N, K), out = tu_random_2d(&rng, M, N),
               before = tu_zeros_2d(M, N);
        tu_copy_into(&before, &out);
        op_matmul_add(&out, &x, &w, -1.5f);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double ref = tu_at(&before, i, j);
                for (int k = 0; k < K; k++) ref += -1.5 * tu_at(&x, i, k) * tu_at(&w, j, k);
                cr_expect_float_eq(tu_at(&out, i, j), (float)ref, 1e-5, "M=%d out[%d][%d]", M, i, j);
            }
        TU_FREE_ALL(&x, &w, &out, &before);
    }
}

// ---- embedding, rmsnorm, rope, swiglu -----------------------------------------------------

Test(ops_grad, fd_embedding_repeated_ids) {
    Rng rng;
    rng_seed(&rng, 13);
    int32_t ids[8] = {1, 3, 1, 0, 5, 1, 3, 2}; // 1 three times, 3 twice, 4 never
    TuEmbeddingCase c = {tu_random_2d(&rng, 6, 10), tu_zeros_2d(8, 10), tu_random_2d(&rng, 8, 10), ids};
    Tensor dtable = tu_zeros_2d(6, 10);
    op_embedding_backward(&dtable, &c.r, ids);
    tu_fd_check("embedding dtable", tu_embedding_loss, &c, &c.table, &dtable, &rng);
    for (int j = 0; j < 10; j++) {
        cr_expect_eq(tu_at(&dtable, 4, j), 0.0f, "an unused row gets no gradient");
        cr_expect_float_eq(tu_at(&dtable, 1, j), tu_at(&c.r, 0, j) + tu_at(&c.r, 2, j) + tu_at(&c.r, 5, j), 1e-6);
    }
    TU_FREE_ALL(&c.table, &c.out, &c.r, &dtable);
}

typedef struct {
    Tensor x, w, out, r; // x [N, D] a column view; w [D]
    float eps;
} RmsnormCase;

static double rmsnorm_loss(void *ctx) {
    RmsnormCase *c = ctx;
    op_rmsnorm(&c->out, &c->x, &c->w, c->eps);
    return tu_project(&c->r, &c->out);
}

Test(ops_grad, fd_rmsnorm) {
    Rng rng;
    rng_seed(&rng, 14);
    int N = 4, D = 12;
    Tensor xb = tu_random_2d(&rng, N, D + 6), w = tu_random_1d(&rng, D, 1.0f, 0.5f);
    RmsnormCase c = {tensor_cols(&xb, 0, D), w, tu_zeros_2d(N, D), tu_random_2d(&rng, N, D), 1e-5f};
    // r = y + noise: a projection along the output makes the gradient's radial
    // term (through the 1/rms factor) as large as the direct one
    rmsnorm_loss(&c);
    for (int64_t i = 0; i < N * D; i++) *tu_elem(&c.r, i) = *tu_elem(&c.out, i) + 0.5f * *tu_elem(&c.r, i);
    Tensor dx = tu_zeros_2d(N, D), dx_alone = tu_zeros_2d(N, D), dw = tu_zeros_1d(D);
    op_rmsnorm_backward(&dx, &dw, &c.r, &c.x, &c.w, c.eps);
    tu_fd_check("rmsnorm dx", rmsnorm_loss, &c, &c.x, &dx, &rng);
    tu_fd_check("rmsnorm dw", rmsnorm_loss, &c, &c.w, &dw, &rng);
    op_rmsnorm_backward(&dx_alone, NULL, &c.r, &c.x, &c.w, c.eps);
    for (int64_t i = 0; i < N * D; i++)
        cr_expect_eq(*tu_elem(&dx_alone, i), *tu_elem(&dx, i), "dw = NULL gives the same dx");
    TU_FREE_ALL(&xb, &w, &c.out, &c.r, &dx, &dx_alone, &dw);
}

typedef struct {
    Tensor x, y, r; // y = rope(x)
    const int32_t *pos;
    const float *inv_freq;
    int n_heads, head_dim;
} RopeCase;

static double rope_loss(void *ctx) {
    RopeCase *c = ctx;
    tu_copy_into(&c->y, &c->x);
    op_rope(&c->y, c->pos, c->inv_freq, c->n_heads, c->head_dim);
    return tu_project(&c->r, &c->y);
}

Test(ops_grad, fd_rope) {
    Rng rng;
    rng_seed(&rng, 15);
    int32_t pos[3] = {0, 7, 1000};
    float inv_freq[4] = {1.0f, 0.3f, 0.05f, 0.001f};
    RopeCase c = {tu_random_2d(&rng, 3, 16), tu_zeros_2d(3, 16), tu_random_2d(&rng, 3, 16), pos, inv_freq, 2, 8};
    Tensor dx = tu_zeros_2d(3, 16);
    tu_copy_into(&dx, &c.r);
    op_rope_backward(&dx, pos, inv_freq, 2, 8); // in place on the gradient
    tu_fd_check("rope dx", rope_loss, &c, &c.x, &dx, &rng);
    TU_FREE_ALL(&c.x, &c.y, &c.r, &dx);
}

typedef struct {
    Tensor gate, up, out, r;
} SwigluCase;

static double swiglu_loss(void *ctx) {
    SwigluCase *c = ctx;
    op_swiglu(&c->out, &c->gate, &c->up);
    return tu_project(&c->r, &c->out);
}

Test(ops_grad, fd_swiglu) {
    Rng rng;
    rng_seed(&rng, 16);
    SwigluCase c = {tu_random_2d(&rng, 3, 20), tu_random_2d(&rng, 3, 20), tu_zeros_2d(3, 20),
                    tu_random_2d(&rng, 3, 20)};
    Tensor dgate = tu_zeros_2d(3, 20), dup = tu_zeros_2d(3, 20);
    op_swiglu_backward(&dgate, &dup, &c.r, &c.gate, &c.up);
    tu_fd_check("swiglu dgate", swiglu_loss, &c, &c.gate, &dgate, &rng);
    tu_fd_check("swiglu dup", swiglu_loss, &c, &c.up, &dup, &rng);
    TU_FREE_ALL(&c.gate, &c.up, &c.out, &c.r, &dgate, &dup);
}

// ---- varlen attention ------------------------------------------------------------------

static void fd_attention(const char *name, const int *lens, int n_seq, int H, int KV, uint64_t seed) {
    TuAttnCase c;
    tu_attn_fd_case(&c, name, lens, n_seq, H, KV, seed, false);
    tu_attn_case_free(&c);
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
    TuAttnCase c;
    tu_attn_case_init(&c, &rng, lens, 4, H, KV, hd, false);
    op_attention_varlen(&c.out, &c.lse, &c.q, &c.k, &c.v, &c.s);
    Tensor ref = tu_zeros_2d(c.cu[4], H * hd);
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
                    for (int e = 0; e < hd; e++)
                        d += (double)tu_at(&q, t, h * hd + e) * tu_at(&k, j, h / (H / KV) * hd + e);
                    sc[j] = d / sqrt(hd);
                    mx = fmax(mx, sc[j]);
                }
                for (int j = 0; j <= t; j++) sum += exp(sc[j] - mx);
                double want = mx + log(sum), got = tu_at(&c.lse, h, r0 + t);
                worst_lse = fmax(worst_lse, fabs(got - want));
                cr_expect_float_eq(got, want, 1e-5, "lse seq %d head %d t %d: %g vs %g", b, h, t, got, want);
            }
    }
    for (int64_t i = 0; i < tu_numel(&ref); i++) {
        worst = fmax(worst, fabs(*tu_elem(&ref, i) - *tu_elem(&c.out, i)));
        cr_expect_float_eq(*tu_elem(&c.out, i), *tu_elem(&ref, i), 1e-5, "out element %ld", (long)i);
    }
    cr_log_info("attention_varlen: max |out - op_attention| %.2e, max |lse - naive| %.2e", worst, worst_lse);
    tensor_free(&ref);
    tu_attn_case_free(&c);
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
    CeCase c = {tu_random_2d(&rng, 5, 11), targets, 0.25f};
    Tensor d = tu_zeros_2d(5, 11);
    op_cross_entropy(&d, &c.logits, targets, c.scale); // d = dL/dlogits for L = scale * loss
    tu_fd_check("cross_entropy dlogits", ce_loss, &c, &c.logits, &d, &rng);
    for (int j = 0; j < 11; j++) cr_expect_eq(tu_at(&d, 1, j), 0.0f, "an ignored row gets zero gradient");
    TU_FREE_ALL(&c.logits, &d);
}

// Loss and gradient against a naive double computation; dlogits aliasing
// logits gives bit for bit what a separate buffer gets.
Test(ops_grad, cross_entropy_matches_naive_and_aliasing) {
    Rng rng;
    rng_seed(&rng, 22);
    int N = 6, V = 50;
    int32_t targets[6] = {7, -100, 49, 0, -100, 23};
    Tensor logits = tu_random_2d(&rng, N, V), d = tu_random_2d(&rng, N, V), alias = tu_zeros_2d(N, V);
    for (int64_t i = 0; i < N * V; i++) ((float *)logits.data)[i] *= 4.0f; // peaky rows
    ((float *)logits.data)[3 * V] = 80.0f;                                // a logit that overflows expf unshifted
    tu_copy_into(&alias, &logits);
    double want = 0;
    double loss = op_cross_entropy(&d, &logits, targets, 0.5f);
    for (int i = 0; i < N; i++) {
        if (targets[i] < 0) continue;
        double mx = -INFINITY, sum = 0;
        for (int j = 0; j < V; j++) mx = fmax(mx, tu_at(&logits, i, j));
        for (int j = 0; j < V; j++) sum += exp(tu_at(&logits, i, j) - mx);
        double lse = mx + log(sum);
        want += lse - tu_at(&logits, i, targets[i]);
        for (int j = 0; j < V; j++) {
            double g = 0.5 * (exp(tu_at(&logits, i, j) - lse) - (j == targets[i]));
            cr_expect_float_eq(tu_at(&d, i, j), (float)g, 1e-6, "dlogits[%d][%d]", i, j);
        }
    }
    cr_expect_float_eq(loss, want, 1e-5 * fabs(want), "loss %.9g vs naive %.9g", loss, want);
    double loss_alias = op_cross_entropy(&alias, &alias, targets, 0.5f);
    cr_expect_eq(loss_alias, loss, "aliased loss %.17g vs %.17g", loss_alias, loss);
    cr_expect_eq(memcmp(alias.data, d.data, (size_t)(N * V) * sizeof(float)), 0, "aliased dlogits differ");
    cr_expect_eq(op_cross_entropy(NULL, &logits, targets, 0.5f), loss, "the loss does not depend on dlogits");
    TU_FREE_ALL(&logits, &d, &alias);
}

typedef struct {
    Tensor x, out, r;
    float p;
    uint64_t seed;
} DropoutCase;

static double dropout_loss(void *ctx) {
    DropoutCase *c = ctx;
    op_dropout(&c->out, &c->x, c->p, c->seed);
    return tu_project(&c->r, &c->out);
}

Test(ops_grad, fd_dropout) {
    Rng rng;
    rng_seed(&rng, 23);
    DropoutCase c = {tu_random_2d(&rng, 6, 40), tu_zeros_2d(6, 40), tu_random_2d(&rng, 6, 40), 0.3f, 99};
    Tensor dx = tu_zeros_2d(6, 40);
    op_dropout(&dx, &c.r, c.p, c.seed); // the backward is the same op on the gradient
    tu_fd_check("dropout dx", dropout_loss, &c, &c.x, &dx, &rng);
    TU_FREE_ALL(&c.x, &c.out, &c.r, &dx);
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
    Tensor x = tu_zeros_2d(R, C), a = tu_zeros_2d(R, C), b = tu_zeros_2d(R, C), other = tu_zeros_2d(R, C);
    tu_fill(&x, 1.0f);
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
    Tensor in_place = tu_zeros_2d(R, C);
    tu_copy_into(&in_place, &x);
    op_dropout(&in_place, &in_place, p, 1234);
    cr_expect_eq(memcmp(in_place.data, a.data, (size_t)R * C * sizeof(float)), 0, "in place gives the same output");
    Tensor xv = tensor_cols(&x, 0, 100), ov = tensor_cols(&other, 0, 100);
    op_dropout(&ov, &xv, p, 1234);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < 100; j++) cr_expect_eq(tu_at(&other, i, j), tu_at(&a, i, j), "view (%d, %d)", i, j);
    // p = 0 is a copy
    op_dropout(&b, &x, 0.0f, 1234);
    cr_expect_eq(memcmp(b.data, x.data, (size_t)R * C * sizeof(float)), 0, "p = 0 copies");
    cr_log_info("dropout: kept %.4f of %d at p = %.1f; another seed flips %ld", frac, R * C, p, (long)differ);
    TU_FREE_ALL(&x, &a, &b, &other, &in_place);
}

// ---- the += contract ---------------------------------------------------------------------

Test(ops_grad, backward_accumulates) {
    Rng rng;
    rng_seed(&rng, 24);
    Tensor x = tu_random_2d(&rng, 4, 6), w = tu_random_2d(&rng, 5, 6), dout = tu_random_2d(&rng, 4, 5);
    Tensor dx = tu_zeros_2d(4, 6), dw = tu_zeros_2d(5, 6);
    op_matmul_backward(&dx, &dw, &dout, &x, &w, 1.3f);
    Tensor dx1 = tu_copy_of(&dx), dw1 = tu_copy_of(&dw);
    op_matmul_backward(&dx, &dw, &dout, &x, &w, 1.3f);
    tu_expect_doubled("matmul dx", &dx1, &dx);
    tu_expect_doubled("matmul dw", &dw1, &dw);

    TuAttnCase c;
    tu_attn_case_init(&c, &rng, LENS, 3, 4, 2, 8, false);
    tu_attn_backward(&c);
    tu_attn_expect_accumulates("attention", &c);
    tu_attn_case_free(&c);
    TU_FREE_ALL(&x, &w, &dout, &dx, &dw, &dx1, &dw1);
}

// ---- optimizer and norms ---------------------------------------------------------------------

// Three AdamW steps against the formula in double (torch.optim.AdamW, weight decay on).
Test(ops_grad, adamw_three_steps_match_reference) {
    Rng rng;
    rng_seed(&rng, 25);
    enum { n = 1000 };
    Tensor p = tu_zeros_1d(n), g = tu_zeros_1d(n), m = tu_zeros_1d(n), v = tu_zeros_1d(n);
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
    TU_FREE_ALL(&p, &g, &m, &v);
}

Test(ops_grad, sumsq_and_scale_on_views) {
    Rng rng;
    rng_seed(&rng, 26);
    Tensor a = tu_random_2d(&rng, 7, 13);
    Tensor view = tensor_cols(&a, 2, 5);
    double want = 0, want_view = 0;
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 13; j++) {
            want += (double)tu_at(&a, i, j) * tu_at(&a, i, j);
            if (j >= 2 && j < 7) want_view += (double)tu_at(&a, i, j) * tu_at(&a, i, j);
        }
    cr_expect_float_eq(op_sumsq(&a), want, 1e-12 * want);
    cr_expect_float_eq(op_sumsq(&view), want_view, 1e-12 * want_view);
    float before00 = tu_at(&a, 0, 0), before03 = tu_at(&a, 0, 3);
    op_scale(&view, -2.0f);
    cr_expect_eq(tu_at(&a, 0, 0), before00, "outside the view is untouched");
    cr_expect_eq(tu_at(&a, 0, 3), -2.0f * before03);
    cr_expect_float_eq(op_sumsq(&view), 4 * want_view, 1e-6 * want_view);
    tensor_free(&a);
}
