// Training data (host/train/data.c): the Alpaca template and LLM-Pruner's
// tokenization (LLMPruner/post_training.py: truncation to the cutoff, EOS when absent
// and there is room, the prompt masked unless train_on_inputs), next-token
// targets, plain-text documents cut into windows, the seeded validation split,
// and one clear message (file and line or record) for every kind of bad input.
//
// The byte-level fixture tokenizer maps every byte b to id b and adds no
// special tokens, so the expected token ids are the bytes of the text.
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "test_util.h"
#include "train/data.h"

#define DIR "tests/fixtures/train/"
#define EOS 2

#define OK(expr) do { Status st_ = (expr); cr_assert_eq(st_, ST_OK, "%s: %s", #expr, status_message()); } while (0)

// The templates exactly as LLM-Pruner's utils/prompter.py gives them.
#define SPEC_WITH_INPUT                                                                                              \
    "Below is an instruction that describes a task, paired with an input that provides further context. Write a "   \
    "response that appropriately completes the request.\n\n### Instruction:\n%s\n\n### Input:\n%s\n\n### Response:\n"
#define SPEC_NO_INPUT                                                                                                \
    "Below is an instruction that describes a task. Write a response that appropriately completes the "            \
    "request.\n\n### Instruction:\n%s\n\n### Response:\n"

static char g_dir[256];
static Tokenizer *g_tok;

static void setup(void) {
    tu_make_temp_dir(g_dir, sizeof g_dir, "data");
    OK(tokenizer_load_json(&g_tok, DIR "byte-tokenizer.json"));
}

static void teardown(void) {
    tokenizer_free(g_tok);
    g_tok = NULL;
    tu_remove_dir(g_dir);
}

TestSuite(train_data, .init = setup, .fini = teardown);

// Writes content to g_dir/name; the path goes into buf.
static const char *write_file(char *buf, size_t n, const char *name, const char *content, size_t len) {
    snprintf(buf, n, "%s/%s", g_dir, name);
    FILE *fp = fopen(buf, "wb");
    cr_assert_not_null(fp, "cannot create %s", buf);
    cr_assert_eq(fwrite(content, 1, len, fp), len);
    fclose(fp);
    return buf;
}

static const char *write_text(char *buf, size_t n, const char *name, const char *content) {
    return write_file(buf, n, name, content, strlen(content));
}

static const char *write_gz(char *buf, size_t n, const char *name, const char *content, size_t len) {
    snprintf(buf, n, "%s/%s", g_dir, name);
    gzFile gz = gzopen(buf, "wb");
    cr_assert_not_null(gz, "cannot create %s", buf);
    cr_assert_eq(gzwrite(gz, content, (unsigned)len), (int)len);
    cr_assert_eq(gzclose(gz), Z_OK);
    return buf;
}

static DataOptions opts(DataFormat fmt, int cutoff, bool train_on_inputs, int eos) {
    return (DataOptions){.format = fmt, .cutoff = cutoff, .train_on_inputs = train_on_inputs, .eos_id = eos};
}

// The prompt from the spec's literal template (not from alpaca_prompt); malloc'd.
static char *spec_prompt(const char *instruction, const char *input) {
    char *out = NULL;
    int rc = input && *input ? asprintf(&out, SPEC_WITH_INPUT, instruction, input)
                             : asprintf(&out, SPEC_NO_INPUT, instruction);
    cr_assert(rc > 0);
    return out;
}

// Sequence i must be the bytes of text (its first n_bytes of them), then EOS if eos.
static void expect_seq(const TokenData *d, int i, const char *text, int n_bytes, bool eos, int n_masked) {
    cr_assert_lt(i, d->n);
    int len = data_len(d, i), want = n_bytes + (eos ? 1 : 0);
    cr_assert_eq(len, want, "sequence %d: %d tokens, expected %d", i, len, want);
    const int32_t *ids = d->ids + d->start[i];
    for (int p = 0; p < n_bytes; p++)
        cr_assert_eq(ids[p], (int32_t)(unsigned char)text[p], "sequence %d, token %d: %d, expected byte %d ('%c')", i,
                     p, ids[p], (unsigned char)text[p], text[p]);
    if (eos) cr_assert_eq(ids[n_bytes], EOS, "sequence %d ends with %d, not EOS", i, ids[n_bytes]);
    cr_assert_eq(d->n_masked[i], n_masked, "sequence %d: %d masked, expected %d", i, d->n_masked[i], n_masked);
}

