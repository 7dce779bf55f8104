// host/tlm/compress.c without any model or real asset: ElastiLM's selection
// (paper and compat modes), the pieces of the LLMLingua-2 rule (percentile,
// WordPiece join, chunker, word merge) and the .tiktoken loader's format errors.
// The byte-for-byte checks against llmlingua 0.2.2 and tiktoken's cl100k are in
// tests/real/ (they need the cl100k file).
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/mapped_file.h"
#include "test_util.h"
#include "text/tokenizer.h"
#include "tlm/compress.h"

#define MINILM "tests/fixtures/tokenizers/minilm-tokenizer.json.gz"
#define GOLDEN "tests/fixtures/compress/llmlingua2.golden.json.gz"

// ---- .tiktoken ---------------------------------------------------------------

Test(compress, tiktoken_tiny_file_encodes) {
    char path[256];
    Tokenizer *t;
    cr_assert_eq(tokenizer_load_tiktoken(&t, tu_tiny_tiktoken(-1, NULL, path, sizeof path)), ST_OK, "%s", status_message());
    TokenList l;
    // "aaaa": a,a,a,a -> aa,a,a -> aa,aa ("aaaa" is no token); "aaa" is a token.
    cr_assert_eq(tokenizer_encode(t, "aaaa aaa<|endoftext|>", 21, false, &l), ST_OK, "%s", status_message());
    int32_t want[] = {256, 256, ' ', 257, 100257};
    cr_assert_eq(l.n, 5);
    for (size_t i = 0; i < 5; i++) cr_expect_eq(l.ids[i], want[i], "token %zu: %d", i, l.ids[i]);
    char *s;
    size_t len;
    cr_assert_eq(tokenizer_decode(t, l.ids, l.n, false, &s, &len), ST_OK);
    cr_expect_str_eq(s, "aaaa aaa<|endoftext|>");
    free(s);
    token_list_free(&l);
    tokenizer_free(t);
}

static void expect_load_error(int skip_byte, const char *extra, const char *n1, const char *n2) {
    char path[256];
    Tokenizer *t = NULL;
    tu_tiny_tiktoken(skip_byte, extra, path, sizeof path);
    tu_expect_err(tokenizer_load_tiktoken(&t, path), ST_FORMAT, path, n1, n2);
    cr_expect_null(t);
}

Test(compress, tiktoken_format_errors) {
    expect_load_error(-1, "!!!! 300\n", ":259:", "not a base64 token");
    expect_load_error(-1, "YWI= 300\nYWJ 301\n", ":260:", "not a base64 token");
    expect_load_error(-1, "YWI=\n", ":259:", "expected");
    expect_load_error(-1, "YWI= 12x\n", ":259:", "not an integer");
    expect_load_error(-1, "YWI= 256\n", ":259:", "rank 256 repeats line 257");
    expect_load_error(-1, "YWE= 300\n", ":259:", "repeats line 257");
    expect_load_error(-1, "YWI= 100257\n", ":259:", "<|endoftext|>");
    expect_load_error(0, NULL, "single byte 0x00", NULL);
}

// ---- ElastiLM ------------------------------------------------------------------

Test(compress, sys_ratio_and_count) {
    cr_expect_eq(tlm_sys_ratio(100, 20, 0.5), 0.4);
    cr_expect_eq(tlm_keep_count(tlm_sys_ratio(100, 20, 0.5), 100), 41);
    cr_expect_eq(tlm_sys_ratio(100, 20, 0.1), 0.0);
    cr_expect_eq(tlm_keep_count(0.0, 100), 1);
    cr_expect_eq(tlm_sys_ratio(0, 20, 0.5), 0.0);
    // as Python: ((157+31)*0.3-31)/157 = 0.16178343949044587; int(0.1617...*157)+1 = 26
    double r = tlm_sys_ratio(157, 31, 0.3);
    cr_expect_eq(r, ((157.0 + 31.0) * 0.3 - 31.0) / 157.0);
    cr_expect_eq(tlm_keep_count(r, 157), 26);
}

