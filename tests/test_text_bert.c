// BERT-family text processing against Hugging Face tokenizers 0.23.3: the
// normalizers (text and every output char's input span), the BERT-family
// pre-tokenizers (pieces and spans) and the WordPiece model. The expected
// values were printed by Python `tokenizers` (the calls are named above each
// table) and pasted here; offsets are input bytes.
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "text/tokenizer_internal.h"

typedef struct {
    int32_t start, end;
} Sp;

typedef struct {
    const char *name, *json; // the normalizer as tokenizer.json writes it
    const char *in;
    size_t in_len;           // bytes (inputs may hold NUL)
    const char *want;        // normalized text
    size_t n_chars;
    Sp spans[24];            // input span of each normalized char
} NormCase;

typedef struct {
    const char *text;
    int32_t start, end;
} WantPiece;

typedef struct {
    const char *name, *in;
    size_t n;
    WantPiece want[24];
} PreCase;

// Normalizer cases: HF's per-char alignments, from PreTokenizedString(in) normalized
// by the normalizer, split per char, get_splits(offset_referential='original',
// offset_type='byte') (tokenizers 0.23.3).
static const NormCase NORM_CASES[] = {
    {"nfd_precomposed", "{\"type\":\"NFD\"}",
     "é", 2, "e\u0301", 2,
     {{0, 2}, {0, 2}}},
    {"nfc_combining", "{\"type\":\"NFC\"}",
     "e\u0301", 3, "é", 1,
     {{0, 1}}},
    {"nfc_reordered_marks", "{\"type\":\"NFC\"}",
     "ḋ\u0323x", 6, "ḍ\u0307x", 3,
     {{0, 3}, {3, 5}, {5, 6}}},
    {"nfkc_ligature", "{\"type\":\"NFKC\"}",
     "ﬁx①", 7, "fix1", 4,
     {{0, 3}, {0, 3}, {3, 4}, {4, 7}}},
    {"nfkd_hangul", "{\"type\":\"NFKD\"}",
     "한ｶﾞ", 9, "한カ\u3099", 5,
     {{0, 3}, {0, 3}, {0, 3}, {3, 6}, {6, 9}}},
    {"lowercase_greek_cyrillic", "{\"type\":\"Lowercase\"}",
     "ΑΒΓ ΣΑΣ ДЖ İx", 22, "αβγ σασ дж i\u0307x", 14,
     {{0, 2}, {2, 4}, {4, 6}, {6, 7}, {7, 9}, {9, 11}, {11, 13}, {13, 14}, {14, 16}, {16, 18}, {18, 19}, {19, 21}, {19, 21}, {21, 22}}},
    {"strip_accents_after_nfd", "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFD\"},{\"type\":\"StripAccents\"},{\"type\":\"Lowercase\"}]}",
     "Crème Brûlée", 15, "creme brulee", 12,
     {{0, 1}, {1, 2}, {2, 4}, {4, 5}, {5, 6}, {6, 7}, {7, 8}, {8, 9}, {9, 11}, {11, 12}, {12, 14}, {14, 15}}},
    {"strip_both", "{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true}",
     " \t a b \n", 8, "a b", 3,
     {{3, 4}, {4, 5}, {5, 6}}},
    {"strip_right", "{\"type\":\"Strip\",\"strip_left\":false,\"strip_right\":true}",
     "  a\u3000", 6, "  a", 3,
     {{0, 1}, {1, 2}, {2, 3}}},
    {"prepend", "{\"type\":\"Prepend\",\"prepend\":\"\u2581\"}",
     "ab", 2, "\u2581ab", 3,
     {{0, 1}, {0, 1}, {1, 2}}},
    {"prepend_empty_input", "{\"type\":\"Prepend\",\"prepend\":\"\u2581\"}",
     "", 0, "", 0,
     {}},
    {"replace_space", "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\u2581\"}",
     "a b  c", 6, "a\u2581b\u2581\u2581c", 6,
     {{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 6}}},
    {"replace_longer", "{\"type\":\"Replace\",\"pattern\":{\"String\":\"ab\"},\"content\":\"XYZ\"}",
     "cabdab", 6, "cXYZdXYZ", 8,
     {{0, 1}, {2, 3}, {2, 3}, {2, 3}, {3, 4}, {5, 6}, {5, 6}, {5, 6}}},
    {"replace_delete", "{\"type\":\"Replace\",\"pattern\":{\"String\":\"é\"},\"content\":\"\"}",
     "éaé", 5, "a", 1,
     {{2, 3}}},
    {"bert_controls", "{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,\"strip_accents\":null,\"lowercase\":true}",
     "\x00" "A\ufffdb\u200bc\td\x07" "e\r\nf\x7f", 18, "abc de  f", 9,
     {{1, 2}, {5, 6}, {9, 10}, {10, 11}, {11, 12}, {13, 14}, {14, 15}, {15, 16}, {16, 17}}},
    {"bert_cjk", "{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,\"strip_accents\":null,\"lowercase\":true}",
     "中文ab日", 11, " 中  文 ab 日 ", 11,
     {{0, 3}, {0, 3}, {0, 3}, {3, 6}, {3, 6}, {3, 6}, {6, 7}, {7, 8}, {8, 11}, {8, 11}, {8, 11}}},
    {"bert_accents_nfc", "{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,\"strip_accents\":null,\"lowercase\":true}",
     "Café Ñ", 8, "cafe n", 6,
     {{0, 1}, {1, 2}, {2, 3}, {3, 5}, {5, 6}, {6, 8}}},
    {"bert_accents_nfd", "{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,\"strip_accents\":null,\"lowercase\":true}",
     "Cafe\u0301 N\u0303", 10, "cafe n", 6,
     {{0, 1}, {1, 2}, {2, 3}, {3, 4}, {6, 7}, {7, 8}}},
    {"bert_keep_accents", "{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,\"strip_accents\":false,\"lowercase\":true}",
     "Café", 5, "café", 4,
     {{0, 1}, {1, 2}, {2, 3}, {3, 5}}},
    {"bert_cased", "{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,\"strip_accents\":null,\"lowercase\":false}",
     "Café ΣΑ", 10, "Café ΣΑ", 7,
     {{0, 1}, {1, 2}, {2, 3}, {3, 5}, {5, 6}, {6, 8}, {8, 10}}},
    {"bert_emoji", "{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,\"strip_accents\":null,\"lowercase\":true}",
     "I ❤\ufe0f 👍\U0001f3fd!", 18, "i ❤ 👍\U0001f3fd!", 7,
     {{0, 1}, {1, 2}, {2, 5}, {8, 9}, {9, 13}, {13, 17}, {17, 18}}},
    {"bert_whitespace", "{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":false,\"strip_accents\":false,\"lowercase\":false}",
     "a\u00a0b\u3000c\u2003d\u2028e\xc2\x85" "f", 19, "a b c d ef", 10,
     {{0, 1}, {1, 3}, {3, 4}, {4, 7}, {7, 8}, {8, 11}, {11, 12}, {12, 15}, {15, 16}, {18, 19}}},
    {"bert_greek_cyrillic", "{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,\"strip_accents\":null,\"lowercase\":true}",
     "Άλφα Ёлка", 17, "αλφα елка", 9,
     {{0, 2}, {2, 4}, {4, 6}, {6, 8}, {8, 9}, {9, 11}, {11, 13}, {13, 15}, {15, 17}}},
};