// Loading must fail; d must come back empty.
static void expect_load_err(const char *path, const DataOptions *o, Status code, const char *n1, const char *n2,
                            const char *n3) {
    TokenData d;
    Status st = data_load(&d, path, g_tok, o);
    tu_expect_err(st, code, n1, n2, n3);
    cr_expect(d.ids == NULL && d.start == NULL && d.n_masked == NULL && d.n == 0, "a failed load left data behind");
}

static void expect_same_data(const TokenData *a, const TokenData *b, const char *what) {
    cr_assert_eq(a->n, b->n, "%s: %d vs %d sequences", what, a->n, b->n);
    cr_assert_eq(a->dropped, b->dropped, "%s: dropped %d vs %d", what, a->dropped, b->dropped);
    cr_assert_eq(memcmp(a->start, b->start, ((size_t)a->n + 1) * sizeof *a->start), 0, "%s: sequence starts differ", what);
    cr_assert_eq(memcmp(a->n_masked, b->n_masked, (size_t)a->n * sizeof *a->n_masked), 0, "%s: masks differ", what);
    cr_assert_eq(memcmp(a->ids, b->ids, (size_t)a->start[a->n] * sizeof *a->ids), 0, "%s: tokens differ", what);
}

// ---- alpaca ----------------------------------------------------------------------------

Test(train_data, alpaca_prompt_is_the_spec_template) {
    char *p = alpaca_prompt("Add the numbers.", "2 and 3");
    cr_assert_not_null(p);
    cr_expect_str_eq(p, "Below is an instruction that describes a task, paired with an input that provides further "
                        "context. Write a response that appropriately completes the request.\n\n"
                        "### Instruction:\nAdd the numbers.\n\n### Input:\n2 and 3\n\n### Response:\n");
    free(p);
    p = alpaca_prompt("Say hi.", NULL);
    cr_assert_not_null(p);
    cr_expect_str_eq(p, "Below is an instruction that describes a task. Write a response that appropriately "
                        "completes the request.\n\n### Instruction:\nSay hi.\n\n### Response:\n");
    free(p);
    p = alpaca_prompt("Say hi.", ""); // an empty input is no input (prompter.py: `if input:`)
    cr_assert_not_null(p);
    cr_expect_str_eq(p, "Below is an instruction that describes a task. Write a response that appropriately "
                        "completes the request.\n\n### Instruction:\nSay hi.\n\n### Response:\n");
    free(p);
    // The instruction and input go in verbatim, '%' included.
    p = alpaca_prompt("100% %s %d", "a%nb");
    cr_assert_not_null(p);
    char *want = spec_prompt("100% %s %d", "a%nb");
    cr_expect_str_eq(p, want);
    cr_expect(strstr(p, "\n100% %s %d\n") && strstr(p, "\na%nb\n"), "%s", p);
    free(want);
    free(p);
}

static const char *const RECORDS =
    "{\"instruction\": \"Name a colour.\", \"output\": \"blue\"}\n"
    "{\"instruction\": \"Repeat the word.\", \"input\": \"tree\", \"output\": \"tree tree\"}\n"
    "\n"
    "   \n"
    "{\"output\": \"x\\ny\", \"input\": \"\", \"instruction\": \"Two lines.\"}\n";

static const char *const REC_INSTR[3] = {"Name a colour.", "Repeat the word.", "Two lines."};
static const char *const REC_INPUT[3] = {NULL, "tree", ""};
static const char *const REC_OUTPUT[3] = {"blue", "tree tree", "x\ny"};

