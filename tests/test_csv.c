// The CSV/TSV reader (host/io/csv.h) against what pandas.read_csv(header=None,
// sep=..., dtype=str, na_filter=False) gives on the same bytes (pandas 3.1,
// checked case by case; where pandas refuses a text, the reader's documented
// choice), and the two readers built on it (eval/dataset.c, eval/prompts.c)
// reading one tricky file the same way.
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/dataset.h"
#include "eval/prompts.h"
#include "io/csv.h"
#include "test_util.h"

#define BOM "\xEF\xBB\xBF"
#define UNTERM "unterminated quoted field"
#define AFTER "text after a closing quote"

typedef struct {
    long line;                 // 1-based line the record starts on; 0 ends a list
    const char *problem;       // NULL for a well-formed record
    const char *const *fields; // NULL-terminated
} WantRec;

typedef struct {
    const char *name;
    char sep;
    const char *text;
    const WantRec *want;       // ends with line 0
} Case;

#define FIELDS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define REC(line, problem, ...) {line, problem, FIELDS(__VA_ARGS__)}
#define RECS(...) ((const WantRec[]){__VA_ARGS__, {0, NULL, NULL}})
#define NO_RECS ((const WantRec[]){{0, NULL, NULL}})

// Expected fields are pandas' (the unterminated cases excepted: pandas raises
// "EOF inside string"); lines and problems are the reader's own rules.
static const Case CASES[] = {
    {"plain", ',', "a,b\nc,d\n", RECS(REC(1, NULL, "a", "b"), REC(2, NULL, "c", "d"))},
    {"quoted separator and newline", ',', "\"a,\nx\",b\n\"1\n2\n3\",c\ne,f\n",
     RECS(REC(1, NULL, "a,\nx", "b"), REC(3, NULL, "1\n2\n3", "c"), REC(6, NULL, "e", "f"))},
    {"quoted CR and CRLF kept verbatim", ',', "\"a\rb\",c\n\"x\r\ny\",z\ne,f\n",
     RECS(REC(1, NULL, "a\rb", "c"), REC(3, NULL, "x\r\ny", "z"), REC(5, NULL, "e", "f"))},
    {"doubled quotes", ',', "\"a\"\"b\",\"\"\"\"\n\"say \"\"hi\"\"\",x\n",
     RECS(REC(1, NULL, "a\"b", "\""), REC(2, NULL, "say \"hi\"", "x"))},
    {"quoted empty field", ',', "\"\",x\n", RECS(REC(1, NULL, "", "x"))},
    {"BOM dropped", ',', BOM "a,b\n", RECS(REC(1, NULL, "a", "b"))},
    {"BOM before a quote", ',', BOM "\"a,1\",b\n", RECS(REC(1, NULL, "a,1", "b"))},
    {"BOM later is data", ',', "a\n" BOM "b\n", RECS(REC(1, NULL, "a"), REC(2, NULL, BOM "b"))},
    {"CRLF", ',', "a,b\r\nc,d\r\n", RECS(REC(1, NULL, "a", "b"), REC(2, NULL, "c", "d"))},
    {"lone CR", ',', "a,b\rc,d\r", RECS(REC(1, NULL, "a", "b"), REC(2, NULL, "c", "d"))},
    {"mixed line ends", ',', "a,b\rc,d\r\ne,f\ng,\"h\"\r",
     RECS(REC(1, NULL, "a", "b"), REC(2, NULL, "c", "d"), REC(3, NULL, "e", "f"), REC(4, NULL, "g", "h"))},
    {"blank lines", ',', "\na,b\n\n\r\n\rc,d\n\n", RECS(REC(2, NULL, "a", "b"), REC(6, NULL, "c", "d"))},
    {"whitespace lines", ',', "a,b\n  \n\t\n \t \r\nc,d\n", RECS(REC(1, NULL, "a", "b"), REC(5, NULL, "c", "d"))},
    {"leading blanks kept", ',', "a,b\n  x,y\n  ,z\n",
     RECS(REC(1, NULL, "a", "b"), REC(2, NULL, "  x", "y"), REC(3, NULL, "  ", "z"))},
    {"TSV", '\t', "a b\t\"c\td\"\n\"x\"\"y\"\tz, w\n",
     RECS(REC(1, NULL, "a b", "c\td"), REC(2, NULL, "x\"y", "z, w"))},
    {"TSV tab line is a record", '\t', "a\tb\n\t\n  \nc\td\n",
     RECS(REC(1, NULL, "a", "b"), REC(2, NULL, "", ""), REC(4, NULL, "c", "d"))},
    {"no final newline", ',', "a,b\nc,d", RECS(REC(1, NULL, "a", "b"), REC(2, NULL, "c", "d"))},
    {"no final newline after a quote", ',', "a,b\nc,\"d\"", RECS(REC(1, NULL, "a", "b"), REC(2, NULL, "c", "d"))},
    {"empty fields", ',', "a,,b\n,,\nc,d,\n",
     RECS(REC(1, NULL, "a", "", "b"), REC(2, NULL, "", "", ""), REC(3, NULL, "c", "d", ""))},
    {"quotes inside an unquoted field", ',', "ab\"c\"d,x\n", RECS(REC(1, NULL, "ab\"c\"d", "x"))},
    {"a quote inside does not quote", ',', "ab\"c,d\"e,x\n", RECS(REC(1, NULL, "ab\"c", "d\"e", "x"))},
    {"quote after a blank is literal", ',', " \"a,b\",c\n", RECS(REC(1, NULL, " \"a", "b\"", "c"))},
    {"text after a closing quote", ',', "\"ab\" tail,c\nd,e\n",
     RECS(REC(1, AFTER, "ab tail", "c"), REC(2, NULL, "d", "e"))},
    {"quotes after a closing quote", ',', "x,y\n\"a\"b\"c\",x\n\"q\" \"\"z,w\ne,f\n",
     RECS(REC(1, NULL, "x", "y"), REC(2, AFTER, "ab\"c\"", "x"), REC(3, AFTER, "q \"\"z", "w"), REC(4, NULL, "e", "f"))},
    {"text after a closing quote, CRLF", ',', "\"a\"b\r\n\"c\"\r\n", RECS(REC(1, AFTER, "ab"), REC(2, NULL, "c"))},
    {"unterminated quote", ',', "a,b\n\"c,d\ne,f\n", RECS(REC(1, NULL, "a", "b"), REC(2, UNTERM, "c,d\ne,f\n"))},
    {"unterminated last field", ',', "a,b\nc,\"d\n", RECS(REC(1, NULL, "a", "b"), REC(2, UNTERM, "c", "d\n"))},
    {"empty text", ',', "", NO_RECS},
    {"only blank lines", ',', "\n\r\n\r  \n", NO_RECS},
    {"only a BOM", ',', BOM, NO_RECS},
    {"whitespace without a line end", ',', "a\n  ", RECS(REC(1, NULL, "a"))},
    // pandas' tokenizer drops a separator right after a blank line ended by a lone
    // "\r" (it reads ["c"]); the reader does not copy that (csv.h).
    {"separator after a CR blank line", ',', "a,b\n\r,c\n", RECS(REC(1, NULL, "a", "b"), REC(3, NULL, "", "c"))},
};