// Pre-tokenizer cases: pre_tokenize_str(in) (char offsets converted to bytes).
static const PreCase PRE_CASES[] = {
    {"bert", "Hello, world!! (ok)... don't\u3000stop—now $5+3 ¿qué?", 24,
     {{"Hello", 0, 5}, {",", 5, 6}, {"world", 7, 12}, {"!", 12, 13}, {"!", 13, 14}, {"(", 15, 16}, {"ok", 16, 18}, {")", 18, 19}, {".", 19, 20}, {".", 20, 21}, {".", 21, 22}, {"don", 23, 26}, {"'", 26, 27}, {"t", 27, 28}, {"stop", 31, 35}, {"—", 35, 38}, {"now", 38, 41}, {"$", 42, 43}, {"5", 43, 44}, {"+", 44, 45}, {"3", 45, 46}, {"¿", 47, 49}, {"qué", 49, 53}, {"?", 53, 54}}},
    {"whitespace", "Hello, world!! it's 3.14 ²½ Ⓐb café_x\u00a0end", 14,
     {{"Hello", 0, 5}, {",", 5, 6}, {"world", 7, 12}, {"!!", 12, 14}, {"it", 15, 17}, {"'", 17, 18}, {"s", 18, 19}, {"3", 20, 21}, {".", 21, 22}, {"14", 22, 24}, {"²½", 25, 29}, {"Ⓐb", 30, 34}, {"café_x", 35, 42}, {"end", 44, 47}}},
    {"whitespace_split", " a\tb\u00a0c  d\u2028e ", 5,
     {{"a", 1, 2}, {"b", 3, 4}, {"c", 6, 7}, {"d", 9, 10}, {"e", 13, 14}}},
    {"punct_removed", "the-final--countdown!?", 3,
     {{"the", 0, 3}, {"final", 4, 9}, {"countdown", 11, 20}}},
    {"punct_isolated", "the-final--countdown!?", 8,
     {{"the", 0, 3}, {"-", 3, 4}, {"final", 4, 9}, {"-", 9, 10}, {"-", 10, 11}, {"countdown", 11, 20}, {"!", 20, 21}, {"?", 21, 22}}},
    {"punct_prev", "the-final--countdown!?", 5,
     {{"the-", 0, 4}, {"final-", 4, 10}, {"-", 10, 11}, {"countdown!", 11, 21}, {"?", 21, 22}}},
    {"punct_next", "-the-final--countdown!?", 6,
     {{"-the", 0, 4}, {"-final", 4, 10}, {"-", 10, 11}, {"-countdown", 11, 21}, {"!", 21, 22}, {"?", 22, 23}}},
    {"punct_contig", "the-final--countdown!?", 6,
     {{"the", 0, 3}, {"-", 3, 4}, {"final", 4, 9}, {"--", 9, 11}, {"countdown", 11, 20}, {"!?", 20, 22}}},
    {"digits_runs", "abc123d4 ٣٤½x", 7,
     {{"abc", 0, 3}, {"123", 3, 6}, {"d", 6, 7}, {"4", 7, 8}, {" ", 8, 9}, {"٣٤½", 9, 15}, {"x", 15, 16}}},
    {"digits_each", "abc123d4 ٣٤½x", 11,
     {{"abc", 0, 3}, {"1", 3, 4}, {"2", 4, 5}, {"3", 5, 6}, {"d", 6, 7}, {"4", 7, 8}, {" ", 8, 9}, {"٣", 9, 11}, {"٤", 11, 13}, {"½", 13, 15}, {"x", 15, 16}}},
};