Test(train_data, alpaca_record_tokens_and_mask) {
    char path[512];
    write_text(path, sizeof path, "records.jsonl", RECORDS);
    TokenData d;
    DataOptions o = opts(DATA_AUTO, 256, false, EOS);
    OK(data_load(&d, path, g_tok, &o));
    cr_assert_eq(d.n, 3, "%d sequences", d.n);
    cr_expect_eq(d.dropped, 0);
    cr_expect_eq(d.start[0], 0);
    for (int i = 0; i < 3; i++) {
        char *prompt = spec_prompt(REC_INSTR[i], REC_INPUT[i]), *full = NULL;
        cr_assert(asprintf(&full, "%s%s", prompt, REC_OUTPUT[i]) > 0);
        expect_seq(&d, i, full, (int)strlen(full), true, (int)strlen(prompt));
        free(prompt);
        free(full);
    }
    data_free(&d);
    cr_expect(d.ids == NULL && d.n == 0);

    // No EOS id: no EOS token.
    o = opts(DATA_AUTO, 256, false, -1);
    OK(data_load(&d, path, g_tok, &o));
    cr_assert_eq(d.n, 3);
    for (int i = 0; i < 3; i++) {
        char *prompt = spec_prompt(REC_INSTR[i], REC_INPUT[i]), *full = NULL;
        cr_assert(asprintf(&full, "%s%s", prompt, REC_OUTPUT[i]) > 0);
        expect_seq(&d, i, full, (int)strlen(full), false, (int)strlen(prompt));
        free(prompt);
        free(full);
    }
    data_free(&d);

    // train_on_inputs: nothing masked.
    o = opts(DATA_AUTO, 256, true, EOS);
    OK(data_load(&d, path, g_tok, &o));
    cr_assert_eq(d.n, 3);
    for (int i = 0; i < 3; i++) {
        char *prompt = spec_prompt(REC_INSTR[i], REC_INPUT[i]), *full = NULL;
        cr_assert(asprintf(&full, "%s%s", prompt, REC_OUTPUT[i]) > 0);
        expect_seq(&d, i, full, (int)strlen(full), true, 0);
        free(prompt);
        free(full);
    }
    data_free(&d);
}

Test(train_data, alpaca_eos_already_present_is_not_doubled) {
    // The output ends with the EOS byte itself (id 2): HF appends EOS only when absent.
    char path[512];
    write_text(path, sizeof path, "eos.jsonl", "{\"instruction\": \"i\", \"output\": \"ab\\u0002\"}\n");
    TokenData d;
    DataOptions o = opts(DATA_ALPACA, 256, false, EOS);
    OK(data_load(&d, path, g_tok, &o));
    char *prompt = spec_prompt("i", NULL), *full = NULL;
    cr_assert(asprintf(&full, "%sab\x02", prompt) > 0);
    expect_seq(&d, 0, full, (int)strlen(full), false, (int)strlen(prompt));
    free(prompt);
    free(full);
    data_free(&d);
}

Test(train_data, alpaca_cutoff) {
    // Record 0 has a short prompt, record 1 a prompt longer than the cutoff used below.
    char path[512], long_instr[200];
    memset(long_instr, 'z', sizeof long_instr - 1);
    long_instr[sizeof long_instr - 1] = 0;
    char *content = NULL;
    cr_assert(asprintf(&content,
                       "{\"instruction\": \"Name a colour.\", \"output\": \"blue sky\"}\n"
                       "{\"instruction\": \"%s\", \"output\": \"ok\"}\n",
                       long_instr) > 0);
    write_text(path, sizeof path, "cut.jsonl", content);
    free(content);
    char *prompt = spec_prompt("Name a colour.", NULL), *full = NULL;
    cr_assert(asprintf(&full, "%sblue sky", prompt) > 0);
    int P = (int)strlen(prompt), F = (int)strlen(full);
    char *prompt1 = spec_prompt(long_instr, NULL);
    int P1 = (int)strlen(prompt1);
    free(prompt1);
    cr_assert_gt(P1, F + 1);

    TokenData d;
    // Room for everything and EOS.
    DataOptions o = opts(DATA_ALPACA, F + 1, false, EOS);
    OK(data_load(&d, path, g_tok, &o));
    cr_assert_eq(d.n, 1, "%d sequences", d.n);
    cr_expect_eq(d.dropped, 1, "the record whose prompt fills the cutoff is dropped (dropped = %d)", d.dropped);
    expect_seq(&d, 0, full, F, true, P);
    data_free(&d);

    // Exactly full: no room for EOS.
    o.cutoff = F;
    OK(data_load(&d, path, g_tok, &o));
    cr_assert_eq(d.n, 1);
    expect_seq(&d, 0, full, F, false, P);
    data_free(&d);

    // Truncated into the response: cutoff tokens, no EOS, the prompt still masked.
    o.cutoff = P + 3;
    OK(data_load(&d, path, g_tok, &o));
    cr_assert_eq(d.n, 1);
    expect_seq(&d, 0, full, P + 3, false, P);
    cr_expect_eq(data_counted(&d, 0), 3);
    data_free(&d);

    // Truncated to the prompt alone: nothing to predict, the record is dropped; with both dropped, an error.
    o.cutoff = P;
    expect_load_err(path, &o, ST_FORMAT, path, "no training sequence", "2 records");

    // ... unless the prompt is trained on too.
    o = opts(DATA_ALPACA, P, true, EOS);
    OK(data_load(&d, path, g_tok, &o));
    cr_assert_eq(d.n, 2);
    cr_expect_eq(d.dropped, 0);
    expect_seq(&d, 0, full, P, false, 0);
    cr_expect_eq(data_len(&d, 1), P);
    data_free(&d);
    free(prompt);
    free(full);
}

