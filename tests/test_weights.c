// Low-bit CPU weights (issue 13): bf16 and q8_0 matrices after
// llama_convert_weights, their kernels and their tolerances against fp32.
//  - q8_0 rows: every weight within half its block's scale, scales as tight
//    as an f16 allows, padding zero, out-of-range values refused;
//  - the decode kernels (and the prefill row widening) of every instruction set
//    the CPU has (scalar, AVX2, AVX-512) agree with the scalar reference on
//    strided views, k not a multiple of 32, odd n, beta = 0 and 1, within fp32
//    summation error; ELASTILM_CPU_ISA / cpu_lowbit_set_isa pick the set;
//  - op_matmul against the fp32 product of the original weights within the
//    format's rounding bound (below), decode (m <= 4) and prefill (f32 panels);
//    q8_0 decode against its integer emulation (1e-5);
//  - tiny models: logits against the f32 model (max |Δlogit| <= TOL x max|logit|,
//    same argmax wherever the f32 top-2 margin exceeds 2 max|Δ|); bf16 weights
//    give the f32 model of the rounded weights (1e-5), a level view gives a
//    physically pruned copy converted alike, LoRA applies on top;
//  - what needs f32 weights refuses them; the CLI flag, with --artifact --level.
//
// Matmul bounds, per output y = sum_p x_p w_p (S = sum_p |x_p w_p|):
//   bf16: |Δy| <= (2^-8 + 2^-16) S + k 2^-24 S: each weight rounded to nearest
//         (relative error <= 2^-8); 2^-16: x split into two bf16 parts on
//         AVX-512 BF16; the last term is fp32 summation.
//   q8_0: per block b of 32 with weight scale dw and activation scale dx:
//         |Δy| <= sum_b [dw/2 sum|x| + dx/2 sum|w| + 32 dw dx / 4] + k 2^-24 S
//         (weights and, in decode, activations each within half their scale;
//         prefill uses f32 activations, so only the first term applies there).
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elastic/artifact.h"
#include "elastic/elastic.h"
#include "models/llama.h"
#include "models/lora.h"
#include "ops/ops.h"
#include "ops/ops_cpu.h"
#include "runtime/q8.h"
#include "runtime/rng.h"
#include "test_util.h"
#include "train/llama_train.h"

static const Device CPU = {DEV_CPU, 0};
static const char *FIXTURES[] = {"tiny-llama-mha", "tiny-llama3-gqa", "tiny-smol-tied"};
// Whole tiny models (random weights, std 0.1), max |Δlogit| relative to max
// |logit|: measured <= 1.0e-2 (bf16) and <= 3.9e-2 (q8_0) on the AVX2 kernels.
#define TOL_BF16 2.5e-2f
#define TOL_Q8 1e-1f

static void fill_normal(Tensor *t, Rng *r, float scale) {
    for (int64_t i = 0; i < t->shape[0]; i++)
        for (int64_t j = 0; j < t->shape[1]; j++) tensor_row_f32(t, i)[j] = scale * rng_normal(r);
}

static Tensor random_f32(int64_t rows, int64_t cols, Rng *r, float scale) {
    Tensor t;
    cr_assert_eq(tensor_alloc_2d(&t, DT_F32, CPU, rows, cols), ST_OK);
    fill_normal(&t, r, scale);
    return t;
}

static Tensor converted(const Tensor *src, DType dt) {
    Tensor t;
    cr_assert_eq(tensor_alloc_2d(&t, dt, CPU, src->shape[0], src->shape[1]), ST_OK);
    cr_assert_eq(tensor_copy_convert(&t, src), ST_OK, "%s", status_message());
    return t;
}

// ---- q8_0 rows -----------------------------------------------------------

Test(weights, q8_rows_within_half_a_scale) {
    Rng rng;
    rng_seed(&rng, 3);
    const int ks[] = {1, 5, 31, 32, 33, 100, 577};
    const float scales[] = {1.0f, 1e-3f, 1e-6f, 3e4f}; // normal, subnormal and large f16 scales
    for (size_t a = 0; a < sizeof ks / sizeof *ks; a++)
        for (size_t s = 0; s < sizeof scales / sizeof *scales; s++) {
            int k = ks[a];
            float *x = malloc((size_t)k * sizeof *x), *back = malloc((size_t)k * sizeof *back);
            for (int i = 0; i < k; i++) x[i] = scales[s] * rng_normal(&rng);
            if (k > 3) x[2] = 0.0f;
            Q8Block *q = malloc((size_t)q8_blocks(k) * sizeof *q);
            cr_assert(q8_quantize_row(q, x, k));
            q8_dequantize_row(back, q, k);
            for (int64_t b = 0; b < q8_blocks(k); b++) {
                float amax = 0, d = q8_scale(&q[b]);
                for (int i = (int)b * 32; i < k && i < (b + 1) * 32; i++) amax = fmaxf(amax, fabsf(x[i]));
                cr_expect(d >= amax / 127.0f, "k %d block %lld: scale %g below max/127 %g", k, (long long)b, d,
                          amax / 127);
                if (amax / 127.0f >= 6.2e-5f) // normal f16: the next f16 up at most
                    cr_expect(d <= amax / 127.0f * (1.0f + 1.0f / 1024), "k %d block %lld: scale %g", k, (long long)b,
                              d);
                for (int t = 0; t < 32; t++) {
                    int i = (int)b * 32 + t;
                    cr_expect(q[b].qs[t] >= -127 && q[b].qs[t] <= 127);
                    if (i >= k) cr_expect_eq(q[b].qs[t], 0, "padding past k is zero");
                    else
                        cr_expect(fabsf(back[i] - x[i]) <= 0.5f * d * (1 + 1e-6f), "k %d value %d: %g vs %g (scale %g)",
                                  k, i, back[i], x[i], d);
                }
            }
            free(x), free(back), free(q);
        }
    float bad[3] = {1.0f, NAN, 2.0f}, huge[2] = {1.0f, 1e7f};
    Q8Block q[1];
    cr_expect(!q8_quantize_row(q, bad, 3), "a NaN has no scale");
    cr_expect(!q8_quantize_row(q, huge, 2), "127 x 65504 is the largest block maximum");
    // through tensors: a refused conversion is a status, not a crash
    Tensor f = tensor_wrap(huge, DT_F32, CPU, 2, (int64_t[]){1, 2}), t;
    cr_assert_eq(tensor_alloc_2d(&t, DT_Q8_0, CPU, 1, 2), ST_OK);
    cr_expect_eq(tensor_copy_convert(&t, &f), ST_UNSUPPORTED);
    cr_expect(strstr(status_message(), "q8_0") != NULL, "%s", status_message());
    tensor_free(&t);
}