// ---- helpers ------------------------------------------------------------------

static void load_normalizer(Normalizer *n, const char *text) {
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    cr_assert_not_null(j, "bad test JSON: %s", err.text);
    Status st = normalizer_from_json(n, j, "tokenizer.json: normalizer");
    json_decref(j);
    cr_assert_eq(st, ST_OK, "%s", status_message());
}

static void input_piece(Piece *p, const char *text, size_t len, int32_t base) {
    cr_assert_eq(piece_from_input(p, text, len, base), ST_OK);
}

// Checks p's text and the span of each of its chars.
static void expect_chars(const char *name, const Piece *p, const char *want, size_t n_chars, const Sp *spans) {
    cr_expect(p->len == strlen(want) && memcmp(p->text, want, p->len) == 0, "%s: got '%s', want '%s'", name, p->text,
              want);
    size_t k = 0;
    for (size_t i = 0; i < p->len; k++) {
        int n = utf8_len((const unsigned char *)p->text + i, p->len - i);
        cr_assert_gt(n, 0, "%s: invalid UTF-8 out", name);
        Span s = piece_span(p, i, i + (size_t)n);
        if (k < n_chars)
            cr_expect(s.start == spans[k].start && s.end == spans[k].end, "%s: char %zu spans [%d, %d), want [%d, %d)",
                      name, k, s.start, s.end, spans[k].start, spans[k].end);
        i += (size_t)n;
    }
    cr_expect_eq(k, n_chars, "%s: %zu chars, want %zu", name, k, n_chars);
}

static void expect_pieces(const char *name, const PieceList *l, size_t n, const WantPiece *want) {
    cr_assert_eq(l->n, n, "%s: %zu pieces, want %zu", name, l->n, n);
    for (size_t i = 0; i < n; i++) {
        const Piece *p = &l->items[i];
        Span s = piece_span(p, 0, p->len);
        cr_expect(p->len == strlen(want[i].text) && memcmp(p->text, want[i].text, p->len) == 0,
                  "%s: piece %zu is '%s', want '%s'", name, i, p->text, want[i].text);
        cr_expect(s.start == want[i].start && s.end == want[i].end, "%s: piece %zu spans [%d, %d), want [%d, %d)", name,
                  i, s.start, s.end, want[i].start, want[i].end);
    }
}

