// CPU ops against plain-loop references written independently here.
// Tolerances: 1e-5 absolute on O(1) values (fp32 with different summation order).
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/llama.h"
#include "ops/ops.h"
#include "runtime/half.h"
#include "runtime/rng.h"
#include "test_util.h"

static const Device CPU = {DEV_CPU, 0};

static Tensor random_2d(Rng *r, int64_t rows, int64_t cols) {
    Tensor t;
    cr_assert_eq(tensor_alloc_2d(&t, DT_F32, CPU, rows, cols), ST_OK);
    for (int64_t i = 0; i < rows * cols; i++) ((float *)t.data)[i] = rng_normal(r);
    return t;
}

static float at(const Tensor *t, int64_t i, int64_t j) { return tensor_row_f32(t, i)[j]; }

// out = x @ w^T on views: a prefix of w's columns and rows (an elastic level's slice).
Test(ops, matmul_on_strided_prefix_views) {
    Rng r;
    rng_seed(&r, 1);
    Tensor x = random_2d(&r, 5, 24), w = random_2d(&r, 10, 24), out;
    Tensor xv = tensor_cols(&x, 0, 16), wv = tensor_rows(&w, 0, 7);
    wv = tensor_cols(&wv, 0, 16);
    cr_assert_eq(tensor_alloc_2d(&out, DT_F32, CPU, 5, 12), ST_OK);
    Tensor ov = tensor_cols(&out, 2, 7); // and a strided destination
    op_matmul(&ov, &xv, &wv);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 7; j++) {
            double ref = 0;
            for (int k = 0; k < 16; k++) ref += (double)at(&x, i, k) * at(&w, j, k);
            cr_expect_float_eq(at(&ov, i, j), (float)ref, 1e-5, "out[%d][%d]", i, j);
        }
    cr_expect_eq(at(&out, 0, 0), 0.0f, "columns outside the view are untouched");
    tensor_free(&x);
    tensor_free(&w);
    tensor_free(&out);
}

Test(ops, rmsnorm_swiglu_add_log_softmax) {
    Rng r;
    rng_seed(&r, 2);
    Tensor x = random_2d(&r, 3, 33), w = random_2d(&r, 1, 33), y = random_2d(&r, 3, 33), out = random_2d(&r, 3, 33);
    Tensor w1 = tensor_reshape(&w, 1, (int64_t[]){33});
    op_rmsnorm(&out, &x, &w1, 1e-5f);
    for (int i = 0; i < 3; i++) {
        double ss = 0;
        for (int j = 0; j < 33; j++) ss += (double)at(&x, i, j) * at(&x, i, j);
        double inv = 1.0 / sqrt(ss / 33 + 1e-5);
        for (int j = 0; j < 33; j++) cr_expect_float_eq(at(&out, i, j), (float)(at(&x, i, j) * inv * at(&w, 0, j)), 1e-5);
    }
    op_swiglu(&out, &x, &y);
    for (int j = 0; j < 33; j++) {
        float g = at(&x, 1, j);
        cr_expect_float_eq(at(&out, 1, j), g / (1 + expf(-g)) * at(&y, 1, j), 1e-5);
    }
    op_add(&out, &x, &y);
    cr_expect_float_eq(at(&out, 2, 5), at(&x, 2, 5) + at(&y, 2, 5), 1e-6);
    op_log_softmax(&out, &x);
    for (int i = 0; i < 3; i++) {
        double s = 0;
        for (int j = 0; j < 33; j++) s += exp(at(&out, i, j));
        cr_expect_float_eq(s, 1.0, 1e-5, "row %d sums to %g", i, s);
        cr_expect_float_eq(at(&out, i, 4) - at(&out, i, 9), at(&x, i, 4) - at(&x, i, 9), 1e-5);
    }
    tensor_free(&x);
    tensor_free(&w);
    tensor_free(&y);
    tensor_free(&out);
}

// Rotary: rotating q at position p and k at position p' gives a dot product
// that depends only on p - p', and rotate_half pairs i with i + hd/2.
Test(ops, rope_rotate_half_and_relative) {
    int hd = 8;
    float inv_freq[4] = {1.0f, 0.3f, 0.05f, 0.001f};
    Tensor a, b;
    cr_assert_eq(tensor_alloc_2d(&a, DT_F32, CPU, 2, hd), ST_OK);
    cr_assert_eq(tensor_alloc_2d(&b, DT_F32, CPU, 2, hd), ST_OK);
    Rng r;
    rng_seed(&r, 3);
    for (int j = 0; j < hd; j++) {
        float q = rng_normal(&r), k = rng_normal(&r);
        tensor_row_f32(&a, 0)[j] = q; tensor_row_f32(&a, 1)[j] = k;
        tensor_row_f32(&b, 0)[j] = q; tensor_row_f32(&b, 1)[j] = k;
    }
    float x0 = at(&a, 0, 0), x4 = at(&a, 0, 4);
    op_rope(&a, (int32_t[]){7, 3}, inv_freq, 1, hd);
    op_rope(&b, (int32_t[]){104, 100}, inv_freq, 1, hd);
    cr_expect_float_eq(at(&a, 0, 0), x0 * cosf(7) - x4 * sinf(7), 1e-5);
    cr_expect_float_eq(at(&a, 0, 4), x4 * cosf(7) + x0 * sinf(7), 1e-5);
    float da = 0, db = 0;
    for (int j = 0; j < hd; j++) {
        da += at(&a, 0, j) * at(&a, 1, j);
        db += at(&b, 0, j) * at(&b, 1, j);
    }
    cr_expect_float_eq(da, db, 1e-4);
    tensor_free(&a);
    tensor_free(&b);
}