// Reads all of c's text and checks every record against c->want.
static void check_case(const Case *c) {
    CsvReader r;
    cr_assert_eq(csv_init(&r, c->text, strlen(c->text), c->sep, "t.csv"), ST_OK, "%s: %s", c->name, status_message());
    bool more;
    int k = 0;
    for (;;) {
        cr_assert_eq(csv_next(&r, &more), ST_OK, "%s: %s", c->name, status_message());
        if (!more) break;
        const WantRec *w = &c->want[k];
        cr_assert_neq(w->line, 0, "%s: an extra record at line %ld (%d fields, first \"%s\")", c->name, r.rec_line,
                      r.n_fields, csv_field(&r, 0));
        cr_expect_eq(r.index, k, "%s: record %d has index %ld", c->name, k, r.index);
        cr_expect_eq(r.rec_line, w->line, "%s: record %d starts on line %ld, want %ld", c->name, k, r.rec_line,
                     w->line);
        if (w->problem)
            cr_expect(r.problem && strcmp(r.problem, w->problem) == 0, "%s: record %d: problem \"%s\", want \"%s\"",
                      c->name, k, r.problem ? r.problem : "(none)", w->problem);
        else
            cr_expect_null(r.problem, "%s: record %d: unexpected problem \"%s\"", c->name, k, r.problem);
        int n = 0;
        while (w->fields[n]) n++;
        cr_assert_eq(r.n_fields, n, "%s: record %d has %d fields, want %d", c->name, k, r.n_fields, n);
        for (int i = 0; i < n; i++) {
            cr_expect_str_eq(csv_field(&r, i), w->fields[i], "%s: record %d field %d", c->name, k, i);
            cr_expect_eq(csv_field_len(&r, i), strlen(w->fields[i]), "%s: record %d field %d length", c->name, k, i);
        }
        k++;
    }
    cr_expect_eq(c->want[k].line, 0, "%s: %d records read, more expected", c->name, k);
    cr_expect_eq(r.n_fields, 0, "%s: fields left after the end", c->name);
    cr_expect_eq(csv_next(&r, &more), ST_OK);
    cr_expect_not(more, "%s: a record after the end", c->name);
    csv_free(&r);
}