// t[p] for sequence i computed from the definition (HF labels shifted by one).
static void expect_targets(const TokenData *d, int i) {
    int len = data_len(d, i), m = d->n_masked[i];
    const int32_t *ids = d->ids + d->start[i];
    int32_t *t = malloc((size_t)len * sizeof *t);
    for (int p = 0; p < len; p++) t[p] = 12345;
    data_targets(d, i, t);
    int counted = 0;
    for (int p = 0; p < len; p++) {
        int32_t want = p == len - 1 ? -1 : (p + 1 < m ? -1 : ids[p + 1]);
        cr_assert_eq(t[p], want, "sequence %d (len %d, masked %d): target %d is %d, expected %d", i, len, m, p, t[p], want);
        counted += t[p] >= 0;
    }
    cr_expect_eq(data_counted(d, i), counted, "sequence %d: data_counted %d, %d targets", i, data_counted(d, i), counted);
    free(t);
}

Test(train_data, targets_and_counted) {
    char path[512];
    write_text(path, sizeof path, "records.jsonl", RECORDS);
    TokenData d;
    DataOptions o = opts(DATA_AUTO, 256, false, EOS);
    OK(data_load(&d, path, g_tok, &o));
    cr_assert_eq(d.n, 3);
    for (int i = 0; i < d.n; i++) {
        int len = data_len(&d, i), m = d.n_masked[i];
        int32_t *t = malloc((size_t)len * sizeof *t);
        data_targets(&d, i, t);
        const int32_t *ids = d.ids + d.start[i];
        // Explicitly: prompt positions -1 except the last, which predicts the response's first token.
        for (int p = 0; p < m - 1; p++) cr_assert_eq(t[p], -1, "sequence %d, prompt position %d: %d", i, p, t[p]);
        cr_assert_eq(t[m - 1], (int32_t)(unsigned char)REC_OUTPUT[i][0], "sequence %d: the last prompt position predicts %d", i,
                     t[m - 1]);
        cr_assert_eq(t[len - 2], EOS, "sequence %d: the last response position predicts %d, not EOS", i, t[len - 2]);
        cr_assert_eq(t[len - 1], -1);
        cr_expect_eq(data_counted(&d, i), len - m, "sequence %d", i);
        cr_expect_eq(data_counted(&d, i), (int)strlen(REC_OUTPUT[i]) + 1, "sequence %d: the response and EOS", i);
        for (int p = m; p < len - 1; p++) cr_assert_eq(t[p], ids[p + 1]);
        free(t);
        expect_targets(&d, i);
    }
    data_free(&d);

    o.train_on_inputs = true;
    OK(data_load(&d, path, g_tok, &o));
    for (int i = 0; i < d.n; i++) {
        cr_expect_eq(data_counted(&d, i), data_len(&d, i) - 1);
        expect_targets(&d, i);
    }
    data_free(&d);
}

