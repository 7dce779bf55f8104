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

#include "test_util.h"
#include "text/tokenizer.h"

#define DIR "tests/fixtures/tokenizers/"

// LLaMA-2 and Llama-3's tokenizer.json are fixtures too (provenance in
// tests/fixtures/tokenizers/README.md).
static const char *fixture_tokenizer(const char *file, char *buf, size_t n) {
    snprintf(buf, n, DIR "%s", file);
    return buf;
}

static void check_json(const char *tokenizer_path, const char *name) {
    Tokenizer *t;
    cr_assert_eq(tokenizer_load_json(&t, tokenizer_path), ST_OK, "%s", status_message());
    tu_check_tokenizer(t, name);
    tokenizer_free(t);
}

Test(tokenizers, llama2_sentencepiece_bpe, .timeout = 300) {
    char path[512];
    check_json(fixture_tokenizer("llama2-tokenizer.json.gz", path, sizeof path), "llama2");
}
Test(tokenizers, llama3_bytelevel_bpe, .timeout = 300) {
    char path[512];
    check_json(fixture_tokenizer("llama3-tokenizer.json.gz", path, sizeof path), "llama3");
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

// Random text: code points from every plane (no surrogates), mixed with ASCII
// and whitespace. Byte-level BPE is lossless: decode(encode(x)) == x; offsets
// stay inside the input and never go backwards. (Under ASan/UBSan this is also
// the memory-safety sweep of the whole pipeline.)
static size_t put_utf8(char *out, uint32_t cp) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) { out[0] = (char)(0xc0 | (cp >> 6)); out[1] = (char)(0x80 | (cp & 0x3f)); return 2; }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12)); out[1] = (char)(0x80 | ((cp >> 6) & 0x3f)); out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18)); out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f)); out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

Test(tokenizers, random_text_round_trip, .timeout = 300) {
    Tokenizer *t;
    char path[512];
    cr_assert_eq(tokenizer_load_json(&t, fixture_tokenizer("llama3-tokenizer.json.gz", path, sizeof path)), ST_OK, "%s",
                 status_message());
    uint64_t state = 42;
    char text[1024];
    for (int trial = 0; trial < 1500; trial++) {
        size_t len = 0;
        int n_chars = 1 + (int)(trial % 60);
        for (int k = 0; k < n_chars; k++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            uint32_t r = (uint32_t)(state >> 33), cp;
            switch (r % 4) {
            case 0: cp = 0x20 + r / 4 % 95; break;            // printable ASCII
            case 1: cp = " \t\n\r"[r / 4 % 4]; break;           // whitespace
            case 2: cp = 0x80 + r / 4 % 0xff80; break;          // the BMP
            default: cp = 0x10000 + r / 4 % 0x100000; break;   // the other planes
            }
            if (cp >= 0xd800 && cp <= 0xdfff) cp = 'x';
            len += put_utf8(text + len, cp);
        }
        text[len] = '\0';
        if (strstr(text, "<|")) continue; // special-token text does not round-trip
        TokenList l;
        cr_assert_eq(tokenizer_encode(t, text, len, false, &l), ST_OK, "trial %d: %s", trial, status_message());
        for (size_t i = 0; i < l.n; i++) {
            cr_assert(l.starts[i] <= l.ends[i] && l.ends[i] <= (int32_t)len, "trial %d token %zu", trial, i);
            cr_assert(i == 0 || l.starts[i] >= l.starts[i - 1], "trial %d token %zu goes backwards", trial, i);
        }
        char *dec;
        size_t dec_len;
        cr_assert_eq(tokenizer_decode(t, l.ids, l.n, false, &dec, &dec_len), ST_OK);
        cr_assert(dec_len == len && memcmp(dec, text, len) == 0, "trial %d: round trip differs", trial);
        free(dec);
        token_list_free(&l);
    }
    tokenizer_free(t);
}

Test(tokenizers, unsupported_component_is_named) {
    char path[] = "/tmp/elastilm-tok-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *bad = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []},"
                      " \"pre_tokenizer\": {\"type\": \"UnicodeScripts\"}}";
    cr_assert_eq(write(fd, bad, strlen(bad)), (ssize_t)strlen(bad));
    close(fd);
    Tokenizer *t;
    cr_expect_eq(tokenizer_load_json(&t, path), ST_UNSUPPORTED);
    cr_expect(strstr(status_message(), path) && strstr(status_message(), "UnicodeScripts"), "%s", status_message());
    unlink(path);
}

// The Metaspace pre-tokenizer and decoder, on two variants of the LLaMA-2 file
// (same vocabulary and merges) made exactly as tests/reference/make_metaspace_goldens.py
// makes them for HF.
static void check_metaspace_variant(const char *name, const char *edits_json) {
    char src[512], path[] = "/tmp/elastilm-metaspace-XXXXXX";
    json_error_t err;
    Tokenizer *base_check;
    cr_assert_eq(tokenizer_load_json(&base_check, fixture_tokenizer("llama2-tokenizer.json.gz", src, sizeof src)), ST_OK,
                 "%s", status_message());
    tokenizer_free(base_check);
    gzFile f = gzopen(src, "rb");
    cr_assert_not_null(f);
    size_t cap = 1 << 22, len = 0;
    char *text = malloc(cap);
    int got;
    while ((got = gzread(f, text + len, (unsigned)(cap - len))) > 0)
        if ((len += (size_t)got) == cap) text = realloc(text, cap *= 2);
    gzclose(f);
    json_t *root = json_loadb(text, len, 0, &err), *edits = json_loads(edits_json, 0, &err);
    cr_assert(root && edits, "%s", err.text);
    free(text);
    json_object_update(root, edits);
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(json_dump_file(root, path, JSON_COMPACT), 0);
    json_decref(root);
    json_decref(edits);
    Tokenizer *t;
    cr_assert_eq(tokenizer_load_json(&t, path), ST_OK, "%s", status_message());
    unlink(path);
    tu_check_tokenizer(t, name);
    tokenizer_free(t);
}

Test(tokenizers, metaspace_prepend_first, .timeout = 300) {
    check_metaspace_variant("llama2-metaspace-first",
                            "{\"normalizer\": null, \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"\\u2581\","
                            " \"prepend_scheme\": \"first\", \"split\": false}}");
}

Test(tokenizers, metaspace_split_always, .timeout = 300) {
    check_metaspace_variant("llama2-metaspace-split",
                            "{\"normalizer\": null, \"pre_tokenizer\": {\"type\": \"Metaspace\", \"replacement\": \"\\u2581\","
                            " \"prepend_scheme\": \"always\", \"split\": true}, \"decoder\": {\"type\": \"Sequence\","
                            " \"decoders\": [{\"type\": \"Metaspace\", \"replacement\": \"\\u2581\", \"prepend_scheme\":"
                            " \"always\", \"split\": true}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}]}}");
}