Test(csv, table_against_pandas) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) check_case(&CASES[i]);
}

// Reads text into a "|"-joined list of records, each "line:field;field[!problem]".
static void dump(const char *text, size_t len, char sep, char *out, size_t n) {
    CsvReader r;
    cr_assert_eq(csv_init(&r, text, len, sep, "x"), ST_OK);
    bool more;
    size_t used = 0;
    out[0] = '\0';
    while (csv_next(&r, &more) == ST_OK && more) {
        used += (size_t)snprintf(out + used, n - used, "%s%ld:", used ? "|" : "", r.rec_line);
        for (int i = 0; i < r.n_fields && used < n; i++)
            used += (size_t)snprintf(out + used, n - used, "%s%s", i ? ";" : "", csv_field(&r, i));
        if (r.problem && used < n) used += (size_t)snprintf(out + used, n - used, "!%s", r.problem);
        cr_assert_lt(used, n);
    }
    csv_free(&r);
}

Test(csv, quoted_line_ends_keep_later_line_numbers) {
    char got[512];
    const char *t = "\"one\ntwo\r\nthree\rfour\",x\r\n"   // lines 1-4
                    "\n"                                   // 5 (blank)
                    "y,\"a,\"\"b\"\"\nc\"\r"               // 6-7, lone CR end
                    "last,z";                              // 8, no final line end
    dump(t, strlen(t), ',', got, sizeof got);
    cr_expect_str_eq(got, "1:one\ntwo\r\nthree\rfour;x|6:y;a,\"b\"\nc|8:last;z");
}

Test(csv, bad_records_are_reported_and_reading_goes_on) {
    const char *t = "a,b\n\"ab\" tail,c\nd,e\n\"open,f\ng,h\n";
    CsvReader r;
    cr_assert_eq(csv_init(&r, t, strlen(t), ',', "dir/file.csv"), ST_OK);
    bool more;
    cr_assert_eq(csv_next(&r, &more), ST_OK);
    cr_assert(more);
    cr_expect_null(r.problem);
    cr_assert_eq(csv_next(&r, &more), ST_OK);
    cr_assert(more);
    cr_assert_not_null(r.problem);
    tu_expect_err(csv_record_fail(&r, "%s", r.problem), ST_FORMAT, "dir/file.csv:2: text after a closing quote", NULL,
                  NULL);
    cr_assert_eq(csv_next(&r, &more), ST_OK); // the record after it is read whole
    cr_assert(more);
    cr_expect_null(r.problem);
    cr_expect_eq(r.rec_line, 3);
    cr_expect_str_eq(csv_field(&r, 0), "d");
    cr_expect_str_eq(csv_field(&r, 1), "e");
    cr_assert_eq(csv_next(&r, &more), ST_OK);
    cr_assert(more);
    tu_expect_err(csv_record_fail(&r, "%s", r.problem), ST_FORMAT, "dir/file.csv:4: unterminated quoted field", NULL,
                  NULL);
    cr_expect_eq(r.index, 3);
    cr_assert_eq(csv_next(&r, &more), ST_OK); // it ran to the end of the text
    cr_expect_not(more);
    csv_free(&r);
}