// Row and column-prefix views of a q8_0 tensor address the right blocks.
Test(weights, q8_tensor_views) {
    Rng rng;
    rng_seed(&rng, 5);
    Tensor f = random_f32(7, 70, &rng, 1.0f), q = converted(&f, DT_Q8_0);
    cr_expect_eq(q.stride[0], 96, "rows are padded to whole blocks");
    Tensor v = tensor_rows(&q, 3, 4);
    v = tensor_cols(&v, 32, 38); // from the second block: values 32..69 of rows 3..6
    Tensor w;
    cr_assert_eq(tensor_alloc_2d(&w, DT_F32, CPU, 4, 38), ST_OK);
    cr_assert_eq(tensor_copy_convert(&w, &v), ST_OK);
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < 38; j++) {
            float a = tensor_row_f32(&w, r)[j], b = tensor_row_f32(&f, r + 3)[32 + j];
            cr_expect(fabsf(a - b) <= 0.5f * q8_scale((const Q8Block *)v.data + r * 3 + j / 32) * 1.000001f,
                      "row %d col %d: %g vs %g", r, j, a, b);
        }
    tensor_free(&w), tensor_free(&q), tensor_free(&f);
}

// ---- kernels ---------------------------------------------------------------

typedef struct {
    Tensor wp, xp, yp; // parents: weights (converted), activations, outputs
    Tensor w, x, y;    // the views the op sees
    Tensor wf;         // the view's weights widened back to f32 [n, k] (what the kernels multiply)
} Case;

// y [m, n] inside a parent [m, n + 4] whose other columns hold a sentinel;
// w a row and column prefix of a [n + 3, k + 40] parent; x a prefix of [m, k + 5].
static Case case_new(DType dt, int m, int n, int k, Rng *rng, const Tensor *orig) {
    Case c;
    Tensor wf32 = orig ? *orig : random_f32(n + 3, k + 40, rng, 0.1f);
    c.wp = converted(&wf32, dt);
    c.w = tensor_rows(&c.wp, 0, n);
    c.w = tensor_cols(&c.w, 0, k);
    cr_assert_eq(tensor_alloc_2d(&c.wf, DT_F32, CPU, n, k), ST_OK);
    cr_assert_eq(tensor_copy_convert(&c.wf, &c.w), ST_OK);
    if (!orig) tensor_free(&wf32);
    c.xp = random_f32(m, k + 5, rng, 1.0f);
    c.x = tensor_cols(&c.xp, 0, k);
    cr_assert_eq(tensor_alloc_2d(&c.yp, DT_F32, CPU, m, n + 4), ST_OK);
    c.y = tensor_cols(&c.yp, 0, n);
    return c;
}

static void case_free(Case *c) { tensor_free(&c->wp), tensor_free(&c->xp), tensor_free(&c->yp), tensor_free(&c->wf); }

// y before the op: y0 (beta = 1) or NaN (beta = 0 must not read it); 1234 beside the view.
static void case_reset(Case *c, const float *y0) {
    for (int64_t i = 0; i < c->yp.shape[0]; i++)
        for (int64_t j = 0; j < c->yp.shape[1]; j++)
            tensor_row_f32(&c->yp, i)[j] = j >= c->y.shape[1] ? 1234.0f : y0 ? y0[i * c->y.shape[1] + j] : NAN;
}

static void case_run(Case *c, float beta, float alpha) {
    if (beta == 0.0f) op_matmul(&c->y, &c->x, &c->w);
    else op_matmul_add(&c->y, &c->x, &c->w, alpha);
}

// sum_p |x_p w_p| for output (i, j), with the widened weights.
static double abs_dot(const Case *c, int64_t i, int64_t j, const Tensor *w) {
    double s = 0;
    for (int64_t p = 0; p < c->x.shape[1]; p++)
        s += fabs((double)tensor_row_f32(&c->x, i)[p] * tensor_row_f32(w, j)[p]);
    return s;
}

