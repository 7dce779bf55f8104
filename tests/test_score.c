// Multiple-choice scoring: the shared-prefix path must give the scores of the
// artifact's padded-batch path (<= 1e-5 in fp32), and both must equal a direct
// computation from full logits. Tiny Llama-3 fixture (vocabulary of 256) with a
// byte-level tokenizer whose 256 tokens are the bytes (written here).
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/score.h"
#include "ops/ops.h"
#include "test_util.h"

static const Device CPU = {DEV_CPU, 0};

static LlamaModel g_model;
static Tokenizer *g_tok;

static void setup(void) {
    ops_set_threads(1);
    cr_assert_eq(llama_load(&g_model, "tests/fixtures/tiny-llama3-gqa"), ST_OK, "%s", status_message());
    char path[] = "/tmp/elastilm-bytes-XXXXXX";
    close(mkstemp(path));
    tu_write_byte_tokenizer(path);
    cr_assert_eq(tokenizer_load_json(&g_tok, path), ST_OK, "%s", status_message());
    unlink(path);
}

static void teardown(void) {
    tokenizer_free(g_tok);
    llama_free(&g_model);
}

static const char *SYSTEM = "You are a smart assistant. Examples: Question: 2+2? Answer: 4.\n";
static const char *QUESTIONS[] = {"Question: Which is a mammal? Answer:", "Question: What melts ice? Answer:"};
static const char *CHOICES[2][4] = {{" a whale", " a shark", " a trout with a long name", " x"},
                                    {" heat", " cold air from the north", " salt", " nothing at all"}};

// Mean log-prob of the choice's bytes at the tail, from one full forward pass.
static float direct_score(const char *prompt, const char *choice) {
    size_t lp = strlen(prompt), lc = strlen(choice), T = lp + lc;
    int32_t *ids = malloc(T * sizeof *ids);
    for (size_t i = 0; i < T; i++) ids[i] = (unsigned char)(i < lp ? prompt[i] : choice[i - lp]);
    LlamaSession s;
    Tensor logits;
    cr_assert_eq(llama_session_init(&s, &g_model, 1, (int)T, CPU), ST_OK);
    cr_assert_eq(tensor_alloc_2d(&logits, DT_F32, CPU, (int64_t)T, 256), ST_OK);
    cr_assert_eq(llama_forward(&g_model, &s, ids, NULL, (int)T, LOGITS_ALL, &logits), ST_OK);
    double sum = 0;
    for (size_t j = 0; j < lc; j++) {
        const float *row = tensor_row_f32(&logits, (int64_t)(lp + j - 1));
        double mx = row[0], z = 0;
        for (int v = 1; v < 256; v++) mx = row[v] > mx ? row[v] : mx;
        for (int v = 0; v < 256; v++) z += exp(row[v] - mx);
        sum += row[ids[lp + j]] - mx - log(z);
    }
    tensor_free(&logits);
    llama_session_free(&s);
    free(ids);
    return (float)(sum / (double)lc);
}

Test(score, shared_prefix_equals_padded_batch_and_direct, .init = setup, .fini = teardown) {
    Scorer shared, plain;
    cr_assert_eq(scorer_init(&shared, &g_model, g_tok, CPU, true, 256), ST_OK);
    cr_assert_eq(scorer_init(&plain, &g_model, g_tok, CPU, false, 256), ST_OK);
    float worst = 0, worst_direct = 0;
    for (int q = 0; q < 2; q++) {
        char prompt[256];
        snprintf(prompt, sizeof prompt, "%s%s", SYSTEM, QUESTIONS[q]);
        ChoiceScore a[4], b[4];
        cr_assert_eq(scorer_score(&shared, prompt, CHOICES[q], 4, a), ST_OK, "%s", status_message());
        cr_assert_eq(scorer_score(&plain, prompt, CHOICES[q], 4, b), ST_OK, "%s", status_message());
        for (int c = 0; c < 4; c++) {
            float d = fabsf(a[c].mean_logprob - b[c].mean_logprob), dd = fabsf(b[c].mean_logprob - direct_score(prompt, CHOICES[q][c]));
            worst = d > worst ? d : worst;
            worst_direct = dd > worst_direct ? dd : worst_direct;
            cr_expect_eq(a[c].n_tokens, (int)strlen(CHOICES[q][c]));
            cr_expect_float_eq(a[c].sum_logprob, a[c].mean_logprob * a[c].n_tokens, 1e-4);
        }
    }
    cr_log_info("scoring: shared vs padded max diff %.2e, padded vs direct %.2e", worst, worst_direct);
    cr_expect_leq(worst, 1e-5f, "shared-prefix scores differ from the padded batch by %g", worst);
    cr_expect_leq(worst_direct, 1e-5f, "padded-batch scores differ from a direct computation by %g", worst_direct);
    scorer_free(&shared);
    scorer_free(&plain);
}

Test(score, empty_choice_is_an_error, .init = setup, .fini = teardown) {
    Scorer s;
    cr_assert_eq(scorer_init(&s, &g_model, g_tok, CPU, true, 256), ST_OK);
    const char *choices[] = {" fine", ""};
    ChoiceScore out[2];
    cr_expect_eq(scorer_score(&s, "Question: x? Answer:", choices, 2, out), ST_USAGE);
    cr_expect(strstr(status_message(), "choice 1") != NULL, "%s", status_message());
    scorer_free(&s);
}