Test(csv, raw_record_and_nul_bytes) {
    static const char t[] = "a\0b,\"c\0\"\"d\"\r\nnext\n";
    CsvReader r;
    cr_assert_eq(csv_init(&r, t, sizeof t - 1, ',', "nul.csv"), ST_OK);
    bool more;
    cr_assert_eq(csv_next(&r, &more), ST_OK);
    cr_assert(more);
    cr_assert_eq(r.n_fields, 2);
    cr_expect_eq(csv_field_len(&r, 0), 3);
    cr_expect_eq(memcmp(csv_field(&r, 0), "a\0b", 4), 0);
    cr_expect_eq(csv_field_len(&r, 1), 4);
    cr_expect_eq(memcmp(csv_field(&r, 1), "c\0\"d", 5), 0);
    cr_expect_eq(r.raw, t);
    cr_expect_eq(r.raw_len, 11, "the raw record excludes its line end: %zu", r.raw_len);
    cr_assert_eq(csv_next(&r, &more), ST_OK);
    cr_expect_eq(r.raw, t + 13);
    cr_expect_eq(r.raw_len, 4);
    csv_free(&r);
}

// Many fields and long ones: the scratch grows and stays right.
Test(csv, wide_and_long_records) {
    size_t n = 300 * 3 + 20000 + 16;
    char *t = malloc(n);
    size_t len = 0;
    for (int i = 0; i < 300; i++) len += (size_t)sprintf(t + len, "%s%d", i ? "," : "", i % 10);
    t[len++] = '\n';
    t[len++] = '"';
    for (int i = 0; i < 20000; i++) t[len++] = i % 100 == 99 ? '\n' : 'x';
    t[len++] = '"';
    CsvReader r;
    cr_assert_eq(csv_init(&r, t, len, ',', "wide.csv"), ST_OK);
    bool more;
    cr_assert_eq(csv_next(&r, &more), ST_OK);
    cr_assert_eq(r.n_fields, 300);
    for (int i = 0; i < 300; i++) cr_expect_eq(csv_field(&r, i)[0], '0' + i % 10);
    cr_assert_eq(csv_next(&r, &more), ST_OK);
    cr_assert(more);
    cr_expect_eq(r.rec_line, 2);
    cr_assert_eq(r.n_fields, 1);
    cr_expect_eq(csv_field_len(&r, 0), 20000);
    cr_expect_null(r.problem);
    cr_assert_eq(csv_next(&r, &more), ST_OK);
    cr_expect_not(more);
    cr_expect_eq(r.line, 2 + 200, "the quoted field's 200 newlines are counted: line %ld", r.line);
    csv_free(&r);
    free(t);
}

Test(csv, separators_that_cannot_be) {
    CsvReader r;
    tu_expect_err(csv_init(&r, "a", 1, '"', "q.csv"), ST_USAGE, "q.csv", "separator", NULL);
    tu_expect_err(csv_init(&r, "a", 1, '\n', "q.csv"), ST_USAGE, "q.csv", NULL, NULL);
    cr_expect_eq(csv_init(&r, "a;b", 3, ';', "q.csv"), ST_OK);
    bool more;
    cr_assert_eq(csv_next(&r, &more), ST_OK);
    cr_expect_eq(r.n_fields, 2);
    csv_free(&r);
}

