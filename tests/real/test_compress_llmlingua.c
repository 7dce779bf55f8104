// LLMLingua-2 (host/tlm/compress.c) against llmlingua 0.2.2 byte for byte:
// tests/reference/make_llmlingua_goldens.py ran PromptCompressor(use_llmlingua2=True)
// on six texts at rates 0.8 0.6 0.4 0.2 1.0 with force_tokens ['\n', '?'] and recorded
// the classifier's per-chunk tokens and probabilities. Here the recorded probabilities
// are fed through the score callback; every chunk string the C chunker makes must be
// the one llmlingua gave the classifier, and every compressed_prompt must be equal.
// Needs cl100k (datasets/fetch.sh tiktoken); the encoder tokenizer is the committed
// all-MiniLM-L6-v2 tokenizer.json.
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/mapped_file.h"
#include "text/tokenizer.h"
#include "tlm/compress.h"

#define GOLDEN "tests/fixtures/compress/llmlingua2.golden.json.gz"
#define MINILM "tests/fixtures/tokenizers/minilm-tokenizer.json.gz"

typedef struct {
    json_t *chunks;
    size_t next;
    const char *name;
    int mismatched_chunks;
} Replay;

static Status replay_score(void *ctx, const char *chunk, size_t len, Lingua2Scores *out) {
    Replay *r = ctx;
    json_t *c = json_array_get(r->chunks, r->next++);
    if (!c) return status_fail(ST_USAGE, "%s: more chunks than llmlingua made", r->name);
    json_t *want = json_object_get(c, "text");
    if (json_string_length(want) != len || memcmp(json_string_value(want), chunk, len) != 0) {
        r->mismatched_chunks++;
        fprintf(stderr, "%s chunk %zu differs:\n  C:      %.300s\n  python: %.300s\n", r->name, r->next - 1, chunk,
                json_string_value(want));
    }
    json_t *toks = json_object_get(c, "tokens"), *probs = json_object_get(c, "probs");
    size_t n = json_array_size(toks);
    out->tokens = calloc(n + 1, sizeof *out->tokens);
    out->probs = calloc(n + 1, sizeof *out->probs);
    out->n = n;
    for (size_t i = 0; i < n; i++) {
        out->tokens[i] = strdup(json_string_value(json_array_get(toks, i)));
        out->probs[i] = (float)json_real_value(json_array_get(probs, i));
    }
    return ST_OK;
}

static void bpe_path(char *buf, size_t n) {
    const char *cache = getenv("ELASTILM_CACHE");
    if (cache) snprintf(buf, n, "%s/tiktoken/tiktoken_ext/data/cl100k_base.tiktoken", cache);
    else snprintf(buf, n, "%s/.cache/elastilm/tiktoken/tiktoken_ext/data/cl100k_base.tiktoken", getenv("HOME"));
}

Test(real_compress, llmlingua2_byte_for_byte, .timeout = 300) {
    char *gz;
    size_t gl;
    cr_assert_eq(read_file_maybe_gz(GOLDEN, &gz, &gl), ST_OK, "%s", status_message());
    json_error_t err;
    json_t *g = json_loadb(gz, gl, JSON_ALLOW_NUL, &err);
    free(gz);
    cr_assert_not_null(g, "%s: %s", GOLDEN, err.text);
    char path[1024];
    bpe_path(path, sizeof path);
    Tokenizer *enc, *cl;
    cr_assert_eq(tokenizer_load_json(&enc, MINILM), ST_OK, "%s", status_message());
    cr_assert_eq(tokenizer_load_tiktoken(&cl, path), ST_OK, "%s (run datasets/fetch.sh tiktoken)", status_message());
    const char *force[] = {"\n", "?"};
    json_t *texts = json_object_get(g, "texts");
    size_t n_cases = 0, n_equal = 0;
    for (size_t i = 0; i < json_array_size(texts); i++) {
        json_t *t = json_array_get(texts, i);
        const char *name = json_string_value(json_object_get(t, "name"));
        json_t *text = json_object_get(t, "text");
        TokenList tl;
        cr_assert_eq(tokenizer_encode(cl, json_string_value(text), json_string_length(text), false, &tl), ST_OK);
        cr_expect_eq((long)tl.n, (long)json_integer_value(json_object_get(t, "n_original_token")), "%s: cl100k count", name);
        token_list_free(&tl);
        const char *rate_s;
        json_t *want;
        json_object_foreach(json_object_get(t, "outputs"), rate_s, want) {
            Replay r = {json_object_get(t, "chunks"), 0, name, 0};
            Lingua2 c = {enc, cl, replay_score, &r, force, 2};
            char *got;
            size_t got_len;
            double rate = strtod(rate_s, NULL);
            cr_assert_eq(lingua2_compress(&c, json_string_value(text), json_string_length(text), rate, &got, &got_len), ST_OK,
                         "%s rate %s: %s", name, rate_s, status_message());
            bool same = got_len == json_string_length(want) && memcmp(got, json_string_value(want), got_len) == 0;
            if (!same)
                fprintf(stderr, "%s rate %s differs:\n  C:        %.400s\n  llmlingua: %.400s\n", name, rate_s, got,
                        json_string_value(want));
            cr_expect(same, "%s rate %s: compressed prompt differs from llmlingua's", name, rate_s);
            cr_expect_eq(r.mismatched_chunks, 0, "%s rate %s: chunk strings differ", name, rate_s);
            if (rate < 1.0) cr_expect_eq(r.next, json_array_size(r.chunks), "%s rate %s: chunk count", name, rate_s);
            n_cases++;
            n_equal += same;
            free(got);
        }
    }
    cr_log_info("llmlingua2: %zu of %zu compressed prompts byte-identical", n_equal, n_cases);
    tokenizer_free(enc);
    tokenizer_free(cl);
    json_decref(g);
}