Test(train_data, targets_edge_masks) {
    // Hand-made data: masks 0, 1, 2 and len - 1 on a 5-token sequence.
    int32_t ids[20] = {10, 11, 12, 13, 14, 10, 11, 12, 13, 14, 10, 11, 12, 13, 14, 10, 11, 12, 13, 14};
    int64_t start[5] = {0, 5, 10, 15, 20};
    int32_t masked[4] = {0, 1, 2, 4};
    TokenData d = {.ids = ids, .start = start, .n_masked = masked, .n = 4};
    int want_counted[4] = {4, 4, 3, 1};
    for (int i = 0; i < 4; i++) {
        cr_expect_eq(data_counted(&d, i), want_counted[i], "mask %d: counted %d", masked[i], data_counted(&d, i));
        expect_targets(&d, i);
    }
    int32_t t[5];
    data_targets(&d, 3, t);
    int32_t want[5] = {-1, -1, -1, 14, -1};
    cr_expect_eq(memcmp(t, want, sizeof t), 0, "mask 4: %d %d %d %d %d", t[0], t[1], t[2], t[3], t[4]);
}

// The fixture's records as a JSON array (.json) text.
static char *fixture_as_array(void) {
    size_t len;
    char *text = (char *)tu_read_file(DIR "alpaca.jsonl", &len);
    json_t *arr = json_array();
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t err;
        json_t *v = json_loads(line, 0, &err);
        cr_assert_not_null(v, "%s: %s", DIR "alpaca.jsonl", err.text);
        json_array_append_new(arr, v);
    }
    free(text);
    char *out = json_dumps(arr, JSON_INDENT(2));
    json_decref(arr);
    return out;
}

Test(train_data, alpaca_json_array_and_jsonl_gz_agree) {
    TokenData ref, d;
    DataOptions o = opts(DATA_AUTO, 256, false, EOS);
    OK(data_load(&ref, DIR "alpaca.jsonl", g_tok, &o));
    cr_assert_eq(ref.n, 48, "%d sequences from the 48 records", ref.n);
    cr_expect_eq(ref.dropped, 0);
    // Records 0 and 1 checked independently; record 0 (257 bytes) is cut at 256, without EOS.
    char *prompt = spec_prompt("Name a word that goes with light.", "context 0"), *full = NULL;
    cr_assert(asprintf(&full, "%sblue light", prompt) > 0);
    cr_assert_eq(strlen(full), 257);
    expect_seq(&ref, 0, full, 256, false, (int)strlen(prompt));
    free(prompt);
    free(full);
    prompt = spec_prompt("Name a word that goes with fast.", NULL);
    cr_assert(asprintf(&full, "%slight fast", prompt) > 0);
    expect_seq(&ref, 1, full, (int)strlen(full), true, (int)strlen(prompt));
    free(prompt);
    free(full);

    char path[512];
    char *arr = fixture_as_array();
    write_text(path, sizeof path, "alpaca.json", arr);
    OK(data_load(&d, path, g_tok, &o));
    expect_same_data(&ref, &d, ".json array");
    data_free(&d);

    write_gz(path, sizeof path, "alpaca.json.gz", arr, strlen(arr));
    OK(data_load(&d, path, g_tok, &o));
    expect_same_data(&ref, &d, ".json.gz array");
    data_free(&d);
    free(arr);

    size_t len;
    uint8_t *lines = tu_read_file(DIR "alpaca.jsonl", &len);
    write_gz(path, sizeof path, "alpaca.jsonl.gz", (const char *)lines, len);
    OK(data_load(&d, path, g_tok, &o));
    expect_same_data(&ref, &d, ".jsonl.gz");
    data_free(&d);
    // Without a trailing newline, and with CRLF line ends.
    cr_assert_eq(lines[len - 1], '\n');
    write_file(path, sizeof path, "no-newline.jsonl", (const char *)lines, len - 1);
    OK(data_load(&d, path, g_tok, &o));
    expect_same_data(&ref, &d, "no final newline");
    data_free(&d);
    char *crlf = malloc(2 * len + 1);
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (lines[i] == '\n') crlf[k++] = '\r';
        crlf[k++] = (char)lines[i];
    }
    write_file(path, sizeof path, "crlf.jsonl", crlf, k);
    free(crlf);
    OK(data_load(&d, path, g_tok, &o));
    expect_same_data(&ref, &d, "CRLF line ends");
    data_free(&d);
    free(lines);

    // An explicit format overrides the name.
    arr = fixture_as_array();
    write_text(path, sizeof path, "alpaca.data", arr);
    free(arr);
    o.format = DATA_ALPACA;
    OK(data_load(&d, path, g_tok, &o));
    expect_same_data(&ref, &d, "--format alpaca");
    data_free(&d);
    data_free(&ref);
}

