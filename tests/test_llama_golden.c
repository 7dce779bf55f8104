// Golden parity with Hugging Face transformers on tiny random LLaMA models.
// The fixtures and their golden.safetensors come from
// tests/reference/make_fixtures.py (transformers, fp32, eager attention).
// Tolerance: max |Δlogit| <= 1e-4 in fp32 (logits have std ~1; summation
// order differs between OpenBLAS and PyTorch, nothing else should).
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/llama.h"
#include "ops/ops.h"
#include "test_util.h"

#define TOL 1e-4f
static const Device CPU = {DEV_CPU, 0};

typedef struct {
    LlamaModel m;
    SafetensorsFile golden;
} Fixture;

static void fixture_open(Fixture *f, const char *model_path, const char *golden_dir) {
    ops_set_threads(2);
    Status st = llama_load(&f->m, model_path);
    cr_assert_eq(st, ST_OK, "%s", status_message());
    char path[512];
    snprintf(path, sizeof path, "%s/golden.safetensors", golden_dir);
    tu_open_safetensors(&f->golden, path);
}

static void fixture_close(Fixture *f) {
    llama_free(&f->m);
    safetensors_close(&f->golden);
}

// Runs case<k>, comparing the logits at the real (mask = 1) positions.
static float case_max_diff(Fixture *f, const char *name) {
    char key[64];
    snprintf(key, sizeof key, "%s.input_ids", name);
    const SafeTensor *ids = tu_tensor(&f->golden, key, DT_I32);
    snprintf(key, sizeof key, "%s.attention_mask", name);
    const int32_t *mask = (const int32_t *)tu_tensor(&f->golden, key, DT_I32)->data;
    snprintf(key, sizeof key, "%s.logits", name);
    const float *want = (const float *)tu_tensor(&f->golden, key, DT_F32)->data;
    int n_seq = (int)ids->shape[0], T = (int)ids->shape[1], V = f->m.cfg.vocab_size;
    LlamaSession s;
    cr_assert_eq(llama_session_init(&s, &f->m, n_seq, T, CPU), ST_OK, "%s", status_message());
    Tensor logits;
    cr_assert_eq(tensor_alloc_2d(&logits, DT_F32, CPU, (int64_t)n_seq * T, V), ST_OK);
    Status st = llama_forward(&f->m, &s, (const int32_t *)ids->data, mask, T, LOGITS_ALL, &logits);
    cr_assert_eq(st, ST_OK, "%s", status_message());
    float worst = 0.0f;
    for (int r = 0; r < n_seq * T; r++) {
        if (!mask[r]) continue;
        float d = tu_max_abs_diff(tensor_row_f32(&logits, r), want + (size_t)r * V, (size_t)V);
        if (!(d <= worst)) worst = d;
    }
    tensor_free(&logits);
    llama_session_free(&s);
    return worst;
}

// Prefill of the first half of case0, then one token at a time through the cache.
static float incremental_max_diff(Fixture *f) {
    const SafeTensor *ids_t = tu_tensor(&f->golden, "case0.input_ids", DT_I32);
    const int32_t *ids = (const int32_t *)ids_t->data;
    const float *want = (const float *)tu_tensor(&f->golden, "case0.logits", DT_F32)->data;
    int T = (int)ids_t->shape[1], V = f->m.cfg.vocab_size, split = T / 2;
    LlamaSession s;
    cr_assert_eq(llama_session_init(&s, &f->m, 1, T, CPU), ST_OK);
    Tensor logits;
    cr_assert_eq(tensor_alloc_2d(&logits, DT_F32, CPU, split, V), ST_OK);
    cr_assert_eq(llama_forward(&f->m, &s, ids, NULL, split, LOGITS_ALL, &logits), ST_OK, "%s", status_message());
    float worst = tu_max_abs_diff(logits.data, want, (size_t)split * V);
    Tensor one = tensor_rows(&logits, 0, 1);
    for (int t = split; t < T; t++) {
        cr_assert_eq(llama_forward(&f->m, &s, ids + t, NULL, 1, LOGITS_LAST, &one), ST_OK, "%s", status_message());
        float d = tu_max_abs_diff(one.data, want + (size_t)t * V, (size_t)V);
        if (!(d <= worst)) worst = d;
    }
    tensor_free(&logits);
    llama_session_free(&s);
    return worst;
}