typedef struct {
    TokenList l;
    float *scores;
    TlmTokens t;
} Enc;

static void enc_init(Enc *e, const Tokenizer *tok, const char *text) {
    cr_assert_eq(tokenizer_encode(tok, text, strlen(text), true, &e->l), ST_OK, "%s", status_message());
    e->scores = calloc(e->l.n, sizeof *e->scores);
    e->t = (TlmTokens){text, strlen(text), e->l.starts, e->l.ends, e->l.special, e->scores, e->l.n};
}

static void enc_free(Enc *e) {
    token_list_free(&e->l);
    free(e->scores);
}

static void expect_paper(const TlmTokens *t, long count, const char *want) {
    char *s;
    size_t len;
    cr_assert_eq(tlm_compress_paper(t, count, &s, &len), ST_OK, "%s", status_message());
    cr_expect_str_eq(s, want, "count %ld", count);
    cr_expect_eq(len, strlen(want));
    free(s);
}

Test(compress, paper_mode_rebuild) {
    Tokenizer *tok;
    cr_assert_eq(tokenizer_load_json(&tok, MINILM), ST_OK, "%s", status_message());
    Enc e;
    // [CLS] hello , world . next line here . [SEP]
    enc_init(&e, tok, "  Hello,  world.\nNext line here. ");
    cr_assert_eq(e.l.n, 10);
    float sc[] = {9, 0.9f, 0.1f, 0.8f, 0.2f, 0.7f, 0.3f, 0.6f, 0.25f, 9};
    memcpy(e.scores, sc, sizeof sc);
    expect_paper(&e.t, 100, "Hello,  world.\nNext line here.");
    expect_paper(&e.t, 0, "");
    expect_paper(&e.t, 1, "Hello");
    expect_paper(&e.t, 4, "Hello  world\nNext here");
    expect_paper(&e.t, 5, "Hello  world\nNext line here");
    enc_free(&e);
    // word pieces: [CLS] token ##ization x [SEP]
    enc_init(&e, tok, "tokenization x");
    cr_assert_eq(e.l.n, 5);
    for (size_t i = 0; i < e.l.n; i++) e.scores[i] = 1.0f;
    expect_paper(&e.t, 100, "tokenization x");
    e.scores[2] = -1.0f; // ##ization dropped: the last whitespace run of "ization " separates
    expect_paper(&e.t, 2, "token x");
    e.scores[2] = 1.0f;
    e.scores[3] = -1.0f;
    expect_paper(&e.t, 2, "tokenization");
    enc_free(&e);
    tokenizer_free(tok);
}

Test(compress, compat_mode_selection_and_decode) {
    float sc[] = {0.5f, -1.0f, 0.2f, -2.0f, 3.0f, 0.2f};
    bool sel[6];
    tlm_select_lowest(sc, 6, 4, sel);
    bool want[] = {false, true, true, true, false, true}; // ties (0.2) in position order
    for (int i = 0; i < 6; i++) cr_expect_eq(sel[i], want[i], "position %d", i);
    tlm_select_lowest(sc, 6, 3, sel);
    cr_expect(sel[2] && !sel[5], "a tie keeps the earlier position");
    Tokenizer *tok;
    cr_assert_eq(tokenizer_load_json(&tok, MINILM), ST_OK, "%s", status_message());
    // LLM ids at encoder positions; 999999 is beyond the vocabulary and is dropped;
    // position 6 (>= n_enc) is never kept.
    int32_t llm[] = {101, 7592, 999999, 2088, 102, 1010, 2088};
    char *s;
    cr_assert_eq(tlm_compress_compat(sc, 5, 3, llm, 7, tok, false, &s, NULL), ST_OK, "%s", status_message());
    cr_expect_str_eq(s, "hello world");
    free(s);
    cr_assert_eq(tlm_compress_compat(sc, 5, 100, llm, 7, tok, false, &s, NULL), ST_OK, "%s", status_message());
    cr_expect_str_eq(s, "[CLS] hello world [SEP]");
    free(s);
    cr_assert_eq(tlm_compress_compat(sc, 5, 100, llm, 7, tok, true, &s, NULL), ST_OK, "%s", status_message());
    cr_expect_str_eq(s, "hello world");
    free(s);
    tokenizer_free(tok);
}

