// Score-head labels: the label file (round trip, bad input), WordPiece words and
// chunks, the artifact's greedy match, self-information per word against a
// direct computation from the LLM's logits, and labelled texts -> training
// sequences (paper and artifact layouts).
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_util.h"
#include "tlm/labels.h"
#include "tlm/score_data.h"

#define MINILM_TOK "tests/fixtures/tokenizers/minilm-tokenizer.json.gz"

static Tokenizer *load_minilm(void) {
    Tokenizer *t;
    cr_assert_eq(tokenizer_load_json(&t, MINILM_TOK), ST_OK, "%s", status_message());
    return t;
}

static void expect_spans(const int32_t *s, const int32_t *e, int n, const char *text, const char *const *want, int nw) {
    cr_assert_eq(n, nw, "%d words, want %d", n, nw);
    for (int i = 0; i < n; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%.*s", e[i] - s[i], text + s[i]);
        cr_expect_str_eq(buf, want[i], "word %d", i);
    }
}

Test(tlm_labels, words_join_wordpieces) {
    Tokenizer *t = load_minilm();
    const char *text = "Unbelievably, tokenization works (really).";
    int32_t *s, *e;
    int n;
    cr_assert_eq(labels_words(t, text, (int32_t)strlen(text), &s, &e, &n), ST_OK, "%s", status_message());
    const char *want[] = {"Unbelievably", ",", "tokenization", "works", "(", "really", ")", "."};
    expect_spans(s, e, n, text, want, 8);
    free(s), free(e);
    tokenizer_free(t);
}

Test(tlm_labels, chunks_cut_after_a_period) {
    Tokenizer *t = load_minilm();
    const char *text = "one two three. four five six seven. eight nine";
    int32_t *s, *e;
    int n;
    // windows of 6 pieces: "one two three ." fits (4), the second sentence would end at piece 9
    cr_assert_eq(labels_chunks(t, text, (int32_t)strlen(text), 6, &s, &e, &n), ST_OK, "%s", status_message());
    const char *want[] = {"one two three.", "four five six seven.", "eight nine"};
    expect_spans(s, e, n, text, want, 3);
    free(s), free(e);
    // no period in the window: cut at the window's end
    const char *flat = "a b c d e f g";
    cr_assert_eq(labels_chunks(t, flat, (int32_t)strlen(flat), 3, &s, &e, &n), ST_OK);
    const char *want2[] = {"a b c", "d e f", "g"};
    expect_spans(s, e, n, flat, want2, 3);
    free(s), free(e);
    tokenizer_free(t);
}

// Chunks cut at periods can be far shorter than the window: many of them in one text.
Test(tlm_labels, many_short_chunks) {
    Tokenizer *t = load_minilm();
    char text[4000] = "";
    for (int i = 0; i < 200; i++) strcat(text, "a . a a a a a a . ");
    int32_t *s, *e;
    int n;
    cr_assert_eq(labels_chunks(t, text, (int32_t)strlen(text), 8, &s, &e, &n), ST_OK, "%s", status_message());
    cr_expect_geq(n, 400);
    for (int i = 1; i < n; i++) cr_expect_gt(s[i], e[i - 1]);
    free(s), free(e);
    tokenizer_free(t);
}

Test(tlm_labels, greedy_match_is_in_order) {
    Tokenizer *t = load_minilm();
    LabelledText lt;
    cr_assert_eq(labels_match(t, "The quick brown fox jumps over the lazy dog", "quick fox the dog", 510, &lt), ST_OK);
    int want[] = {0, 1, 0, 1, 0, 0, 1, 0, 1};
    cr_assert_eq(lt.n_spans, 9);
    for (int i = 0; i < 9; i++) cr_expect_eq(lt.spans[i].label, want[i], "piece %d", i);
    // in order only: "dog" is matched first, so nothing before it can match "the" afterwards
    free(lt.text), free(lt.spans);
    cr_assert_eq(labels_match(t, "the dog the cat", "dog the", 510, &lt), ST_OK);
    int want2[] = {0, 1, 1, 0};
    for (int i = 0; i < 4; i++) cr_expect_eq(lt.spans[i].label, want2[i], "piece %d", i);
    free(lt.text), free(lt.spans);
    tokenizer_free(t);
}