// ---- plain text --------------------------------------------------------------------------

Test(train_data, text_documents) {
    char path[512];
    write_text(path, sizeof path, "docs.txt", "first line\nsecond line\n\n\n \t \nlone doc\n\nlast\n  indented  ");
    TokenData d;
    DataOptions o = opts(DATA_AUTO, 256, false, EOS);
    OK(data_load(&d, path, g_tok, &o));
    cr_assert_eq(d.n, 3, "%d documents", d.n);
    cr_expect_eq(d.dropped, 0);
    const char *docs[3] = {"first line\nsecond line", "lone doc", "last\n  indented  "};
    for (int i = 0; i < 3; i++) expect_seq(&d, i, docs[i], (int)strlen(docs[i]), false, 0); // no EOS, no mask
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(data_counted(&d, i), data_len(&d, i) - 1);
        expect_targets(&d, i);
    }
    data_free(&d);
}

Test(train_data, text_windows) {
    char path[512];
    // 10 tokens at cutoff 3: windows of 3, 3, 3 and a dropped 1; 9 tokens: 3, 3, 3; 1 token: dropped;
    // 5 tokens: 3, 2.
    write_text(path, sizeof path, "win.txt", "0123456789\n\nabcdefghi\n\nX\n\nvwxyz\n");
    TokenData d;
    DataOptions o = opts(DATA_TEXT, 3, false, EOS);
    OK(data_load(&d, path, g_tok, &o));
    const char *win[] = {"012", "345", "678", "abc", "def", "ghi", "vwx", "yz"};
    cr_assert_eq(d.n, 8, "%d windows", d.n);
    cr_expect_eq(d.dropped, 2, "dropped %d (the trailing '9' and the 1-token document)", d.dropped);
    for (int i = 0; i < 8; i++) expect_seq(&d, i, win[i], (int)strlen(win[i]), false, 0);
    cr_expect_eq(d.start[8], 3 * 7 + 2);
    data_free(&d);

    // The same in a .txt.gz.
    size_t len;
    uint8_t *raw = tu_read_file(path, &len);
    write_gz(path, sizeof path, "win.txt.gz", (const char *)raw, len);
    free(raw);
    o.format = DATA_AUTO;
    OK(data_load(&d, path, g_tok, &o));
    cr_assert_eq(d.n, 8);
    cr_expect_eq(d.dropped, 2);
    for (int i = 0; i < 8; i++) expect_seq(&d, i, win[i], (int)strlen(win[i]), false, 0);
    data_free(&d);
}

Test(train_data, text_fixture) {
    size_t len;
    char *text = (char *)tu_read_file(DIR "text.txt", &len);
    TokenData d;
    DataOptions o = opts(DATA_AUTO, 256, false, EOS);
    OK(data_load(&d, DIR "text.txt", g_tok, &o));
    int i = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), i++) // one line per document here
        expect_seq(&d, i, line, (int)strlen(line), false, 0);
    cr_expect_eq(d.n, i, "%d sequences, %d documents", d.n, i);
    cr_expect_eq(i, 30);
    free(text);
    data_free(&d);

    // Windows of 16: every document cut, only pieces of 1 token dropped.
    o.cutoff = 16;
    OK(data_load(&d, DIR "text.txt", g_tok, &o));
    for (int k = 0; k < d.n; k++) cr_assert(data_len(&d, k) >= 2 && data_len(&d, k) <= 16, "window %d: %d", k, data_len(&d, k));
    cr_expect_gt(d.n, 30);
    data_free(&d);
}

// ---- bad input -------------------------------------------------------------------------------