// ---- LLMLingua-2 pieces ---------------------------------------------------------

Test(compress, lingua2_percent_and_percentile) {
    cr_expect_eq(lingua2_percent(0.8), 20);
    cr_expect_eq(lingua2_percent(0.6), 41);
    cr_expect_eq(lingua2_percent(0.4), 61);
    cr_expect_eq(lingua2_percent(0.2), 81);
    cr_expect_eq(lingua2_percent(0.7), 31);
    cr_expect_eq(lingua2_percent(0.9), 10);
    cr_expect_eq(lingua2_percent(0.5), 51);
    cr_expect_eq(lingua2_percent(1.0), 1);
    // numpy 2.4: np.percentile(list of np.float32, q) (float32) and with a Python
    // 1.0 in the list (float64), values printed with repr(float(...)).
    static const struct {
        float v[8];
        size_t n;
        int q;
        double f32, f64_with_one;
    } cases[] = {
        {{0.1f, 0.5f, 0.2f, 0.9f, 0.3f}, 5, 20, 0.18000000715255737, 0.20000000298023224},
        {{0.1f, 0.5f, 0.2f, 0.9f, 0.3f}, 5, 41, 0.2639999985694885, 0.3100000113248825},
        {{0.25f, 0.75f}, 2, 61, 0.5550000071525574, 0.8049999999999999},
        {{0.3f}, 1, 81, 0.30000001192092896, 0.8670000022649765},
        {{0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f}, 7, 81, 0.5860000252723694, 0.6669999998807907},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double v[9];
        for (size_t i = 0; i < cases[c].n; i++) v[i] = cases[c].v[i];
        cr_expect_eq(lingua2_percentile(v, cases[c].n, cases[c].q, false), cases[c].f32, "case %zu f32: %.17g", c,
                     lingua2_percentile(v, cases[c].n, cases[c].q, false));
        double w[9] = {1.0};
        for (size_t i = 0; i < cases[c].n; i++) w[i + 1] = cases[c].v[i];
        cr_expect_eq(lingua2_percentile(w, cases[c].n + 1, cases[c].q, true), cases[c].f64_with_one, "case %zu f64: %.17g",
                     c, lingua2_percentile(w, cases[c].n + 1, cases[c].q, true));
    }
    cr_expect(isnan(lingua2_percentile(NULL, 0, 50, false)));
}

Test(compress, lingua2_wordpiece_join) {
    const char *a[] = {"don", "'", "t", "panic", "!", "##x", "\n", "b", "?", "'s"};
    char *s = lingua2_wordpiece_join(a, 10);
    cr_expect_str_eq(s, "don ' t panic!x \n b?'s");
    free(s);
    const char *b[] = {"##a", "b", "##"};
    s = lingua2_wordpiece_join(b, 3);
    cr_expect_str_eq(s, "##a b");
    free(s);
    s = lingua2_wordpiece_join(NULL, 0);
    cr_expect_str_eq(s, "");
    free(s);
}