static Status run_pretokenizer(const char *name, PieceList *l) {
    if (strcmp(name, "bert") == 0) return pretok_bert(l);
    if (strcmp(name, "whitespace") == 0) return pretok_whitespace(l);
    if (strcmp(name, "whitespace_split") == 0) return pretok_whitespace_split(l);
    if (strcmp(name, "punct_removed") == 0) return pretok_punctuation(l, SPLIT_REMOVED);
    if (strcmp(name, "punct_isolated") == 0) return pretok_punctuation(l, SPLIT_ISOLATED);
    if (strcmp(name, "punct_prev") == 0) return pretok_punctuation(l, SPLIT_MERGED_PREVIOUS);
    if (strcmp(name, "punct_next") == 0) return pretok_punctuation(l, SPLIT_MERGED_NEXT);
    if (strcmp(name, "punct_contig") == 0) return pretok_punctuation(l, SPLIT_CONTIGUOUS);
    if (strcmp(name, "digits_runs") == 0) return pretok_digits(l, false);
    if (strcmp(name, "digits_each") == 0) return pretok_digits(l, true);
    cr_assert_fail("unknown pre-tokenizer case %s", name);
    return ST_USAGE;
}

// ---- normalizers ----------------------------------------------------------------

Test(text_bert, normalizers_match_hf_alignments) {
    for (size_t c = 0; c < sizeof NORM_CASES / sizeof NORM_CASES[0]; c++) {
        const NormCase *nc = &NORM_CASES[c];
        Normalizer n;
        load_normalizer(&n, nc->json);
        Piece p;
        input_piece(&p, nc->in, nc->in_len, 0);
        cr_assert_eq(normalizer_apply(&n, &p), ST_OK, "%s: %s", nc->name, status_message());
        expect_chars(nc->name, &p, nc->want, nc->n_chars, nc->spans);
        piece_free(&p);
        normalizer_free(&n);
    }
}

// A piece that starts deeper in the input (after an added token) keeps absolute spans.
Test(text_bert, normalizer_spans_are_absolute) {
    Normalizer n;
    load_normalizer(&n, "{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,"
                        "\"strip_accents\":null,\"lowercase\":true}");
    Piece p;
    input_piece(&p, "\xc3\xa9\xe4\xb8\xad", 5, 100); // "é中"
    cr_assert_eq(normalizer_apply(&n, &p), ST_OK);
    const Sp spans[] = {{100, 102}, {102, 105}, {102, 105}, {102, 105}};
    expect_chars("absolute", &p, "e \xe4\xb8\xad ", 4, spans);
    piece_free(&p);
    normalizer_free(&n);
}