Test(weights, kernels_agree_with_the_scalar_reference) {
    ops_set_threads(2);
    Rng rng;
    rng_seed(&rng, 17);
    const int ks[] = {5, 31, 32, 64, 80, 100, 577}, ns[] = {1, 7, 33, 50};
    const DType dts[] = {DT_BF16, DT_Q8_0};
    int compared[3] = {0, 0, 0};
    for (int di = 0; di < 2; di++)
        for (size_t a = 0; a < sizeof ks / sizeof *ks; a++)
            for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
                for (int m = 1; m <= 5; m++) { // m = 5: prefill panels (the row widening is per ISA too)
                    int k = ks[a], n = ns[b];
                    Case c = case_new(dts[di], m, n, k, &rng, NULL);
                    float *y0 = malloc((size_t)(m * n) * sizeof *y0), *ref = malloc((size_t)(m * n) * sizeof *ref);
                    for (int i = 0; i < m * n; i++) y0[i] = rng_normal(&rng);
                    for (int beta = 0; beta <= 1; beta++) {
                        for (int isa = CPU_ISA_SCALAR; isa <= CPU_ISA_AVX512; isa++) {
                            if (!cpu_lowbit_isa_available((CpuIsa)isa, dts[di])) continue;
                            cpu_lowbit_set_isa((CpuIsa)isa);
                            cr_assert_eq(cpu_lowbit_isa(dts[di]), isa);
                            case_reset(&c, beta ? y0 : NULL);
                            case_run(&c, (float)beta, 0.75f);
                            for (int i = 0; i < m; i++)
                                for (int j = 0; j < n + 4; j++) {
                                    float got = tensor_row_f32(&c.yp, i)[j];
                                    if (j >= n) {
                                        cr_expect_eq(got, 1234.0f, "%s k %d n %d m %d: wrote beside the view",
                                                     cpu_isa_name(isa), k, n, m);
                                        continue;
                                    }
                                    if (isa == CPU_ISA_SCALAR) {
                                        ref[i * n + j] = got;
                                        continue;
                                    }
                                    // fp32 summation; AVX-512 BF16 also splits x into two bf16 parts (2^-16 |x|)
                                    double rel = 1e-5 + (isa == CPU_ISA_AVX512 && dts[di] == DT_BF16 ? 0x1p-16 : 0);
                                    double tol = rel * (abs_dot(&c, i, j, &c.wf) + fabs(y0[i * n + j]));
                                    cr_expect(fabs(got - ref[i * n + j]) <= tol,
                                              "%s %s k %d n %d m %d beta %d y[%d,%d]: %.8g vs scalar %.8g",
                                              cpu_isa_name(isa), dtype_name(dts[di]), k, n, m, beta, i, j, got,
                                              ref[i * n + j]);
                                }
                            compared[isa]++;
                        }
                    }
                    free(y0), free(ref);
                    case_free(&c);
                }
    cpu_lowbit_set_isa(CPU_ISA_AVX512);
    cr_log_info("kernel cases: scalar %d, avx2 %d, avx512 %d (only what this CPU has runs)", compared[0], compared[1],
                compared[2]);
    cr_expect_gt(compared[0], 0);
}

// The bound of the header for output (i, j) of c (orig: the unrounded f32 weights [n, k]).
static double rounding_bound(const Case *c, DType dt, const Tensor *orig, int64_t i, int64_t j, bool quantized_x) {
    int64_t k = c->x.shape[1];
    double S = abs_dot(c, i, j, orig), sum = k * 0x1p-24 * S;
    if (dt == DT_BF16) return sum + (0x1p-8 + 0x1p-16) * S;
    const float *x = tensor_row_f32(&c->x, i), *w = tensor_row_f32(orig, j);
    const Q8Block *wq = (const Q8Block *)c->w.data + j * (c->w.stride[0] / 32);
    for (int64_t b = 0; b < q8_blocks(k); b++) {
        double ax = 0, aw = 0, xmax = 0;
        for (int64_t p = b * 32; p < k && p < (b + 1) * 32; p++) {
            ax += fabs(x[p]), aw += fabs(w[p]);
            xmax = fmax(xmax, fabs(x[p]));
        }
        double dw = q8_scale(&wq[b]), dx = quantized_x ? xmax / 127 * (1 + 1e-6) : 0;
        sum += dw / 2 * ax + dx / 2 * aw + 32 * dw * dx / 4;
    }
    return sum;
}

// Decode on q8_0 weights, emulated from its definition (lowbit.h): activation
// blocks scaled by max|x| / 127 and rounded to nearest even, integer block sums
// times the two scales; fp32 accumulation is all that may differ.
static double q8_decode_emulated(const Case *c, int64_t i, int64_t j, double *abs_sum) {
    int64_t k = c->x.shape[1];
    const float *x = tensor_row_f32(&c->x, i);
    const Q8Block *wq = (const Q8Block *)c->w.data + j * (c->w.stride[0] / 32);
    double y = 0;
    *abs_sum = 0;
    for (int64_t b = 0; b < q8_blocks(k); b++) {
        float amax = 0;
        for (int64_t p = b * 32; p < k && p < (b + 1) * 32; p++) amax = fmaxf(amax, fabsf(x[p]));
        float inv = amax > 0 ? 127.0f / amax : 0.0f, dx = amax / 127.0f, dw = q8_scale(&wq[b]);
        int32_t s = 0, sa = 0;
        for (int64_t p = b * 32; p < k && p < (b + 1) * 32; p++) {
            int q = (int)nearbyintf(x[p] * inv);
            s += q * wq[b].qs[p - b * 32];
            sa += abs(q * wq[b].qs[p - b * 32]);
        }
        y += (double)s * (double)(dw * dx);
        *abs_sum += (double)sa * (double)(dw * dx);
    }
    return y;
}