// The chunk strings llmlingua gave its classifier (recorded in the golden) come from
// the encoder tokenizer alone: check the chunker on every golden text.
Test(compress, lingua2_chunks_match_llmlingua) {
    char *gz;
    size_t gl;
    cr_assert_eq(read_file_maybe_gz(GOLDEN, &gz, &gl), ST_OK, "%s", status_message());
    json_error_t err;
    json_t *g = json_loadb(gz, gl, JSON_ALLOW_NUL, &err);
    free(gz);
    cr_assert_not_null(g, "%s", err.text);
    Tokenizer *tok;
    cr_assert_eq(tokenizer_load_json(&tok, MINILM), ST_OK, "%s", status_message());
    const char *end[] = {".", "\n", "[NEW0]"};
    json_t *texts = json_object_get(g, "texts");
    size_t multi = 0;
    for (size_t i = 0; i < json_array_size(texts); i++) {
        json_t *t = json_array_get(texts, i), *want = json_object_get(t, "chunks");
        const char *text = json_string_value(json_object_get(t, "text"));
        size_t tl = 0;
        char *rt = malloc(8 * strlen(text) + 1);
        for (const char *p = text; *p; p++) tl += (size_t)sprintf(rt + tl, "%s", *p == '\n' ? "[NEW0]" : (char[]){*p, 0});
        char **chunks;
        size_t n;
        cr_assert_eq(lingua2_chunks(tok, rt, tl, end, 3, &chunks, &n), ST_OK, "%s", status_message());
        cr_expect_eq(n, json_array_size(want), "text %zu: %zu chunks", i, n);
        for (size_t k = 0; k < n && k < json_array_size(want); k++)
            cr_expect_str_eq(chunks[k], json_string_value(json_object_get(json_array_get(want, k), "text")), "text %zu chunk %zu",
                             i, k);
        multi += n > 1;
        for (size_t k = 0; k < n; k++) free(chunks[k]);
        free(chunks);
        free(rt);
    }
    cr_expect_geq(multi, 2, "the golden has multi-chunk texts");
    tokenizer_free(tok);
    json_decref(g);
}

static Status fixed_scores(void *ctx, const char *chunk, size_t len, Lingua2Scores *out) {
    (void)chunk;
    (void)len;
    int *calls = ctx;
    (*calls)++;
    static const char *toks[] = {"[CLS]", "hello", "##world", "?", "[NEW0]", "foo", "[UNK]", "bar", "[SEP]"};
    static const float probs[] = {0.9f, 0.1f, 0.3f, 0.1f, 0.05f, 0.6f, 0.9f, 0.7f, 0.9f};
    out->n = 9;
    out->tokens = calloc(9, sizeof *out->tokens);
    out->probs = calloc(9, sizeof *out->probs);
    for (int i = 0; i < 9; i++) {
        out->tokens[i] = strdup(toks[i]);
        out->probs[i] = probs[i];
    }
    return ST_OK;
}

// Word merge, forcing and the threshold, with a byte-level stand-in for cl100k
// (a word weighs its byte count): words helloworld 0.2 (x10), ? 1.0, \n 1.0,
// foo 0.6 (x3), bar 0.7 (x3); [CLS] [UNK] [SEP] skipped.
Test(compress, lingua2_word_merge_and_threshold) {
    Tokenizer *tok, *bytes;
    char path[256];
    cr_assert_eq(tokenizer_load_json(&tok, MINILM), ST_OK, "%s", status_message());
    cr_assert_eq(tokenizer_load_tiktoken(&bytes, tu_tiny_tiktoken(-1, NULL, path, sizeof path)), ST_OK, "%s", status_message());
    const char *force[] = {"\n", "?"};
    int calls = 0;
    Lingua2 c = {tok, bytes, fixed_scores, &calls, force, 2};
    char *s;
    cr_assert_eq(lingua2_compress(&c, "Some text.\nMore?", 16, 0.5, &s, NULL), ST_OK, "%s", status_message());
    cr_expect_str_eq(s, "? \n foo bar"); // thr = percentile(.., 51) = 0.2
    free(s);
    cr_assert_eq(lingua2_compress(&c, "Some text.\nMore?", 16, 0.2, &s, NULL), ST_OK, "%s", status_message());
    cr_expect_str_eq(s, "? \n"); // thr = 0.7
    free(s);
    cr_expect_eq(calls, 2);
    cr_assert_eq(lingua2_compress(&c, "Some text.\nMore?", 16, 1.0, &s, NULL), ST_OK, "%s", status_message());
    cr_expect_str_eq(s, "some text. \n more?"); // no classifier call; lowercased, re-spaced
    free(s);
    cr_expect_eq(calls, 2);
    tokenizer_free(bytes);
    tokenizer_free(tok);
}