Test(text_bert, normalizer_json_errors) {
    static const struct {
        const char *json;
        Status code;
        const char *needle;
    } cases[] = {
        {"{\"type\":\"Nmt\"}", ST_UNSUPPORTED, "tokenizer.json: normalizer: normalizer type 'Nmt' is not supported"},
        {"{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFC\"},{\"type\":\"Precompiled\"}]}", ST_UNSUPPORTED,
         "normalizers[1]: normalizer type 'Precompiled' is not supported"},
        {"{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"content\":\" \"}", ST_UNSUPPORTED, "Regex"},
        {"{\"type\":\"Sequence\"}", ST_FORMAT, "normalizers"},
        {"{\"type\":\"Prepend\"}", ST_FORMAT, "prepend"},
        {"{\"type\":\"BertNormalizer\",\"lowercase\":\"yes\"}", ST_FORMAT, "lowercase"},
        {"{\"prepend\":\"x\"}", ST_FORMAT, "type"},
        {"[]", ST_FORMAT, "object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = json_loads(cases[i].json, 0, NULL);
        cr_assert_not_null(j);
        Normalizer n;
        Status st = normalizer_from_json(&n, j, "tokenizer.json: normalizer");
        json_decref(j);
        const char *msg = status_message();
        cr_expect_eq(st, cases[i].code, "%s: got %s (%s)", cases[i].json, status_name(st), msg);
        cr_expect(strstr(msg, cases[i].needle) != NULL, "message lacks '%s': %s", cases[i].needle, msg);
        cr_expect(strchr(msg, '\n') == NULL, "message is not one line: %s", msg);
    }
}

// ---- pre-tokenizers -------------------------------------------------------------

Test(text_bert, pretokenizers_match_hf) {
    for (size_t c = 0; c < sizeof PRE_CASES / sizeof PRE_CASES[0]; c++) {
        const PreCase *pc = &PRE_CASES[c];
        PieceList l = {0};
        Piece p;
        input_piece(&p, pc->in, strlen(pc->in), 0);
        cr_assert_eq(pieces_push(&l, p), ST_OK);
        cr_assert_eq(run_pretokenizer(pc->name, &l), ST_OK, "%s: %s", pc->name, status_message());
        expect_pieces(pc->name, &l, pc->n, pc->want);
        pieces_free(&l);
    }
}

// BertNormalizer then BertPreTokenizer: the pieces keep the normalizer's spans.
// PreTokenizedString("Héllo, 中国! Ａ"), normalized by BertNormalizer(),
// BertPreTokenizer().pre_tokenize, get_splits(offset_type='byte'):
// [('hello', (0, 6)), (',', (6, 7)), ('中', (8, 11)), ('国', (11, 14)), ('!', (14, 15)), ('ａ', (16, 19))]
Test(text_bert, bert_pipeline_keeps_spans) {
    Normalizer n;
    load_normalizer(&n, "{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,"
                        "\"strip_accents\":null,\"lowercase\":true}");
    const char *text = "H\xc3\xa9llo, \xe4\xb8\xad\xe5\x9b\xbd! \xef\xbc\xa1";
    PieceList l = {0};
    Piece p;
    input_piece(&p, text, strlen(text), 0);
    cr_assert_eq(normalizer_apply(&n, &p), ST_OK);
    cr_assert_eq(pieces_push(&l, p), ST_OK);
    cr_assert_eq(pretok_bert(&l), ST_OK);
    const WantPiece want[] = {{"hello", 0, 6}, {",", 6, 7}, {"\xe4\xb8\xad", 8, 11}, {"\xe5\x9b\xbd", 11, 14},
                              {"!", 14, 15}, {"\xef\xbd\x81", 16, 19}};
    expect_pieces("bert pipeline", &l, 6, want);
    pieces_free(&l);
    normalizer_free(&n);
}

// Matched added tokens pass through untouched and in place; empty pieces vanish.
Test(text_bert, pretokenizers_skip_matched_tokens) {
    PieceList l = {0};
    Piece a, tok, empty, b;
    input_piece(&a, "a b", 3, 0);
    input_piece(&tok, "[MASK]", 6, 3);
    tok.token = 4;
    input_piece(&empty, "", 0, 9);
    input_piece(&b, "c,d ", 4, 9);
    cr_assert_eq(pieces_push(&l, a), ST_OK);
    cr_assert_eq(pieces_push(&l, tok), ST_OK);
    cr_assert_eq(pieces_push(&l, empty), ST_OK);
    cr_assert_eq(pieces_push(&l, b), ST_OK);
    cr_assert_eq(pretok_bert(&l), ST_OK);
    const WantPiece want[] = {{"a", 0, 1}, {"b", 2, 3}, {"[MASK]", 3, 9}, {"c", 9, 10}, {",", 10, 11}, {"d", 11, 12}};
    expect_pieces("skip matched", &l, 6, want);
    cr_expect_eq(l.items[2].token, 4);
    for (size_t i = 0; i < l.n; i++)
        if (i != 2) cr_expect_eq(l.items[i].token, -1);
    pieces_free(&l);
}

// ---- WordPiece ------------------------------------------------------------------

static void tiny_wordpiece(Model *m, int max_chars, bool with_unk) {
    static const char *vocab[] = {"[UNK]", "un", "##aff", "##able", "aff", "a", "##b", "\xc3\xa9", "##\xc3\xa9", "##a",
                                  "ca", "##fe"};
    memset(m, 0, sizeof *m);
    m->type = MODEL_WORDPIECE;
    cr_assert_eq(strmap_init(&m->vocab, 16), ST_OK);
    for (int i = with_unk ? 0 : 1; i < (int)(sizeof vocab / sizeof vocab[0]); i++)
        cr_assert_eq(strmap_put(&m->vocab, vocab[i], strlen(vocab[i]), i), ST_OK);
    m->unk_id = with_unk ? 0 : -1;
    m->wp_prefix = "##";
    m->max_input_chars_per_word = max_chars;
}

typedef struct {
    const char *word;
    int max_chars;
    size_t n;
    int32_t ids[4];
    Sp offsets[4];
} WpCase;

// Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=max))
// with pre_tokenizer WhitespaceSplit(): encode(word, add_special_tokens=False).ids / .offsets
// (chars converted to bytes); for "Café"/"CAFE\u0301" the normalizer is BertNormalizer().
static const WpCase WP_CASES[] = {
    {"unaffable", 100, 3, {1, 2, 3}, {{0, 2}, {2, 5}, {5, 9}}},
    {"unaffablex", 100, 1, {0}, {{0, 10}}},
    {"unaffable", 5, 1, {0}, {{0, 9}}},
    {"\xc3\xa9\xc3\xa9", 5, 2, {7, 8}, {{0, 2}, {2, 4}}},
    {"aba", 100, 3, {5, 6, 9}, {{0, 1}, {1, 2}, {2, 3}}},
    {"a\xc3\xa9", 100, 2, {5, 8}, {{0, 1}, {1, 3}}},
};

static void expect_tokens(const char *name, const TokenList *out, size_t n, const int32_t *ids, const Sp *offsets) {
    cr_assert_eq(out->n, n, "%s: %zu tokens, want %zu", name, out->n, n);
    for (size_t i = 0; i < n; i++) {
        cr_expect_eq(out->ids[i], ids[i], "%s: token %zu is %d, want %d", name, i, out->ids[i], ids[i]);
        cr_expect(out->starts[i] == offsets[i].start && out->ends[i] == offsets[i].end,
                  "%s: token %zu at [%d, %d), want [%d, %d)", name, i, out->starts[i], out->ends[i], offsets[i].start,
                  offsets[i].end);
    }
}

Test(text_bert, wordpiece_matches_hf) {
    for (size_t c = 0; c < sizeof WP_CASES / sizeof WP_CASES[0]; c++) {
        const WpCase *wc = &WP_CASES[c];
        Model m;
        tiny_wordpiece(&m, wc->max_chars, true);
        Piece p;
        input_piece(&p, wc->word, strlen(wc->word), 0);
        TokenList out = {0};
        cr_assert_eq(wordpiece_encode_piece(&m, &p, &out), ST_OK, "%s", status_message());
        expect_tokens(wc->word, &out, wc->n, wc->ids, wc->offsets);
        token_list_free(&out);
        piece_free(&p);
        strmap_free(&m.vocab);
    }
}

// Offsets come from the normalized piece's spans: "CAFE\u0301" normalizes to
// "cafe" and "##fe" ends where "E" ends (HF drops the removed accent).
// HF: BertNormalizer + BertPreTokenizer + WordPiece (vocab [UNK] ca ##fe; the ids
// here are this file's): 'Café' -> [(0, 2), (2, 5)],
// 'CAFE\u0301' -> [(0, 2), (2, 4)], 'xCafé' -> [UNK] (0, 6).
Test(text_bert, wordpiece_offsets_follow_normalizer) {
    static const struct {
        const char *in;
        size_t n;
        int32_t ids[2];
        Sp offsets[2];
    } cases[] = {
        {"Caf\xc3\xa9", 2, {10, 11}, {{0, 2}, {2, 5}}},
        {"CAFE\xcc\x81", 2, {10, 11}, {{0, 2}, {2, 4}}},
        {"xCaf\xc3\xa9", 1, {0}, {{0, 6}}},
    };
    Normalizer n;
    load_normalizer(&n, "{\"type\":\"BertNormalizer\",\"clean_text\":true,\"handle_chinese_chars\":true,"
                        "\"strip_accents\":null,\"lowercase\":true}");
    Model m;
    tiny_wordpiece(&m, 100, true);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        Piece p;
        input_piece(&p, cases[c].in, strlen(cases[c].in), 0);
        cr_assert_eq(normalizer_apply(&n, &p), ST_OK);
        TokenList out = {0};
        cr_assert_eq(wordpiece_encode_piece(&m, &p, &out), ST_OK, "%s", status_message());
        expect_tokens(cases[c].in, &out, cases[c].n, cases[c].ids, cases[c].offsets);
        token_list_free(&out);
        piece_free(&p);
    }
    strmap_free(&m.vocab);
    normalizer_free(&n);
}

Test(text_bert, wordpiece_without_unk_fails_cleanly) {
    Model m;
    tiny_wordpiece(&m, 100, false);
    Piece p;
    input_piece(&p, "zzz", 3, 0);
    TokenList out = {0};
    Status st = wordpiece_encode_piece(&m, &p, &out);
    cr_expect_eq(st, ST_FORMAT);
    cr_expect(strstr(status_message(), "unknown token") != NULL, "%s", status_message());
    cr_expect_eq(out.n, 0);
    token_list_free(&out);
    piece_free(&p);
    strmap_free(&m.vocab);
}