Test(train_data, bad_alpaca_lines) {
    char path[512];
    DataOptions o = opts(DATA_AUTO, 256, false, EOS);
    char where[600];

    // Each file must fail with ST_FORMAT naming the file, then `at` (its line, or a JSON array's
    // record index from 0), and the needle.
    static const struct {
        const char *name, *content, *at, *needle;
    } cases[] = {
        {"malformed.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n\n{\"instruction\": \"a\", \"output\": \"b\"\n", ":3",
         "malformed JSON"},
        {"no-output.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"a\", \"input\": \"c\"}\n", ":2",
         "\"output\""},
        {"null-output.jsonl", "{\"instruction\": \"a\", \"output\": null}\n", ":1", "\"output\""},
        {"int-instruction.jsonl", "{\"instruction\": 5, \"output\": \"b\"}\n", ":1", "\"instruction\" must be a string"},
        {"list-input.jsonl", "\n{\"instruction\": \"a\", \"input\": [\"x\"], \"output\": \"b\"}\n", ":2",
         "\"input\" must be a string"},
        {"not-object.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n[1, 2]\n", ":2", "JSON object"},
        {"array.json", "[{\"instruction\": \"a\", \"output\": \"b\"},\n {\"instruction\": \"a\", \"input\": \"c\"}]\n",
         ": record 1", "\"output\""},
        {"broken-array.json", "[{\"instruction\": \"a\",\n \"output\": \"b\"},\n {\"x\": ]\n", ":3", "malformed JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_text(path, sizeof path, cases[i].name, cases[i].content);
        snprintf(where, sizeof where, "%s%s", path, cases[i].at);
        expect_load_err(path, &o, ST_FORMAT, where, cases[i].needle, NULL);
    }

    // Invalid UTF-8 in a record: the tokenizer's error, located.
    write_text(path, sizeof path, "utf8.jsonl", "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"a\", \"output\": \"\\udc80\"}\n");
    TokenData d;
    Status st = data_load(&d, path, g_tok, &o);
    if (st != ST_OK) { // jansson may refuse the lone surrogate itself; either way the line is named
        snprintf(where, sizeof where, "%s:2", path);
        tu_expect_err(st, ST_FORMAT, where, NULL, NULL);
    } else {
        data_free(&d);
    }
}

Test(train_data, bad_files) {
    char path[512], where[600];
    DataOptions o = opts(DATA_AUTO, 256, false, EOS);

    write_text(path, sizeof path, "empty.jsonl", "");
    expect_load_err(path, &o, ST_FORMAT, path, "no training sequence", NULL);
    write_text(path, sizeof path, "blank.jsonl", "\n  \n\n");
    expect_load_err(path, &o, ST_FORMAT, path, "no training sequence", NULL);
    write_text(path, sizeof path, "empty.json", "[]");
    expect_load_err(path, &o, ST_FORMAT, path, "no training sequence", NULL);
    write_text(path, sizeof path, "empty.txt", "\n\n\n");
    expect_load_err(path, &o, ST_FORMAT, path, "no training sequence", NULL);
    write_text(path, sizeof path, "ones.txt", "a\n\nb\n\nc");
    expect_load_err(path, &o, ST_FORMAT, path, "no training sequence", "3 records");

    // Every record dropped: a prompt longer than the cutoff.
    write_text(path, sizeof path, "short.jsonl",
               "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"c\", \"output\": \"d\"}\n");
    DataOptions small = opts(DATA_AUTO, 20, false, EOS);
    expect_load_err(path, &small, ST_FORMAT, path, "no training sequence", "2 records");

    write_text(path, sizeof path, "data.csv", "instruction,output\na,b\n");
    expect_load_err(path, &o, ST_USAGE, path, "--format", NULL);
    write_text(path, sizeof path, "noext", "hello world\n");
    expect_load_err(path, &o, ST_USAGE, path, "--format", NULL);
    DataOptions as_text = opts(DATA_TEXT, 256, false, EOS);
    TokenData d;
    OK(data_load(&d, path, g_tok, &as_text)); // the same file with --format text
    cr_assert_eq(d.n, 1);
    expect_seq(&d, 0, "hello world", 11, false, 0);
    data_free(&d);

    snprintf(path, sizeof path, "%s/does-not-exist.jsonl", g_dir);
    expect_load_err(path, &o, ST_IO, path, NULL, NULL);
    snprintf(path, sizeof path, "%s/sub.txt", g_dir); // a directory
    cr_assert_eq(mkdir(path, 0700), 0);
    TokenData dd;
    Status st = data_load(&dd, path, g_tok, &o);
    rmdir(path);
    tu_expect_err(st, ST_IO, path, NULL, NULL);

    // Bad gzip data.
    static const char bad_gz[] = "\x1f\x8b\x08\x00garbage that is not deflate";
    write_file(path, sizeof path, "bad.jsonl.gz", bad_gz, sizeof bad_gz - 1);
    TokenData dg;
    st = data_load(&dg, path, g_tok, &o);
    tu_expect_err(st, ST_FORMAT, path, NULL, NULL);

    // Invalid UTF-8 in a text document: named with the document's first line.
    write_text(path, sizeof path, "bad-utf8.txt", "good doc\n\nline two\nbad \xff byte\n");
    snprintf(where, sizeof where, "%s:3", path);
    TokenData du;
    st = data_load(&du, path, g_tok, &o);
    cr_assert_neq(st, ST_OK);
    tu_expect_err(st, st, where, "UTF-8", NULL); // the tokenizer's code (ST_USAGE today), the file and line added

    DataOptions tiny = opts(DATA_AUTO, 1, false, EOS);
    expect_load_err(DIR "alpaca.jsonl", &tiny, ST_USAGE, "cutoff", NULL, NULL);
}

// ---- split ----------------------------------------------------------------------------------

static void expect_partition(const TokenData *d, const DataSplit *s, int n_val) {
    cr_assert_eq(s->n_val, n_val);
    cr_assert_eq(s->n_train, d->n - n_val);
    int *seen = calloc((size_t)d->n, sizeof *seen);
    for (int i = 0; i < s->n_val; i++) {
        cr_assert(s->val[i] >= 0 && s->val[i] < d->n, "val[%d] = %d", i, s->val[i]);
        seen[s->val[i]]++;
    }
    for (int i = 0; i < s->n_train; i++) {
        cr_assert(s->train[i] >= 0 && s->train[i] < d->n, "train[%d] = %d", i, s->train[i]);
        seen[s->train[i]]++;
    }
    for (int i = 0; i < d->n; i++) cr_assert_eq(seen[i], 1, "sequence %d appears %d times", i, seen[i]);
    free(seen);
}

Test(train_data, split) {
    TokenData d;
    DataOptions o = opts(DATA_AUTO, 256, false, EOS);
    OK(data_load(&d, DIR "alpaca.jsonl", g_tok, &o));
    cr_assert_eq(d.n, 48);
    DataSplit a, b, c;
    OK(data_split(&d, 10, 42, &a));
    OK(data_split(&d, 10, 42, &b));
    OK(data_split(&d, 10, 43, &c));
    expect_partition(&d, &a, 10);
    expect_partition(&d, &c, 10);
    cr_expect_eq(memcmp(a.val, b.val, 10 * sizeof *a.val), 0, "the same seed gave another validation set");
    cr_expect_eq(memcmp(a.train, b.train, 38 * sizeof *a.train), 0, "the same seed gave another training order");
    cr_expect_neq(memcmp(a.val, c.val, 10 * sizeof *a.val), 0, "seeds 42 and 43 gave the same validation set");
    // Shuffled, not the file order.
    bool identity = true;
    for (int i = 0; i < 10; i++) identity &= a.val[i] == i;
    cr_expect(!identity, "the validation set is the first 10 records");
    data_split_free(&a);
    data_split_free(&b);
    data_split_free(&c);
    cr_expect(a.val == NULL && a.train == NULL && a.n_val == 0);

    OK(data_split(&d, 0, 1, &a));
    expect_partition(&d, &a, 0);
    data_split_free(&a);
    OK(data_split(&d, 47, 1, &a));
    expect_partition(&d, &a, 47);
    data_split_free(&a);

    tu_expect_err(data_split(&d, 48, 1, &a), ST_USAGE, "48", NULL, NULL);
    cr_expect(a.val == NULL && a.train == NULL);
    tu_expect_err(data_split(&d, 100, 1, &a), ST_USAGE, "100", NULL, NULL);
    tu_expect_err(data_split(&d, -1, 1, &a), ST_USAGE, NULL, NULL, NULL);
    data_free(&d);
}