static float logprob_max_diff(Fixture *f) {
    const SafeTensor *ids_t = tu_tensor(&f->golden, "case0.input_ids", DT_I32);
    const float *logits_want = (const float *)tu_tensor(&f->golden, "case0.logits", DT_F32)->data;
    const float *lp_want = (const float *)tu_tensor(&f->golden, "case0.logprobs", DT_F32)->data;
    int T = (int)ids_t->shape[1];
    int64_t shape[2] = {T, f->m.cfg.vocab_size};
    Tensor logits = tensor_wrap((void *)logits_want, DT_F32, CPU, 2, shape);
    float *lp = malloc((size_t)(T - 1) * sizeof *lp);
    cr_assert_eq(llama_token_logprobs(&logits, (const int32_t *)ids_t->data, 1, T, lp), ST_OK);
    float d = tu_max_abs_diff(lp, lp_want, (size_t)(T - 1));
    free(lp);
    return d;
}

static void check_generation(Fixture *f) {
    const SafeTensor *in = tu_tensor(&f->golden, "gen.input_ids", DT_I32);
    const SafeTensor *want = tu_tensor(&f->golden, "gen.output_ids", DT_I32);
    int T = (int)in->shape[1], steps = (int)(want->shape[1] - in->shape[1]);
    int32_t *out = malloc((size_t)steps * sizeof *out);
    Status st = llama_generate_greedy(&f->m, NULL, (const int32_t *)in->data, NULL, 1, T, steps, CPU, out);
    cr_assert_eq(st, ST_OK, "%s", status_message());
    const int32_t *w = (const int32_t *)want->data + T;
    for (int k = 0; k < steps; k++) cr_expect_eq(out[k], w[k], "generated token %d: got %d, transformers %d", k, out[k], w[k]);
    free(out);
}

static void check_model(const char *model_path, const char *golden_dir) {
    Fixture f;
    fixture_open(&f, model_path, golden_dir);
    float d0 = case_max_diff(&f, "case0"), d1 = case_max_diff(&f, "case1"), di = incremental_max_diff(&f),
          dl = logprob_max_diff(&f);
    cr_log_info("%s: max|dlogit| single %.2e, left-padded batch %.2e, incremental %.2e; logprob %.2e", model_path, d0, d1,
                di, dl);
    cr_expect_leq(d0, TOL, "%s: single sequence max |dlogit| %g", model_path, d0);
    cr_expect_leq(d1, TOL, "%s: left-padded batch max |dlogit| %g", model_path, d1);
    cr_expect_leq(di, TOL, "%s: KV-cache decode max |dlogit| %g", model_path, di);
    cr_expect_leq(dl, 1e-5f, "%s: per-token logprob max diff %g", model_path, dl);
    check_generation(&f);
    fixture_close(&f);
}

Test(llama_golden, mha_sharded_f32_head_dim_20) {
    check_model("tests/fixtures/tiny-llama-mha", "tests/fixtures/tiny-llama-mha");
}

Test(llama_golden, gqa_llama3_rope_scaling_bf16) {
    check_model("tests/fixtures/tiny-llama3-gqa", "tests/fixtures/tiny-llama3-gqa");
}

Test(llama_golden, tied_embeddings_f16) {
    check_model("tests/fixtures/tiny-smol-tied", "tests/fixtures/tiny-smol-tied");
}

// The same weights converted to GGUF (Q/K rows permuted as llama.cpp does,
// llama3 scaling as a rope_freqs tensor) must give the HF model's logits.
Test(llama_golden, gguf_matches_hf) {
    check_model("tests/fixtures/tiny-llama3-gqa.gguf", "tests/fixtures/tiny-llama3-gqa");
}

Test(llama_golden, tied_head_shares_embedding) {
    LlamaModel m;
    cr_assert_eq(llama_load(&m, "tests/fixtures/tiny-smol-tied"), ST_OK, "%s", status_message());
    cr_expect(m.cfg.tie_embeddings);
    cr_expect_eq(m.lm_head.data, m.tok_embd.data);
    llama_free(&m);
}