// op_matmul / op_matmul_add on bf16 and q8_0 views against the fp32 product of
// the original weights: decode (m <= 4, every kernel) and prefill (panels);
// q8_0 decode also against its emulation (1e-5 of the sum of |terms|).
Test(weights, matmul_within_the_rounding_bound) {
    ops_set_threads(2);
    Rng rng;
    rng_seed(&rng, 29);
    const int shapes[][2] = {{33, 100}, {64, 577}, {130, 80}, {7, 45}};
    const int ms[] = {1, 3, 4, 9, 40};
    const DType dts[] = {DT_BF16, DT_Q8_0};
    for (int di = 0; di < 2; di++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            for (size_t a = 0; a < sizeof ms / sizeof *ms; a++) {
                int n = shapes[s][0], k = shapes[s][1], m = ms[a];
                Tensor orig = random_f32(n + 3, k + 40, &rng, 0.05f);
                Case c = case_new(dts[di], m, n, k, &rng, &orig);
                Tensor ov = tensor_rows(&orig, 0, n);
                ov = tensor_cols(&ov, 0, k);
                float *y0 = calloc((size_t)(m * n), sizeof *y0);
                for (int i = 0; i < m * n; i++) y0[i] = rng_normal(&rng);
                for (int beta = 0; beta <= 1; beta++) {
                    case_reset(&c, beta ? y0 : NULL);
                    case_run(&c, (float)beta, 1.0f);
                    double worst = 0;
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++) {
                            double ref = beta ? y0[i * n + j] : 0;
                            for (int p = 0; p < k; p++)
                                ref += (double)tensor_row_f32(&c.x, i)[p] * tensor_row_f32(&ov, j)[p];
                            if (dts[di] == DT_Q8_0 && m <= 4) {
                                double abs_sum,
                                    emu = (beta ? y0[i * n + j] : 0) + q8_decode_emulated(&c, i, j, &abs_sum);
                                cr_expect(fabs(tensor_row_f32(&c.y, i)[j] - emu) <= 1e-5 * (abs_sum + fabs(emu)),
                                          "q8 decode m %d n %d k %d y[%d,%d]: %.8g vs emulated %.8g", m, n, k, i, j,
                                          tensor_row_f32(&c.y, i)[j], emu);
                            }
                            double err = fabs(tensor_row_f32(&c.y, i)[j] - ref);
                            double bound = rounding_bound(&c, dts[di], &ov, i, j, m <= 4) + 1e-7 * fabs(ref);
                            cr_expect(err <= bound, "%s m %d n %d k %d beta %d y[%d,%d]: error %.3g > bound %.3g",
                                      dtype_name(dts[di]), m, n, k, beta, i, j, err, bound);
                            worst = fmax(worst, err);
                        }
                    cr_expect_gt(worst, 0.0, "%s: the weights were rounded, the product must differ",
                                 dtype_name(dts[di]));
                }
                free(y0);
                case_free(&c);
                tensor_free(&orig);
            }
}

Test(weights, embedding_widens_rows) {
    Rng rng;
    rng_seed(&rng, 31);
    Tensor f = random_f32(20, 70, &rng, 0.3f), out;
    cr_assert_eq(tensor_alloc_2d(&out, DT_F32, CPU, 4, 70), ST_OK);
    const int32_t ids[4] = {19, 0, 7, 7};
    for (int di = 0; di < 2; di++) {
        Tensor t = converted(&f, di ? DT_Q8_0 : DT_BF16), wide;
        cr_assert_eq(tensor_alloc_2d(&wide, DT_F32, CPU, 20, 70), ST_OK);
        cr_assert_eq(tensor_copy_convert(&wide, &t), ST_OK);
        op_embedding(&out, &t, ids);
        for (int i = 0; i < 4; i++)
            cr_expect(memcmp(tensor_row_f32(&out, i), tensor_row_f32(&wide, ids[i]), 70 * sizeof(float)) == 0,
                      "%s row %d", dtype_name(t.dtype), i);
        cr_expect_gt(tu_max_abs_diff(tensor_row_f32(&out, 0), tensor_row_f32(&f, 19), 70), 0.0f);
        tensor_free(&t), tensor_free(&wide);
    }
    tensor_free(&out), tensor_free(&f);
}

// ---- tiny models -----------------------------------------------------------

typedef struct {
    float *logits; // [rows, V]
    int rows, V;
} Logits;

// The logits the comparisons use: case0 and case1 of the fixture's golden file
// (prefill, every real position; case1 is a left-padded batch of 3), then a
// batch of 2 prompts decoded token by token (teacher-forced, m = 2: the decode kernels).
static Logits collect_logits(const LlamaModel *m, const LlamaView *view, const char *fixture) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s/golden.safetensors", fixture);
    SafetensorsFile g;
    tu_open_safetensors(&g, path);
    int V = m->cfg.vocab_size;
    Logits out = {malloc((size_t)(12 + 30 + 2 * 9) * V * sizeof(float)), 0, V};
    for (int cs = 0; cs < 2; cs++) {
        char key[64];
        snprintf(key, sizeof key, "case%d.input_ids", cs);
        const SafeTensor *ids = tu_tensor(&g, key, DT_I32);
        snprintf(key, sizeof key, "case%d.attention_mask", cs);
        const int32_t *mask = (const int32_t *)tu_tensor(&g, key, DT_I32)->data;
        int n_seq = (int)ids->shape[0], T = (int)ids->shape[1];
        LlamaSession s;
        Tensor lg;
        cr_assert_eq(llama_session_init(&s, m, n_seq, T, CPU), ST_OK, "%s", status_message());
        cr_assert_eq(llama_session_set_view(&s, m, view), ST_OK, "%s", status_message());
        cr_assert_eq(tensor_alloc_2d(&lg, DT_F32, CPU, (int64_t)n_seq * T, V), ST_OK);
        cr_assert_eq(llama_forward(m, &s, (const int32_t *)ids->data, mask, T, LOGITS_ALL, &lg), ST_OK);
        for (int r = 0; r < n_seq * T; r++)
            if (mask[r]) memcpy(out.logits + (size_t)out.rows++ * V, tensor_row_f32(&lg, r), (size_t)V * sizeof(float));
        tensor_free(&lg);
        llama_session_free(&s);
    }
    const int32_t *c0 = (const int32_t *)tu_tensor(&g, "case0.input_ids", DT_I32)->data;
    const int32_t *gen = (const int32_t *)tu_tensor(&g, "gen.input_ids", DT_I32)->data;
    int32_t prompt[2 * 4] = {gen[0], gen[1], gen[2], gen[3], c0[0], c0[1], c0[2], c0[3]};
    LlamaSession s;
    Tensor lg;
    cr_assert_eq(llama_session_init(&s, m, 2, 12, CPU), ST_OK);
    cr_assert_eq(llama_session_set_view(&s, m, view), ST_OK);
    cr_assert_eq(tensor_alloc_2d(&lg, DT_F32, CPU, 2, V), ST_OK);
    cr_assert_eq(llama_forward(m, &s, prompt, NULL, 4, LOGITS_LAST, &lg), ST_OK);
    for (int step = 0; step < 8; step++) {
        memcpy(out.logits + (size_t)out.rows * V, lg.data, 2 * (size_t)V * sizeof(float));
        out.rows += 2;
        int32_t next[2] = {c0[4 + step], gen[(step + 4) % 6]};
        cr_assert_eq(llama_forward(m, &s, next, NULL, 1, LOGITS_LAST, &lg), ST_OK);
    }
    memcpy(out.logits + (size_t)out.rows * V, lg.data, 2 * (size_t)V * sizeof(float));
    out.rows += 2;
    tensor_free(&lg);
    llama_session_free(&s);
    safetensors_close(&g);
    return out;
}