Test(tlm_labels, file_round_trip_and_pairs) {
    Tokenizer *t = load_minilm();
    char dir[256], path[512], out[512];
    tu_make_temp_dir(dir, sizeof dir, "labels");
    tu_write_file_in(dir, "pairs.jsonl",
                     "{\"prompt\": \"Alpha beta gamma.\", \"compressed_prompt\": \"alpha gamma\"}\n\n"
                     "{\"prompt_list\": [\"one two\", \"three four\"], \"compressed_prompt_list\": [\"two\", \"three\"]}\n");
    snprintf(path, sizeof path, "%s/pairs.jsonl", dir);
    LabelSet s = {0};
    cr_assert_eq(labels_from_pairs(&s, t, path, 510, -1), ST_OK, "%s", status_message());
    cr_assert_eq(s.n, 3);
    LabelSet one = {0};
    cr_assert_eq(labels_from_pairs(&one, t, path, 510, 1), ST_OK, "%s", status_message());
    cr_expect_eq(one.n, 1, "--limit counts records (lines)");
    labels_free(&one);
    cr_expect_eq(s.items[0].n_spans, 4); // alpha beta gamma .
    int want[] = {1, 0, 1, 0};
    for (int i = 0; i < 4; i++) cr_expect_eq(s.items[0].spans[i].label, want[i]);
    snprintf(out, sizeof out, "%s/labels.jsonl", dir);
    cr_assert_eq(labels_write(&s, out), ST_OK, "%s", status_message());
    LabelSet r = {0};
    cr_assert_eq(labels_read(&r, out), ST_OK, "%s", status_message());
    cr_assert_eq(r.n, s.n);
    for (int i = 0; i < s.n; i++) {
        cr_expect_str_eq(r.items[i].text, s.items[i].text);
        cr_assert_eq(r.items[i].n_spans, s.items[i].n_spans);
        cr_expect_eq(memcmp(r.items[i].spans, s.items[i].spans, (size_t)s.items[i].n_spans * sizeof(LabelSpan)), 0);
    }
    labels_free(&r);
    labels_free(&s);
    tu_remove_dir(dir);
    tokenizer_free(t);
}