// Llama-3 frequencies against the piecewise rule written out by hand.
Test(ops, llama3_inv_freq) {
    LlamaConfig c = {.head_dim = 16, .rope_theta = 10000.0f,
                     .rope_scaling = {ROPE_LLAMA3, 8.0f, 1.0f, 4.0f, 32}};
    float f[8];
    llama_rope_inv_freq(&c, f);
    int kept = 0, smoothed = 0, scaled = 0;
    for (int i = 0; i < 8; i++) {
        double base = pow(10000.0, -2.0 * i / 16.0), wl = 2 * M_PI / base, want;
        if (wl < 8.0) { want = base; kept++; }
        else if (wl > 32.0) { want = base / 8.0; scaled++; }
        else {
            double s = (32.0 / wl - 1.0) / 3.0;
            want = (1 - s) * base / 8.0 + s * base;
            smoothed++;
        }
        cr_expect_float_eq(f[i], (float)want, 1e-7 * (float)base + 1e-12, "freq %d", i);
    }
    cr_expect(kept > 0 && smoothed > 0 && scaled > 0, "kept %d smoothed %d scaled %d", kept, smoothed, scaled);
}

// Attention with GQA, a KV cache offset and left padding, against a naive loop.
Test(ops, attention_gqa_padding_cache) {
    int n_seq = 2, T = 3, n_past = 2, cap = 6, H = 4, KV = 2, hd = 4;
    Rng r;
    rng_seed(&r, 4);
    Tensor q = random_2d(&r, n_seq * T, H * hd), k = random_2d(&r, n_seq * cap, KV * hd),
           v = random_2d(&r, n_seq * cap, KV * hd), out = random_2d(&r, n_seq * T, H * hd);
    int32_t kmask[12] = {0, 0, 1, 1, 1, 0, /* seq 1: */ 1, 1, 1, 1, 1, 1};
    kmask[5] = 1;
    kmask[0] = kmask[1] = 0; // sequence 0 has two pads at the front
    AttentionShape s = {n_seq, T, n_past, cap, H, KV, hd};
    op_attention(&out, &q, &k, &v, kmask, &s, NULL);
    for (int b = 0; b < n_seq; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                int g = h / (H / KV);
                double sc[6], mx = -1e30, sum = 0;
                int n_vis = n_past + t + 1;
                for (int j = 0; j < n_vis; j++) {
                    if (!kmask[b * cap + j]) continue;
                    double d = 0;
                    for (int e = 0; e < hd; e++) d += at(&q, b * T + t, h * hd + e) * at(&k, b * cap + j, g * hd + e);
                    sc[j] = d / sqrt(hd);
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int j = 0; j < n_vis; j++) sum += kmask[b * cap + j] ? exp(sc[j] - mx) : 0;
                for (int e = 0; e < hd; e++) {
                    double o = 0;
                    for (int j = 0; j < n_vis; j++)
                        if (kmask[b * cap + j]) o += exp(sc[j] - mx) / sum * at(&v, b * cap + j, g * hd + e);
                    cr_expect_float_eq(at(&out, b * T + t, h * hd + e), (float)o, 1e-5, "b%d t%d h%d e%d", b, t, h, e);
                }
            }
    tensor_free(&q);
    tensor_free(&k);
    tensor_free(&v);
    tensor_free(&out);
}

Test(ops, attention_fully_masked_query_is_zero) {
    Rng r;
    rng_seed(&r, 5);
    Tensor q = random_2d(&r, 1, 4), k = random_2d(&r, 2, 4), v = random_2d(&r, 2, 4), out = random_2d(&r, 1, 4);
    int32_t kmask[2] = {0, 0};
    AttentionShape s = {1, 1, 1, 2, 1, 1, 4};
    op_attention(&out, &q, &k, &v, kmask, &s, NULL);
    for (int e = 0; e < 4; e++) cr_expect_eq(at(&out, 0, e), 0.0f);
    tensor_free(&q);
    tensor_free(&k);
    tensor_free(&v);
    tensor_free(&out);
}

Test(ops, half_conversions_round_trip) {
    for (uint32_t h = 0; h < 0x10000; h++) {
        uint16_t x = (uint16_t)h;
        float f = f16_to_f32(x);
        if (f != f) continue; // NaN payloads need not round-trip
        cr_assert_eq(f32_to_f16(f), x, "f16 0x%04x -> %g -> 0x%04x", h, f, f32_to_f16(f));
        float g = bf16_to_f32(x);
        if (g != g) continue;
        cr_assert_eq(f32_to_bf16(g), x, "bf16 0x%04x", h);
    }
    cr_expect_eq(f32_to_bf16(1.00390625f), 0x3f80); // tie rounds to even
    cr_expect_eq(f32_to_f16(65520.0f), 0x7c00);     // overflow to inf
}

Test(ops, tensor_copy_convert_strided) {
    Rng r;
    rng_seed(&r, 6);
    Tensor a = random_2d(&r, 4, 6), b;
    Tensor view = tensor_cols(&a, 1, 3);
    cr_assert_eq(tensor_alloc_2d(&b, DT_BF16, CPU, 4, 3), ST_OK);
    cr_assert_eq(tensor_copy_convert(&b, &view), ST_OK);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            cr_expect_eq(((uint16_t *)b.data)[i * 3 + j], f32_to_bf16(at(&a, i, j + 1)));
    tensor_free(&a);
    tensor_free(&b);
}