typedef struct {
    float max_diff, scale; // max |Δ|, max |ref|
    int checked, same;     // positions with a clear f32 argmax, and those where both agree
    int all_same;          // positions (clear or not) where both agree
} Agreement;

static int argmax(const float *row, int V) {
    int best = 0;
    for (int j = 1; j < V; j++)
        if (row[j] > row[best]) best = j;
    return best;
}

static Agreement compare(const Logits *ref, const Logits *got) {
    cr_assert_eq(ref->rows, got->rows);
    int V = ref->V;
    size_t n = (size_t)ref->rows * V;
    Agreement a = {tu_max_abs_diff(ref->logits, got->logits, n), tu_max_abs(ref->logits, n), 0, 0, 0};
    for (int r = 0; r < ref->rows; r++) {
        const float *row = ref->logits + (size_t)r * V;
        int best = argmax(row, V);
        a.all_same += argmax(got->logits + (size_t)r * V, V) == best;
        float second = -INFINITY;
        for (int j = 0; j < V; j++)
            if (j != best && row[j] > second) second = row[j];
        if (row[best] - second <= 2 * a.max_diff) continue; // too close to call at this precision
        a.checked++;
        a.same += argmax(got->logits + (size_t)r * V, V) == best;
    }
    return a;
}

static void load_as(LlamaModel *m, const char *fixture, DType dt) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s", fixture);
    cr_assert_eq(llama_load(m, path), ST_OK, "%s", status_message());
    cr_assert_eq(llama_convert_weights(m, dt), ST_OK, "%s", status_message());
    cr_assert_eq(llama_weights_dtype(m), dt);
}

Test(weights, tiny_models_against_f32) {
    ops_set_threads(2);
    for (size_t f = 0; f < sizeof FIXTURES / sizeof *FIXTURES; f++) {
        LlamaModel ref;
        load_as(&ref, FIXTURES[f], DT_F32);
        Logits lr = collect_logits(&ref, NULL, FIXTURES[f]);
        for (int di = 0; di < 2; di++) {
            DType dt = di ? DT_Q8_0 : DT_BF16;
            float tol = di ? TOL_Q8 : TOL_BF16;
            LlamaModel m;
            load_as(&m, FIXTURES[f], dt);
            Logits lg = collect_logits(&m, NULL, FIXTURES[f]);
            Agreement a = compare(&lr, &lg);
            cr_log_info("%s %s: max |dlogit| %.4g (%.3g of max |logit| %.3g), argmax %d/%d clear positions, %d/%d all",
                        FIXTURES[f], llama_weights_name(dt), a.max_diff, a.max_diff / a.scale, a.scale, a.same,
                        a.checked, a.all_same, lr.rows);
            cr_expect_leq(a.max_diff, tol * a.scale, "%s %s: max |dlogit| %g > %g x %g", FIXTURES[f],
                          llama_weights_name(dt), a.max_diff, tol, a.scale);
            cr_expect_gt(a.max_diff, 0.0f, "%s %s: the weights were rounded", FIXTURES[f], llama_weights_name(dt));
            cr_expect_eq(a.same, a.checked, "%s %s: argmax differs at %d of %d clear positions", FIXTURES[f],
                         llama_weights_name(dt), a.checked - a.same, a.checked);
            cr_expect_geq(a.checked, 10, "%s: too few clear positions (%d of %d)", FIXTURES[f], a.checked, lr.rows);
            free(lg.logits);
            llama_free(&m);
        }
        free(lr.logits);
        llama_free(&ref);
    }
}

// An f32 model whose matrices hold the values of dt (rounded, then widened back).
static void round_trip(LlamaModel *m, DType dt) {
    Tensor *ts[2 + 7 * 8];
    int n = 0;
    ts[n++] = &m->tok_embd;
    if (!m->cfg.tie_embeddings) ts[n++] = &m->lm_head;
    cr_assert_leq(m->cfg.n_layers, 8);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        LlamaLayer *ly = &m->layers[l];
        Tensor *w[] = {&ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->w_gate, &ly->w_up, &ly->w_down};
        for (int i = 0; i < 7; i++) ts[n++] = w[i];
    }
    for (int i = 0; i < n; i++) {
        Tensor low = converted(ts[i], dt), back = converted(&low, DT_F32);
        tensor_free(&low);
        tensor_free(ts[i]);
        *ts[i] = back;
    }
    if (m->cfg.tie_embeddings) m->lm_head = m->tok_embd, m->lm_head.owns = false;
}