// ---------------------------------------------------------------------------
// dataset.c and prompts.c on the same Octopus dev file: BOM, CRLF, a lone CR,
// blank and whitespace lines, quoted fields with commas, doubled quotes and line
// breaks, no final line end. The prompt's examples (rows 0-5: question, then the
// labelled choice) must be the dataset reader's questions and answers.

#define FNS20 "f2,f3,f4,f5,f6,f7,f8,f9,f10,f11,f12,f13,f14,f15,f16,f17,f18,f19,f20,f21"

Test(csv, dataset_and_prompts_read_alike) {
    char dir[64], path[256];
    tu_make_temp_dir(dir, sizeof dir, "csv");
    tu_write_file_in(dir, "Octopus_refined/functions_simple.txt", "function name: f1");
    tu_write_file_in(dir, "Octopus_refined/dev/android_benchmark.csv",
               BOM "Take a selfie,f1," FNS20 ",A\r\n"                                  // line 1
               "\r\n"                                                                 // 2
               "\"Email bob, subject \"\"Hi\"\"\",f1," FNS20 ",B\r\n"                  // 3
               "  \r\n"                                                               // 4
               "\"Two\r\nlines\",\"f1\nstill f1\"," FNS20 ",A\r"                     // 5-7
               "  Spaces kept,f1," FNS20 ",U\n"                                       // 8
               "Q5,\"\"\"f1\"\"\"," FNS20 ",A\n"                                      // 9
               "\n"                                                                   // 10
               "Q6,f1," FNS20 ",C\n"                                                  // 11
               "Q7 beyond the examples,f1," FNS20 ",D");                              // 12
    snprintf(path, sizeof path, "%s/Octopus_refined/dev/android_benchmark.csv", dir);
    McDataset d;
    cr_assert_eq(dataset_load(&d, DS_OCTOPUS, path, false), ST_OK, "%s", status_message());
    cr_assert_eq(d.n, 7);
    static const long LINES[7] = {1, 3, 5, 8, 9, 11, 12};
    for (size_t i = 0; i < d.n; i++) {
        char where[300];
        snprintf(where, sizeof where, "%s:%ld", path, LINES[i]);
        cr_expect_str_eq(d.items[i].where, where);
    }
    cr_expect_str_eq(d.items[1].question, "Email bob, subject \"Hi\"");
    cr_expect_str_eq(d.items[2].question, "Two\r\nlines");
    cr_expect_str_eq(d.items[2].choices[0], "f1\nstill f1");
    cr_expect_str_eq(d.items[3].question, "  Spaces kept");
    cr_expect_str_eq(d.items[4].choices[0], "\"f1\"");

    EvalPrompt p;
    cr_assert_eq(eval_prompt_build(&p, DS_OCTOPUS, dir), ST_OK, "%s", status_message());
    char want[4096];
    size_t used = (size_t)snprintf(want, sizeof want, "\nExamples:");
    for (size_t i = 0; i < 6; i++) {
        const McQuestion *q = &d.items[i];
        used += (size_t)snprintf(want + used, sizeof want - used, "\nQuestion: %s Answer: %s", q->question,
                                 q->choices[q->answer]);
        cr_assert_lt(used, sizeof want);
    }
    const char *ex = strstr(p.system, "\nExamples:");
    cr_assert_not_null(ex, "%s", p.system);
    cr_expect_str_eq(ex, want);
    eval_prompt_free(&p);
    dataset_free(&d);

    // the same malformed record stops both, at the same line
    tu_write_file_in(dir, "Octopus_refined/dev/android_benchmark.csv",
               "Q1,f1," FNS20 ",A\r\n\r\n\"Q2\" oops,f1," FNS20 ",A\r\n");
    char needle[300];
    snprintf(needle, sizeof needle, "%s:3: text after a closing quote", path);
    tu_expect_err(dataset_load(&d, DS_OCTOPUS, path, false), ST_FORMAT, needle, NULL, NULL);
    tu_expect_err(eval_prompt_build(&p, DS_OCTOPUS, dir), ST_FORMAT, needle, NULL, NULL);
    cr_expect(tu_remove_dir(dir), "cannot remove %s", dir);
}
