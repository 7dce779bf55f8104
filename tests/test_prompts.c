// The artifact's prompts (host/eval/prompts.c) against what the artifact's own
// Python builds: tests/fixtures/prompts/<DS>.txt are written by
// tests/reference/extract_artifact_prompts.py, which executes the prompt-building
// statements of ELASTICLLM/<DS>.py on the artifact's data files and renders
// (SYS_PROMPT + QUERY).format(question="What is X?").
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/prompts.h"
#include "test_util.h"

#define FIX "tests/fixtures/prompts/"

// The artifact's Data/ is bundled in the repository (tests run from its root).
static const char *artifact_dir(void) { return "datasets/elastilm-artifact"; }

static void check_rendered(DatasetId ds, const char *fixture) {
    EvalPrompt p;
    cr_assert_eq(eval_prompt_build(&p, ds, artifact_dir()), ST_OK, "%s", status_message());
    char *got = eval_prompt_render(&p, "What is X?");
    cr_assert_not_null(got, "%s", status_message());
    size_t len;
    char *want = (char *)tu_read_file(fixture, &len);
    cr_assert_not_null(want, "cannot read %s", fixture);
    size_t gl = strlen(got), i = 0;
    while (i < gl && i < len && got[i] == want[i]) i++;
    cr_expect(gl == len && i == len, "%s: differs at byte %zu (got %zu bytes, want %zu):\n got: %.60s\nwant: %.60s",
              fixture, i, gl, len, got + (i < gl ? i : gl), want + (i < len ? i : len));
    // render = system + query with {question} replaced
    size_t sl = strlen(p.system);
    cr_expect(gl >= sl && memcmp(got, p.system, sl) == 0, "%s: the system prompt is not a prefix of the render", fixture);
    cr_expect(strstr(p.query, "{question}") != NULL);
    free(want);
    free(got);
    eval_prompt_free(&p);
}

Test(prompts, arc_e) { check_rendered(DS_ARC_E, FIX "ARC_E.txt"); }
Test(prompts, obqa) { check_rendered(DS_OBQA, FIX "OBQA.txt"); }
Test(prompts, piqa) { check_rendered(DS_PIQA, FIX "PIQA.txt"); }
Test(prompts, sciq) { check_rendered(DS_SCIQ, FIX "SCIQ.txt"); }
Test(prompts, octopus) { check_rendered(DS_OCTOPUS, FIX "Octopus.txt"); }
Test(prompts, llamatouch) { check_rendered(DS_LLAMATOUCH, FIX "LlamaTouch.txt"); }

Test(prompts, hf_datasets_need_no_files) {
    EvalPrompt p;
    cr_assert_eq(eval_prompt_build(&p, DS_ARC_E, "/nonexistent"), ST_OK, "%s", status_message());
    cr_expect_str_eq(p.query, "Question: {question} Answer:");
    // no "\n" between the examples and the question, as in the artifact
    cr_expect(strstr(p.system, "how they formed.") != NULL);
    cr_expect_eq(p.system[strlen(p.system) - 1], '.');
    eval_prompt_free(&p);
}

Test(prompts, llamatouch_apps) {
    cr_assert_eq(LLAMATOUCH_N_APPS, 77);
    size_t len;
    char *want = (char *)tu_read_file(FIX "llamatouch_apps.txt", &len);
    cr_assert_not_null(want);
    char *save = NULL, *line = strtok_r(want, "\n", &save);
    int i = 0;
    for (; line && i < LLAMATOUCH_N_APPS; i++, line = strtok_r(NULL, "\n", &save))
        cr_expect_str_eq(LLAMATOUCH_APPS[i], line, "app %d", i);
    cr_expect_eq(i, 77);
    cr_expect_null(line, "more apps in the fixture than in LLAMATOUCH_APPS");
    free(want);
}

// A question is a value substituted by str.format: its braces stay as they are.
Test(prompts, question_braces_are_literal) {
    EvalPrompt p;
    cr_assert_eq(eval_prompt_build(&p, DS_OBQA, NULL), ST_OK, "%s", status_message());
    char *got = eval_prompt_render(&p, "a {question} b {{x}} }");
    cr_assert_not_null(got, "%s", status_message());
    const char *tail = "mailing tube.Question: a {question} b {{x}} } Answer:";
    size_t gl = strlen(got), tl = strlen(tail);
    cr_expect(gl > tl && strcmp(got + gl - tl, tail) == 0, "got tail: %s", got + (gl > tl ? gl - tl : 0));
    free(got);
    eval_prompt_free(&p);
}

// In the system text, braces follow Python's format rules.
Test(prompts, system_braces_follow_str_format) {
    EvalPrompt p = {.system = strdup("a {{b}} c {question}."), .query = strdup(" Q: {question}")};
    char *got = eval_prompt_render(&p, "q");
    cr_assert_not_null(got, "%s", status_message());
    cr_expect_str_eq(got, "a {b} c q. Q: q");
    free(got);
    free(p.system);
    p.system = strdup("oops {x}");
    cr_expect_null(eval_prompt_render(&p, "q"));
    cr_expect(strstr(status_message(), "other than {question}") != NULL, "%s", status_message());
    free(p.system);
    p.system = strdup("oops }");
    cr_expect_null(eval_prompt_render(&p, "q"));
    cr_expect(strstr(status_message(), "single '}'") != NULL, "%s", status_message());
    eval_prompt_free(&p);
}

// ---------------------------------------------------------------------------
// Hand-made artifact folders.