// The low-bit paths compute the f32 model of the rounded weights: exactly so
// for bf16 (prefill and decode), and for q8_0 in prefill (f32 panels); q8_0
// decode also quantises the activations, and stays within TOL_Q8 of it.
Test(weights, lowbit_equals_f32_of_the_rounded_weights) {
    ops_set_threads(2);
    for (size_t f = 0; f < sizeof FIXTURES / sizeof *FIXTURES; f++)
        for (int di = 0; di < 2; di++) {
            DType dt = di ? DT_Q8_0 : DT_BF16;
            LlamaModel r, m;
            load_as(&r, FIXTURES[f], DT_F32);
            round_trip(&r, dt);
            load_as(&m, FIXTURES[f], dt);
            Logits lr = collect_logits(&r, NULL, FIXTURES[f]), lg = collect_logits(&m, NULL, FIXTURES[f]);
            // 1e-5 (fp32 summation), 1e-4 for bf16 on AVX-512 BF16 (activations split into bf16 parts, 2^-16)
            float exact = !di && cpu_lowbit_isa(DT_BF16) == CPU_ISA_AVX512 ? 1e-4f : 1e-5f;
            int prefill_rows = lr.rows - 18; // the last 18 rows come from the decode steps
            size_t np = (size_t)prefill_rows * lr.V, nd = (size_t)18 * lr.V;
            float scale = tu_max_abs(lr.logits, np + nd);
            float dp = tu_max_abs_diff(lr.logits, lg.logits, np),
                  dd = tu_max_abs_diff(lr.logits + np, lg.logits + np, nd);
            cr_expect_leq(dp, 1e-5f * scale, "%s %s prefill vs the f32 model of its weights: %g (scale %g)",
                          FIXTURES[f], llama_weights_name(dt), dp, scale);
            cr_expect_leq(dd, (di ? TOL_Q8 : exact) * scale, "%s %s decode: %g (scale %g)", FIXTURES[f],
                          llama_weights_name(dt), dd, scale);
            if (di) cr_expect_gt(dd, 1e-5f * scale, "q8 decode quantises the activations too");
            free(lr.logits), free(lg.logits);
            llama_free(&r), llama_free(&m);
        }
}

// rows [0, r) of src and, of those, columns [0, c)
static Tensor copy_prefix(const Tensor *src, int64_t rows, int64_t cols) {
    Tensor t;
    cr_assert_eq(tensor_alloc_2d(&t, DT_F32, CPU, rows, cols), ST_OK);
    for (int64_t r = 0; r < rows; r++) memcpy(tensor_row_f32(&t, r), tensor_row_f32(src, r), (size_t)cols * 4);
    return t;
}

// A level view (row prefixes of q/k/v/gate/up, column prefixes of o/down that
// end inside q8 blocks) on converted weights gives what a physically pruned
// copy converted the same way gives: 1e-5 for bf16 (the same rounded values),
// TOL_Q8 for q8_0 (a cut block keeps the whole block's scale in the view).
// With LoRA adapters (f32) on top, the view stays within the format's
// tolerance of the f32 view with the same adapters, and the adapters count.
Test(weights, level_view_matches_pruned_copy) {
    ops_set_threads(2);
    const char *fx = "tiny-llama-mha"; // hidden 80, head_dim 20, ffn 192: prefixes cut blocks
    for (int di = 0; di < 2; di++) {
        DType dt = di ? DT_Q8_0 : DT_BF16;
        LlamaModel m, p;
        load_as(&m, fx, DT_F32);
        load_as(&p, fx, DT_F32);
        const LlamaConfig *c = &m.cfg;
        int kv = 1, ffn = 100, hd = c->head_dim;
        LlamaWidth w[2] = {{kv, ffn}, {c->n_kv_heads, c->ffn_dim - 45}};
        cr_assert_eq(c->n_layers, 2);
        for (int l = 0; l < c->n_layers; l++) {
            LlamaLayer *d = &p.layers[l];
            int64_t qd = (int64_t)w[l].n_kv * hd * (c->n_heads / c->n_kv_heads), kvd = (int64_t)w[l].n_kv * hd;
            Tensor nw[7] = {copy_prefix(&d->wq, qd, c->dim),           copy_prefix(&d->wk, kvd, c->dim),
                            copy_prefix(&d->wv, kvd, c->dim),          copy_prefix(&d->wo, c->dim, qd),
                            copy_prefix(&d->w_gate, w[l].ffn, c->dim), copy_prefix(&d->w_up, w[l].ffn, c->dim),
                            copy_prefix(&d->w_down, c->dim, w[l].ffn)};
            Tensor *old[7] = {&d->wq, &d->wk, &d->wv, &d->wo, &d->w_gate, &d->w_up, &d->w_down};
            for (int i = 0; i < 7; i++) tensor_free(old[i]), *old[i] = nw[i];
        }
        // p's matrices have exactly the view's shapes: the same view selects all of them
        LlamaView v = {.widths = w};
        cr_assert_eq(llama_convert_weights(&m, dt), ST_OK);
        cr_assert_eq(llama_convert_weights(&p, dt), ST_OK);
        Logits lv = collect_logits(&m, &v, fx), lp = collect_logits(&p, &v, fx);
        size_t n = (size_t)lp.rows * lp.V;
        float scale = tu_max_abs(lp.logits, n), d = tu_max_abs_diff(lv.logits, lp.logits, n);
        cr_log_info("level view vs pruned copy, %s: %.3g (scale %.3g)", llama_weights_name(dt), d, scale);
        cr_expect_leq(d, (di ? TOL_Q8 : 1e-5f) * scale, "%s view vs pruned copy: %g (scale %g)", llama_weights_name(dt),
                      d, scale);
        // with adapters: against the f32 view with the same adapters
        LlamaModel f32v;
        load_as(&f32v, fx, DT_F32);
        LoraSet set;
        LoraConfig lc = {.rank = 4, .alpha = 8, .targets = (1u << LORA_N_TARGETS) - 1};
        cr_assert_eq(lora_init(&set, c, w, &lc, 3), ST_OK);
        Rng rng;
        rng_seed(&rng, 8);
        for (int l = 0; l < c->n_layers; l++)
            for (int t = 0; t < LORA_N_TARGETS; t++) {
                LoraAdapter *ad = lora_adapter(&set, l, t);
                for (int64_t i = 0; i < tensor_numel(&ad->B); i++) ((float *)ad->B.data)[i] = 0.05f * rng_normal(&rng);
            }
        LlamaView vl = {.widths = w, .lora = &set};
        Logits lf = collect_logits(&f32v, &vl, fx), ll = collect_logits(&m, &vl, fx);
        float sl = tu_max_abs(lf.logits, n), dl = tu_max_abs_diff(lf.logits, ll.logits, n);
        float moved = tu_max_abs_diff(ll.logits, lv.logits, n);
        cr_expect_leq(dl, (di ? TOL_Q8 : TOL_BF16) * sl, "%s view + LoRA vs f32 view + LoRA: %g (scale %g)",
                      llama_weights_name(dt), dl, sl);
        cr_expect_gt(moved, 4 * dl, "%s: the adapters change the logits (%g) more than the rounding (%g)",
                     llama_weights_name(dt), moved, dl);
        free(lv.logits), free(lp.logits), free(lf.logits), free(ll.logits);
        lora_free(&set);
        llama_free(&m), llama_free(&p), llama_free(&f32v);
    }
}

