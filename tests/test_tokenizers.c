// Tokenizer parity with Hugging Face `tokenizers` over the committed corpus
// (tests/fixtures/tokenizers, made by tests/reference/make_tokenizer_goldens.py):
// identical ids with and without special tokens, identical character offsets,
// identical decode with and without skipping special tokens.
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "text/tokenizer.h"

#define DIR "tests/fixtures/tokenizers/"

// Reads a gzip'd JSON-lines file into an array of parsed values.
static json_t *read_jsonl_gz(const char *path) {
    gzFile f = gzopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    json_t *all = json_array();
    size_t cap = 1 << 16, len = 0;
    char *line = malloc(cap);
    int c;
    while ((c = gzgetc(f)) != -1) {
        if (c != '\n') {
            if (len + 2 > cap) line = realloc(line, cap *= 2);
            line[len++] = (char)c;
            continue;
        }
        json_error_t err;
        json_t *v = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        cr_assert_not_null(v, "%s: line %zu: %s", path, json_array_size(all) + 1, err.text);
        json_array_append_new(all, v);
        len = 0;
    }
    free(line);
    gzclose(f);
    return all;
}

static long char_index(const char *text, long byte) {
    long n = 0;
    for (long i = 0; i < byte; i++) n += ((unsigned char)text[i] & 0xc0) != 0x80;
    return n;
}

static bool ids_equal(const TokenList *l, json_t *want) {
    if (json_array_size(want) != l->n) return false;
    for (size_t i = 0; i < l->n; i++)
        if (json_integer_value(json_array_get(want, i)) != l->ids[i]) return false;
    return true;
}

static bool offsets_equal(const TokenList *l, const char *text, json_t *want) {
    if (json_array_size(want) != l->n) return false;
    for (size_t i = 0; i < l->n; i++) {
        json_t *o = json_array_get(want, i);
        if (json_integer_value(json_array_get(o, 0)) != char_index(text, l->starts[i]) ||
            json_integer_value(json_array_get(o, 1)) != char_index(text, l->ends[i]))
            return false;
    }
    return true;
}

// Compares bytes that may contain NUL with a JSON string.
static bool same_string(const char *s, size_t len, json_t *want) {
    return json_string_length(want) == len && memcmp(json_string_value(want), s, len) == 0;
}

static void print_ids(const char *what, const TokenList *l) {
    fprintf(stderr, "    %s:", what);
    for (size_t i = 0; i < l->n && i < 40; i++) fprintf(stderr, " %d", l->ids[i]);
    fprintf(stderr, "\n");
}

static void check_tokenizer(const Tokenizer *t, const char *name) {
    char path[256];
    json_t *corpus = read_jsonl_gz(DIR "corpus.jsonl.gz");
    snprintf(path, sizeof path, DIR "%s.golden.jsonl.gz", name);
    json_t *gold = read_jsonl_gz(path);
    cr_assert_eq(json_array_size(corpus), json_array_size(gold), "%s: corpus and golden differ in length", name);
    size_t n = json_array_size(corpus), bad_ids = 0, bad_plain = 0, bad_offsets = 0, bad_decode = 0, bad_skip = 0;
    for (size_t i = 0; i < n; i++) {
        const char *text = json_string_value(json_array_get(corpus, i));
        size_t len = json_string_length(json_array_get(corpus, i));
        json_t *g = json_array_get(gold, i);
        TokenList with, plain;
        cr_assert_eq(tokenizer_encode(t, text, len, true, &with), ST_OK, "%s: string %zu: %s", name, i, status_message());
        cr_assert_eq(tokenizer_encode(t, text, len, false, &plain), ST_OK, "%s: string %zu: %s", name, i, status_message());
        if (!ids_equal(&with, json_object_get(g, "ids"))) bad_ids++;
        if (!ids_equal(&plain, json_object_get(g, "plain"))) {
            if (bad_plain++ < 5) {
                fprintf(stderr, "%s: string %zu ids differ: %.80s\n", name, i, text);
                print_ids("elastilm", &plain);
            }
        } else if (!offsets_equal(&plain, text, json_object_get(g, "offsets")) && bad_offsets++ < 5) {
            fprintf(stderr, "%s: string %zu offsets differ: %.80s\n", name, i, text);
        }
        char *dec = NULL, *skip = NULL;
        size_t dec_len, skip_len;
        cr_assert_eq(tokenizer_decode(t, with.ids, with.n, false, &dec, &dec_len), ST_OK, "%s", status_message());
        cr_assert_eq(tokenizer_decode(t, with.ids, with.n, true, &skip, &skip_len), ST_OK, "%s", status_message());
        if (!same_string(dec, dec_len, json_object_get(g, "decoded")) && bad_decode++ < 5)
            fprintf(stderr, "%s: string %zu decode differs: '%.80s' vs '%.80s'\n", name, i, dec,
                    json_string_value(json_object_get(g, "decoded")));
        if (!same_string(skip, skip_len, json_object_get(g, "decoded_skip"))) bad_skip++;
        free(dec);
        free(skip);
        token_list_free(&with);
        token_list_free(&plain);
    }
    cr_log_info("%s: %zu strings; differing: ids %zu, plain ids %zu, offsets %zu, decode %zu, decode(skip) %zu", name, n,
                bad_ids, bad_plain, bad_offsets, bad_decode, bad_skip);
    cr_expect_eq(bad_ids + bad_plain + bad_offsets + bad_decode + bad_skip, 0, "%s: mismatches against HF", name);
    json_decref(corpus);
    json_decref(gold);
}

static void check_json(const char *tokenizer_path, const char *name) {
    Tokenizer *t;
    cr_assert_eq(tokenizer_load_json(&t, tokenizer_path), ST_OK, "%s", status_message());
    check_tokenizer(t, name);
    tokenizer_free(t);
}

Test(tokenizers, llama2_sentencepiece_bpe, .timeout = 300) {
    check_json("../shared/data/tokenizers/llama2-tokenizer.json.gz", "llama2");
}
Test(tokenizers, llama3_bytelevel_bpe, .timeout = 300) {
    check_json("../shared/data/tokenizers/llama3-tokenizer.json.gz", "llama3");
}
Test(tokenizers, smollm2_bytelevel_bpe, .timeout = 300) { check_json(DIR "smollm2-tokenizer.json.gz", "smollm2"); }
Test(tokenizers, minilm_wordpiece, .timeout = 300) { check_json(DIR "minilm-tokenizer.json.gz", "minilm"); }

Test(tokenizers, invalid_utf8_names_offset) {
    Tokenizer *t;
    cr_assert_eq(tokenizer_load_json(&t, DIR "smollm2-tokenizer.json.gz"), ST_OK, "%s", status_message());
    TokenList l;
    cr_expect_eq(tokenizer_encode(t, "ab\xc3(", 4, false, &l), ST_USAGE);
    cr_expect(strstr(status_message(), "byte offset 2") != NULL, "%s", status_message());
    tokenizer_free(t);
}

Test(tokenizers, malformed_tokenizer_json) {
    char path[] = "/tmp/elastilm-tok-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *bad = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}";
    cr_assert_eq(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    Tokenizer *t;
    cr_expect_eq(tokenizer_load_json(&t, path), ST_FORMAT);
    cr_expect(strstr(status_message(), path) && strstr(status_message(), "merge 0"), "%s", status_message());
    unlink(path);
}