Test(tlm_labels, bad_files_name_file_and_line) {
    struct {
        const char *content, *needle;
    } cases[] = {
        {"{\"text\": \"abc\", \"spans\": [[0, 2, 1]]}\nnot json\n", ":2: not JSON"},
        {"{\"text\": \"abc\", \"spans\": [[0, 9, 1]]}\n", "not inside the text of 3 bytes"},
        {"{\"text\": \"abcdef\", \"spans\": [[0, 3, 1], [2, 4, 0]]}\n", "sorted and disjoint"},
        {"{\"text\": \"abc\", \"spans\": [[0, 2, 2]]}\n", "label 2"},
        {"{\"spans\": []}\n", "field 'text'"},
        {"{\"text\": \"abc\", \"spans\": [[0, 2]]}\n", "[start, end, label]"},
        {"\n\n", "no labelled text"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[256];
        tu_write_temp(cases[i].content, strlen(cases[i].content), ".jsonl", path, sizeof path);
        LabelSet s = {0};
        tu_expect_err(labels_read(&s, path), ST_FORMAT, path, cases[i].needle, NULL);
        cr_expect_eq(s.n, 0);
        unlink(path);
    }
    Tokenizer *t = load_minilm();
    char path[256];
    const char *bad = "{\"prompt\": \"a b\"}\n";
    tu_write_temp(bad, strlen(bad), ".jsonl", path, sizeof path);
    LabelSet s = {0};
    tu_expect_err(labels_from_pairs(&s, t, path, 510, -1), ST_FORMAT, path, ":1:", "compressed_prompt");
    unlink(path);
    tokenizer_free(t);
}

// Self-information per word against a direct computation from the logits: the
// tiny Llama-3 fixture with a tokenizer whose tokens are the bytes.
Test(tlm_labels, word_information_sums_token_surprisal) {
    LlamaModel m;
    cr_assert_eq(llama_load(&m, "tests/fixtures/tiny-llama3-gqa"), ST_OK, "%s", status_message());
    char path[] = "/tmp/elastilm-bytes-XXXXXX";
    close(mkstemp(path));
    tu_write_byte_tokenizer(path);
    Tokenizer *bytes, *enc = load_minilm();
    cr_assert_eq(tokenizer_load_json(&bytes, path), ST_OK);
    unlink(path);
    const char *text = "Cats sleep, dogs bark.";
    int32_t len = (int32_t)strlen(text);
    double *info;
    int32_t *ws, *we;
    int nw;
    cr_assert_eq(labels_word_info(&m, bytes, enc, text, len, &info, &ws, &we, &nw), ST_OK, "%s", status_message());
    const char *want[] = {"Cats", "sleep", ",", "dogs", "bark", "."};
    expect_spans(ws, we, nw, text, want, 6);
    // BOS + bytes; byte j is token j + 1 and carries -log p(byte j | BOS, bytes < j)
    int T = len + 1;
    int32_t *ids = malloc((size_t)T * sizeof *ids);
    ids[0] = m.cfg.bos_token_id;
    for (int j = 0; j < len; j++) ids[j + 1] = (unsigned char)text[j];
    Tensor logits;
    tu_logits(&m, NULL, ids, 1, T, &logits);
    for (int w = 0; w < nw; w++) {
        double want_info = 0;
        for (int j = ws[w]; j < we[w]; j++) {
            const float *row = tensor_row_f32(&logits, j);
            double mx = row[0], z = 0;
            for (int v = 1; v < 256; v++) mx = row[v] > mx ? row[v] : mx;
            for (int v = 0; v < 256; v++) z += exp(row[v] - mx);
            want_info -= row[ids[j + 1]] - mx - log(z);
        }
        cr_expect(fabs(info[w] - want_info) <= 1e-4 * (1 + fabs(want_info)), "word %d: %g vs %g", w, info[w], want_info);
    }
    tensor_free(&logits);
    free(ids), free(info), free(ws), free(we);
    // labels: the top half of the words by information, '?' forced
    LabelSet s = {0};
    const char *doc = "Cats sleep, dogs bark? Birds sing.";
    int32_t dl = (int32_t)strlen(doc);
    SurprisalOptions o = {.keep_lo = 0.5, .keep_hi = 0.5, .seed = 1, .max_pieces = 510, .force = "?"};
    cr_assert_eq(labels_from_surprisal(&s, &m, bytes, enc, &doc, &dl, 1, &o, NULL), ST_OK, "%s", status_message());
    cr_assert_eq(s.n, 1);
    cr_assert_eq(labels_word_info(&m, bytes, enc, doc, dl, &info, &ws, &we, &nw), ST_OK);
    cr_assert_eq(s.items[0].n_spans, nw);
    int kept = 0;
    for (int w = 0; w < nw; w++) {
        int above = 0; // words strictly more informative
        for (int k = 0; k < nw; k++) above += info[k] > info[w];
        bool forced = we[w] - ws[w] == 1 && doc[ws[w]] == '?';
        int keep = (int)floor(0.5 * nw + 0.5);
        cr_expect_eq(s.items[0].spans[w].label, forced || above < keep, "word %d", w);
        kept += s.items[0].spans[w].label;
    }
    cr_expect_geq(kept, (int)floor(0.5 * nw + 0.5));
    free(info), free(ws), free(we);
    labels_free(&s);
    tokenizer_free(bytes);
    tokenizer_free(enc);
    llama_free(&m);
}

Test(tlm_labels, score_data_layouts) {
    Tokenizer *t = load_minilm();
    int32_t cls, sep, pad;
    cr_assert_eq(score_special_ids(t, &cls, &sep, &pad), ST_OK);
    LabelSet s = {0};
    char *text = strdup("Unbelievably good stuff");
    LabelSpan *sp = malloc(2 * sizeof *sp);
    sp[0] = (LabelSpan){0, 12, 1}; // Unbelievably: 5 pieces
    sp[1] = (LabelSpan){13, 17, 0}; // good; "stuff" has no span
    cr_assert_eq(labels_push(&s, text, (int32_t)strlen(text), sp, 2), ST_OK);
    ScoreData d;
    cr_assert_eq(score_data_build(&d, &s, t, 512, false), ST_OK, "%s", status_message());
    cr_assert_eq(d.n, 1);
    cr_assert_eq(d.n_tokens, 9); // [CLS] un ##bel ##ie ##va ##bly good stuff [SEP]
    int want[] = {-100, 1, 1, 1, 1, 1, 0, -100, -100};
    for (int i = 0; i < 9; i++) cr_expect_eq(d.targets[i], want[i], "token %d", i);
    cr_expect_eq(d.ids[0], cls);
    cr_expect_eq(d.ids[8], sep);
    cr_expect_eq(d.n_counted, 6);
    score_data_free(&d);
    // the artifact: padded to max_len, specials and pads labelled 1; truncation keeps [SEP]
    cr_assert_eq(score_data_build(&d, &s, t, 6, true), ST_OK);
    cr_assert_eq(d.n_tokens, 6);
    int want2[] = {1, 1, 1, 1, 1, 1};
    for (int i = 0; i < 6; i++) cr_expect_eq(d.targets[i], want2[i], "token %d", i);
    cr_expect_eq(d.ids[5], sep);
    score_data_free(&d);
    cr_assert_eq(score_data_build(&d, &s, t, 16, true), ST_OK);
    cr_expect_eq(d.ids[15], pad);
    cr_expect_eq(d.targets[15], 1);
    cr_expect_eq(d.targets[7], -100); // "stuff" has no label
    score_data_free(&d);
    labels_free(&s);
    tokenizer_free(t);
}