// What reads or rewrites f32 weights refuses converted ones with a status.
Test(weights, f32_only_paths_refuse_lowbit) {
    LlamaModel m;
    load_as(&m, "tiny-elastic-gqa", DT_Q8_0);
    LlamaTrain t;
    cr_expect_eq(llama_train_init(&t, &m, NULL, NULL, NULL, 16), ST_UNSUPPORTED);
    cr_expect(strstr(status_message(), "f32 weights") && strstr(status_message(), "q8"), "%s", status_message());
    Permutation p;
    uint8_t anchor[6] = {1, 0, 0, 0, 0, 1};
    cr_assert_eq(permutation_random(6, m.cfg.n_kv_heads, m.cfg.ffn_dim, anchor, 1, &p), ST_OK);
    cr_expect_eq(permutation_apply(&m, &p), ST_UNSUPPORTED);
    cr_expect(strstr(status_message(), "f32 weights") != NULL, "%s", status_message());
    cr_expect_eq(llama_export_hf(&m, "/tmp/elastilm-never-written"), ST_UNSUPPORTED);
    cr_expect_eq(llama_to_device(&m, (Device){DEV_CUDA, 0}, DT_BF16), ST_UNSUPPORTED);
    cr_expect_eq(llama_convert_weights(&m, DT_BF16), ST_UNSUPPORTED, "q8 weights are not converted again");
    cr_expect_eq(llama_convert_weights(&m, DT_Q8_0), ST_OK, "already q8: nothing to do");
    cr_expect_eq(llama_convert_weights(&m, DT_F16), ST_USAGE);
    permutation_free(&p);
    llama_free(&m);
    DType dt;
    cr_expect_eq(llama_weights_parse("q4", &dt), ST_USAGE);
    cr_expect(llama_weights_parse("bf16", &dt) == ST_OK && dt == DT_BF16);
}

// Memory: q8_0 takes 34/32 bytes per value, bf16 2, f32 4 (norms f32 in each).
Test(weights, memory_per_format) {
    LlamaModel m[3];
    const DType dts[] = {DT_F32, DT_BF16, DT_Q8_0};
    for (int i = 0; i < 3; i++) load_as(&m[i], "tiny-smol-tied", dts[i]);
    const LlamaConfig *c = &m[0].cfg;
    size_t norms = (size_t)(2 * c->n_layers + 1) * c->dim * 4, values = (size_t)llama_param_count(&m[0]) - norms / 4;
    cr_expect_eq(llama_weights_bytes(&m[0]), values * 4 + norms);
    cr_expect_eq(llama_weights_bytes(&m[1]), values * 2 + norms);
    // hidden 96 = 3 blocks, ffn 160 = 5 blocks, head rows: every row a whole number of blocks
    cr_expect_eq(llama_weights_bytes(&m[2]), values / 32 * 34 + norms);
    for (int i = 0; i < 3; i++) llama_free(&m[i]);
}

// ---- the command line ------------------------------------------------------

static float *read_logits(const char *path, size_t *n) {
    size_t len;
    float *p = (float *)tu_read_file(path, &len);
    *n = len / sizeof(float);
    return p;
}

