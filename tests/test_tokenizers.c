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

static void check_json(const char *tokenizer_path, const char *name) {
    Tokenizer *t;
    cr_assert_eq(tokenizer_load_json(&t, tokenizer_path), ST_OK, "%s", status_message());
    tu_check_tokenizer(t, name);
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
