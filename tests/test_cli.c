// The command line on the fixtures: info, forward (--out and top-5), generate.
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"

#define GQA "tests/fixtures/tiny-llama3-gqa"

Test(cli, info_reports_config) {
    char cmd[512], out[8192];
    snprintf(cmd, sizeof cmd, "%s info --model " GQA, tu_bin());
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "heads:            4 (kv heads 2, head_dim 16)") != NULL, "%s", out);
    cr_expect(strstr(out, "llama3, factor 8") != NULL, "%s", out);
    cr_expect(strstr(out, "stored dtypes:    bf16") != NULL, "%s", out);
    // 256*64 (embed) + 64 (norm) + 256*64 (head) + 2 * (2*64 + 64*64 + 2*32*64 + 64*64 + 3*128*64)
    cr_expect(strstr(out, "parameters:       106816") != NULL, "%s", out); // 32832 + 2 * 36992
    snprintf(cmd, sizeof cmd, "%s info --model tests/fixtures/tiny-smol-tied", tu_bin());
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "tied embeddings:  yes") != NULL, "%s", out);
}

// --out writes [T x V] float32 logits equal to the golden ones.
Test(cli, forward_out_matches_golden) {
    SafetensorsFile g;
    tu_open_safetensors(&g, GQA "/golden.safetensors");
    const SafeTensor *ids = tu_tensor(&g, "case0.input_ids", DT_I32);
    const SafeTensor *logits = tu_tensor(&g, "case0.logits", DT_F32);
    char ids_text[512] = "", cmd[1024], out[4096], path[] = "/tmp/elastilm-cli-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    for (int t = 0; t < ids->shape[1]; t++) {
        size_t used = strlen(ids_text);
        snprintf(ids_text + used, sizeof ids_text - used, "%s%d", t ? " " : "", ((const int32_t *)ids->data)[t]);
    }
    snprintf(cmd, sizeof cmd, "%s forward --model " GQA " --ids '%s' --out %s --quiet", tu_bin(), ids_text, path);
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    size_t len;
    uint8_t *data = tu_read_file(path, &len);
    cr_assert_eq(len, logits->nbytes);
    float d = tu_max_abs_diff((const float *)data, (const float *)logits->data, len / 4);
    cr_expect_leq(d, 1e-4f, "max |dlogit| %g", d);
    free(data);
    unlink(path);
    snprintf(cmd, sizeof cmd, "%s forward --model " GQA " --ids '%s'", tu_bin(), ids_text);
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "pos 11 id") != NULL, "%s", out);
    safetensors_close(&g);
}

Test(cli, generate_matches_golden) {
    SafetensorsFile g;
    tu_open_safetensors(&g, GQA "/golden.safetensors");
    const SafeTensor *in = tu_tensor(&g, "gen.input_ids", DT_I32), *want = tu_tensor(&g, "gen.output_ids", DT_I32);
    int T = (int)in->shape[1], steps = (int)(want->shape[1] - T);
    char ids_text[256] = "", expect[512] = "", cmd[1024], out[4096];
    for (int t = 0; t < T; t++) {
        size_t used = strlen(ids_text);
        snprintf(ids_text + used, sizeof ids_text - used, "%s%d", t ? " " : "", ((const int32_t *)in->data)[t]);
    }
    for (int k = 0; k < steps; k++) {
        size_t used = strlen(expect);
        snprintf(expect + used, sizeof expect - used, "%s%d", k ? " " : "", ((const int32_t *)want->data)[T + k]);
    }
    snprintf(cmd, sizeof cmd, "%s generate --model " GQA " --ids '%s' --steps %d --quiet", tu_bin(), ids_text, steps);
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    cr_expect(strncmp(out, expect, strlen(expect)) == 0, "got '%s', transformers '%s'", out, expect);
    safetensors_close(&g);
}

// tokenize: text -> ids with offsets, and ids -> text, on a committed tokenizer.json.
Test(cli, tokenize_encode_decode) {
    char cmd[1024], out[4096];
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer tests/fixtures/tokenizers/minilm-tokenizer.json.gz --text 'Hello, world!'",
             tu_bin());
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    cr_expect_str_eq(out, "101 7592 1010 2088 999 102\n"); // transformers: [CLS] hello , world ! [SEP]
    snprintf(cmd, sizeof cmd,
             "%s tokenize --tokenizer tests/fixtures/tokenizers/minilm-tokenizer.json.gz --text 'Hello, world!' --offsets --no-special",
             tu_bin());
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    cr_expect(strncmp(out, "7592\t0\t5\tHello\n1010\t5\t6\t,\n", 25) == 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer tests/fixtures/tokenizers/minilm-tokenizer.json.gz --decode '101 7592 1010 2088 999 102' --no-special",
             tu_bin());
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    cr_expect_str_eq(out, "hello, world!\n");
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer tests/fixtures/tokenizers/minilm-tokenizer.json.gz --decode '1 99999'", tu_bin());
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer /nonexistent.json --text x", tu_bin());
    cr_expect_eq(tu_run(cmd, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "/nonexistent.json") != NULL, "%s", out);
}

// eval on the tiny Llama-3 fixture with a byte-level tokenizer.json written beside
// it: exit 0, the artifact's result line, one prediction per question; a
// malformed data file stops the run with file:line and exit 1.
static void tiny_model_with_tokenizer(char *dir, size_t n) {
    tu_copy_dir(GQA, dir, n);
    char path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    tu_write_byte_tokenizer(path);
}