Test(weights, cli_weights_flag) {
    char dir[64], cmd[1024], out[4096], path[3][128];
    tu_make_temp_dir(dir, sizeof dir, "weights");
    const char *ids = "1 5 9 200 17 33 4 8 77 3; 9 12 250 7";
    const char *names[] = {"f32", "bf16", "q8"};
    for (int i = 0; i < 3; i++) {
        snprintf(path[i], sizeof path[i], "%s/%s.f32", dir, names[i]);
        snprintf(cmd, sizeof cmd,
                 "%s forward --model tests/fixtures/tiny-llama3-gqa --device cpu --weights %s --ids '%s' --out %s",
                 tu_bin(), names[i], ids, path[i]);
        cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
        if (i) cr_expect(strstr(out, "weights: ") && strstr(out, names[i]), "an info line names the format: %s", out);
    }
    size_t n, n2;
    float *ref = read_logits(path[0], &n), scale = tu_max_abs(ref, n);
    for (int i = 1; i < 3; i++) {
        float *got = read_logits(path[i], &n2);
        cr_assert_eq(n2, n);
        float d = tu_max_abs_diff(ref, got, n), tol = i == 1 ? TOL_BF16 : TOL_Q8;
        cr_expect_leq(d, tol * scale, "forward --weights %s: max |dlogit| %g (scale %g)", names[i], d, scale);
        cr_expect_gt(d, 0.0f, "--weights %s changed nothing", names[i]);
        free(got);
    }
    free(ref);
    snprintf(cmd, sizeof cmd,
             "%s generate --model tests/fixtures/tiny-llama3-gqa --device cpu --weights q8 --ids '1 2 3' --steps 4",
             tu_bin());
    cr_expect_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    // usage errors name the flag (exit 2)
    snprintf(cmd, sizeof cmd, "%s forward --model tests/fixtures/tiny-llama3-gqa --weights q4 --ids '1 2'", tu_bin());
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "--weights") && strstr(out, "q4"), "%s", out);
    snprintf(cmd, sizeof cmd,
             "%s forward --model tests/fixtures/tiny-llama3-gqa --weights bf16 --device cuda --ids '1 2'", tu_bin());
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "--weights bf16 is for the CPU") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s lora --model tests/fixtures/tiny-llama3-gqa --weights bf16 --data x.txt --out %s/l",
             tu_bin(), dir);
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "--weights bf16") && strstr(out, "f32"), "%s", out);
    snprintf(cmd, sizeof cmd, "%s anchors --model tests/fixtures/tiny-llama3-gqa --weights q8 --calib x.txt", tu_bin());
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "--weights q8") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s ppl --model tests/fixtures/tiny-llama3-gqa --weights q8 --path train --data x.txt",
             tu_bin());
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "--weights q8") != NULL, "%s", out);
    tu_remove_dir(dir);
}

// --artifact reorders the f32 weights, then --weights converts them; a level
// runs as prefix views of the converted matrices (ffn 48 of 96 cuts a q8 block).
Test(weights, cli_artifact_level_with_lowbit_weights) {
    const char *fx = "tests/fixtures/tiny-elastic-gqa";
    LlamaModel m;
    cr_assert_eq(llama_load(&m, fx), ST_OK, "%s", status_message());
    Artifact a;
    memset(&a, 0, sizeof a);
    snprintf(a.model, sizeof a.model, "tiny");
    snprintf(a.calib, sizeof a.calib, "none");
    snprintf(a.order, sizeof a.order, "random");
    a.samples = 1, a.seq = 2, a.seed = 1, a.base_loss = 1.0;
    a.anchor = calloc(6, 1);
    a.anchor[0] = a.anchor[5] = 1;
    cr_assert_eq(permutation_random(6, m.cfg.n_kv_heads, m.cfg.ffn_dim, a.anchor, 4, &a.perm), ST_OK);
    a.n_levels = levels_default(a.levels, ARTIFACT_MAX_LEVELS);
    char dir[64], art[128], cmd[1024], out[4096], path[4][160];
    tu_make_temp_dir(dir, sizeof dir, "weights-art");
    snprintf(art, sizeof art, "%s/a.h5", dir);
    cr_assert_eq(artifact_write(art, &m.cfg, &a), ST_OK, "%s", status_message());
    artifact_free(&a);
    llama_free(&m);
    const char *runs[4][2] = {{"f32", "--artifact"}, {"bf16", "--artifact"}, {"q8", "--artifact"}, {"q8", NULL}};
    for (int i = 0; i < 4; i++) {
        char extra[300] = "";
        if (runs[i][1]) snprintf(extra, sizeof extra, "--artifact %s --level 0.5", art);
        snprintf(path[i], sizeof path[i], "%s/%d.f32", dir, i);
        snprintf(cmd, sizeof cmd,
                 "%s forward --model %s --device cpu --weights %s %s --ids '3 1 4 1 5 9 2 6; 7 7 8' --out %s --quiet",
                 tu_bin(), fx, runs[i][0], extra, path[i]);
        cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    }
    size_t n, n2;
    float *ref = read_logits(path[0], &n), scale = tu_max_abs(ref, n);
    for (int i = 1; i < 4; i++) {
        float *got = read_logits(path[i], &n2);
        cr_assert_eq(n2, n);
        float d = tu_max_abs_diff(ref, got, n);
        cr_log_info("%s %s: max |dlogit| %.3g against level 0.5 in f32 (scale %.3g)", runs[i][0],
                    runs[i][1] ? "level 0.5" : "full model", d, scale);
        if (i < 3)
            cr_expect_leq(d, (i == 1 ? TOL_BF16 : TOL_Q8) * scale, "level 0.5 --weights %s vs f32: %g (scale %g)",
                          runs[i][0], d, scale);
        else cr_expect_gt(d, TOL_Q8 * scale, "the level must differ from the full model (%g)", d);
        free(got);
    }
    free(ref);
    tu_remove_dir(dir);
}