// pandas reading: BOM dropped, CRLF, quoted fields with "" and separators inside,
// blank lines skipped, only the first 6 rows used; functions_simple.txt read with
// universal newlines.
Test(prompts, octopus_csv_reading) {
    char dir[64];
    tu_make_temp_dir(dir, sizeof dir, "prompts");
    tu_write_file_in(dir, "Octopus_refined/functions_simple.txt", "function name: f\r\ndescription: d\r\n\r\nfunction name: g");
    tu_write_file_in(dir, "Octopus_refined/dev/android_benchmark.csv",
               "\xEF\xBB\xBFq1,f,g,A\r\n"
               "\"q2, with \"\"quotes\"\"\",f,g,B\r\n"
               "\r\n"
               "q3,f,\"g\nmultiline\",B\r\n"
               "q4,f,g,A\nq5,f,g,A\nq6,f,g,B\nq7,f,g,A\n");
    EvalPrompt p;
    cr_assert_eq(eval_prompt_build(&p, DS_OCTOPUS, dir), ST_OK, "%s", status_message());
    cr_expect_str_eq(p.system,
                     "You are a smart assistant that helps human sloving problems. You help them by answering questions."
                     "\nfunction name: f\ndescription: d\n\nfunction name: g\nExamples:"
                     "\nQuestion: q1 Answer: f"
                     "\nQuestion: q2, with \"quotes\" Answer: g"
                     "\nQuestion: q3 Answer: g\nmultiline"
                     "\nQuestion: q4 Answer: f\nQuestion: q5 Answer: f\nQuestion: q6 Answer: g");
    cr_expect_str_eq(p.query, "\nQuestion: {question}Answer:");
    eval_prompt_free(&p);
    cr_expect(tu_remove_dir(dir), "cannot remove %s", dir);
}

Test(prompts, llamatouch_tsv_reading) {
    char dir[64];
    tu_make_temp_dir(dir, sizeof dir, "prompts");
    tu_write_file_in(dir, "LlamaTouch/dev/llamatouch_task_metadata.tsv",
               "\"Say \"\"hi\"\"\"\tMessages\nOpen it\tGoogle Play Store, Nova Launcher");
    EvalPrompt p;
    cr_assert_eq(eval_prompt_build(&p, DS_LLAMATOUCH, dir), ST_OK, "%s", status_message());
    const char *tail = "\nExamples:\nQuestion: Say \"hi\" Answer: Messages"
                       "\nQuestion: Open it Answer: Google Play Store, Nova Launcher";
    size_t sl = strlen(p.system), tl = strlen(tail);
    cr_expect(sl > tl && strcmp(p.system + sl - tl, tail) == 0, "%s", p.system);
    cr_expect(strstr(p.system, "Selectable apps:SettingsContactsGoogle Photos") != NULL);
    eval_prompt_free(&p);
    cr_expect(tu_remove_dir(dir), "cannot remove %s", dir);
}

static void expect_failure(const char *dir, DatasetId ds, Status code, const char *needle) {
    EvalPrompt p;
    cr_expect_eq(eval_prompt_build(&p, ds, dir), code, "%s", status_message());
    cr_expect(strstr(status_message(), needle) != NULL, "message \"%s\" lacks \"%s\"", status_message(), needle);
    cr_expect_null(p.system);
    cr_expect_null(p.query);
}

Test(prompts, errors_name_the_file) {
    char dir[64];
    tu_make_temp_dir(dir, sizeof dir, "prompts");
    expect_failure(dir, DS_OCTOPUS, ST_IO, "Octopus_refined/functions_simple.txt");
    expect_failure(dir, DS_LLAMATOUCH, ST_IO, "LlamaTouch/dev/llamatouch_task_metadata.tsv");
    tu_write_file_in(dir, "Octopus_refined/functions_simple.txt", "function name: f");
    expect_failure(dir, DS_OCTOPUS, ST_IO, "Octopus_refined/dev/android_benchmark.csv");
    // label outside the choices
    tu_write_file_in(dir, "Octopus_refined/dev/android_benchmark.csv", "q1,f,g,C\n");
    expect_failure(dir, DS_OCTOPUS, ST_FORMAT, "android_benchmark.csv: record 1: label \"C\"");
    // unterminated quote, reported at its record's line
    tu_write_file_in(dir, "Octopus_refined/dev/android_benchmark.csv", "q1,f,g,A\n\"q2,f,g,A\n");
    expect_failure(dir, DS_OCTOPUS, ST_FORMAT, "android_benchmark.csv:2: unterminated quoted field");
    // ragged rows
    tu_write_file_in(dir, "Octopus_refined/dev/android_benchmark.csv", "q1,f,g,A\nq2,f,A\n");
    expect_failure(dir, DS_OCTOPUS, ST_FORMAT, "android_benchmark.csv:2: 3 fields, expected 4");
    // a value pandas would read as NaN
    tu_write_file_in(dir, "Octopus_refined/dev/android_benchmark.csv", "NA,f,g,A\n");
    expect_failure(dir, DS_OCTOPUS, ST_FORMAT, "NaN");
    // a brace in the system text that str.format would choke on
    tu_write_file_in(dir, "Octopus_refined/dev/android_benchmark.csv", "q1,f,g,A\n");
    tu_write_file_in(dir, "Octopus_refined/functions_simple.txt", "function name: f(x={})");
    expect_failure(dir, DS_OCTOPUS, ST_FORMAT, "functions_simple.txt");
    // an empty file
    tu_write_file_in(dir, "LlamaTouch/dev/llamatouch_task_metadata.tsv", "");
    expect_failure(dir, DS_LLAMATOUCH, ST_FORMAT, "llamatouch_task_metadata.tsv: no records");
    cr_expect(tu_remove_dir(dir), "cannot remove %s", dir);
}