// Predictions of a resumed run against an uninterrupted one: the same ids,
// predictions and verdicts, and scores within 1e-5. Not byte for byte: the
// scorer keeps the shared prefix's KV cache from question to question, and a
// resumed run computes question k's prefix in one forward where the
// uninterrupted run extended question k-1's; a GEMM's rounding depends on its
// shape (OpenBLAS's Zen kernels differ in the 7th digit), so the scores may too.
static void expect_same_predictions(const char *want_text, const char *got_text) {
    const char *w = want_text, *g = got_text;
    int line = 0;
    while (*w && *g) {
        line++;
        json_error_t err;
        json_t *a = json_loadb(w, strcspn(w, "\n"), 0, &err), *b = json_loadb(g, strcspn(g, "\n"), 0, &err);
        cr_assert(a && b, "line %d is not JSON", line);
        static const char *const same[] = {"id", "pred", "answer", "correct"};
        for (size_t i = 0; i < sizeof same / sizeof *same; i++)
            cr_expect(json_equal(json_object_get(a, same[i]), json_object_get(b, same[i])), "line %d: %s differs", line,
                      same[i]);
        json_t *sa = json_object_get(a, "scores"), *sb = json_object_get(b, "scores");
        cr_assert_eq(json_array_size(sa), json_array_size(sb), "line %d: score counts differ", line);
        for (size_t i = 0; i < json_array_size(sa); i++) {
            double x = json_number_value(json_array_get(sa, i)), y = json_number_value(json_array_get(sb, i));
            cr_expect(fabs(x - y) <= 1e-5, "line %d score %zu: %.7g vs %.7g", line, i, x, y);
        }
        json_decref(a);
        json_decref(b);
        w += strcspn(w, "\n");
        g += strcspn(g, "\n");
        w += *w == '\n';
        g += *g == '\n';
    }
    cr_expect(!*w && !*g, "the resumed predictions have %s lines", *w ? "fewer" : "more");
}

Test(cli, eval_writes_result_line_and_predictions) {
    char dir[256], cmd[2048], out[4096], res[700], preds[700];
    tiny_model_with_tokenizer(dir, sizeof dir);
    snprintf(preds, sizeof preds, "%s/preds.jsonl", dir);
    snprintf(cmd, sizeof cmd,
             "%s eval --model %s --model-name tiny --dataset ARC_E --data tests/fixtures/datasets/hf_arc_easy.jsonl"
             " --results %s --predictions %s --quiet",
             tu_bin(), dir, dir, preds);
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "ARC_E tiny: accuracy") != NULL, "%s", out);
    snprintf(res, sizeof res, "%s/tiny_ARC_E.txt", dir);
    size_t len;
    char *line = (char *)tu_read_file(res, &len);
    cr_expect(strncmp(line, "ARC_E tiny full 1.0 1.0 ", 24) == 0, "%s", line);
    free(line);
    char *p = (char *)tu_read_file(preds, &len);
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += p[i] == '\n';
    free(p);
    cr_expect_gt(lines, 0);
    // a run killed after one question, mid-way through the second record: the rerun resumes
    char *full = (char *)tu_read_file(preds, &len), tmp[720];
    char *second = strchr(full, '\n') + 1;
    snprintf(tmp, sizeof tmp, "%s.tmp", preds);
    FILE *fp = fopen(tmp, "w");
    fwrite(full, 1, (size_t)(second - full) + 10, fp); // record 1 and a torn record 2
    fclose(fp);
    unlink(preds);
    snprintf(cmd, sizeof cmd,
             "%s eval --model %s --model-name tiny --dataset ARC_E --data tests/fixtures/datasets/hf_arc_easy.jsonl"
             " --results %s --predictions %s",
             tu_bin(), dir, dir, preds);
    char out2[4096];
    cr_assert_eq(tu_run(cmd, out2, sizeof out2), 0, "%s", out2);
    cr_expect(strstr(out2, "resuming after 1 questions") != NULL, "%s", out2);
    size_t len2;
    char *again = (char *)tu_read_file(preds, &len2);
    expect_same_predictions(full, again);
    cr_expect(strstr(out2, strstr(out, "accuracy")) != NULL || strncmp(strstr(out2, "accuracy"), strstr(out, "accuracy"), 20) == 0,
              "accuracy differs: %s vs %s", out, out2);
    free(again);
    free(full);
    // a malformed data file: the first record has no choices
    char bad[700];
    snprintf(bad, sizeof bad, "%s/bad.jsonl", dir);
    fp = fopen(bad, "w");
    fprintf(fp, "{\"id\": \"x\", \"question\": \"q?\", \"choices\": {\"text\": [], \"label\": []}, \"answerKey\": \"A\"}\n");
    fclose(fp);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --dataset ARC_E --data %s --results %s --quiet", tu_bin(), dir, bad, dir);
    cr_expect_eq(tu_run(cmd, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "bad.jsonl:1") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s eval --model %s --dataset ARC_E --data %s --results %s --quiet --skip-bad", tu_bin(), dir, bad, dir);
    cr_expect_eq(tu_run(cmd, out, sizeof out), 1, "%s", out); // nothing left to score is still an error
    snprintf(cmd, sizeof cmd, "%s eval --model %s --dataset NOPE", tu_bin(), dir);
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    tu_remove_dir(dir);
}
