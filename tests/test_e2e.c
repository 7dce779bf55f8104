// elastilm e2e and profile on the tiny LLaMA with a byte tokenizer: the same
// per-request answers for 1, 2 and 3 MPI ranks, a killed replay resuming to
// the same records, measured latency against profiled and fixed budgets,
// queueing by arrival times, and the bad-input messages.
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "test_util.h"

static char g_dir[256], g_llm[700], g_art[700];

static const char *in_dir(const char *name) {
    static char buf[8][900];
    static int slot;
    char *p = buf[slot++ % 8];
    snprintf(p, 900, "%s/%s", g_dir, name);
    return p;
}

// Eight requests of the four HF datasets on the artifact's SLO grid.
static const char *TRACE =
    "[\n"
    "[\"Which is a liquid?\", [\"rock\", \"water\", \"salt\"], \"B\", [0.8, 0.9], 3, \"ARC_E\"],\n"
    "[\"What melts ice?\", [\"heat\", \"cold\", \"dark\", \"wind\"], \"A\", [1.0, 1.0], 0, \"OBQA\"],\n"
    "[\"Dry a towel\", [\"hang it in the sun\", \"put it in a freezer\"], 0, [0.2, 0.6], 5, \"PIQA\"],\n"
    "[\"What do plants need?\", [\"sand\", \"iron\", \"gold\", \"light\"], 3, [0.2, 0.5], 7, \"SCIQ\"],\n"
    "[\"Which animal barks?\", [\"cat\", \"dog\", \"cow\"], \"2\", [0.8, 0.9], 1, \"ARC_E\"],\n"
    "[\"Open a jar\", [\"twist the lid\", \"shake it\"], 1, [0.2, 0.6], 4, \"PIQA\"],\n"
    "[\"What is hot?\", [\"snow\", \"fire\", \"ice\", \"rain\"], \"B\", [1.0, 1.0], 2, \"OBQA\"],\n"
    "[\"Where is coal from?\", [\"clouds\", \"sea\", \"stars\", \"plants\"], 3, [0.2, 0.5], 6, \"SCIQ\"]\n"
    "]\n";

static void setup(void) {
    tu_make_temp_dir(g_dir, sizeof g_dir, "e2e");
    tu_make_byte_llm_artifact(g_dir, g_llm, sizeof g_llm, g_art, sizeof g_art);
    tu_write_file_in(g_dir, "trace_0.25.json", TRACE);
}

static void teardown(void) { tu_remove_dir(g_dir); }

TestSuite(e2e_cli, .init = setup, .fini = teardown, .timeout = 300);

#define E2E "e2e --model %s --artifact %s --trace %s --results %s --ttft-ms 1e6 --tpot-ms 1e6 --quiet "

// The records of a replay, one JSON object per line.
static json_t *records(const char *results, const char *mode) {
    char path[1200];
    snprintf(path, sizeof path, "%s/e2e_llm/alpha=0.25/%s.jsonl", results, mode);
    size_t len;
    char *text = tu_read_text(path, &len);
    json_t *arr = json_array();
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *o = json_loads(line, 0, NULL);
        cr_assert(json_is_object(o), "%s: %s", path, line);
        json_array_append_new(arr, o);
    }
    free(text);
    return arr;
}

// The requests' answers (position, prediction, correctness, decision) must agree.
static void expect_same_answers(json_t *a, json_t *b, const char *what) {
    cr_assert_eq(json_array_size(a), json_array_size(b), "%s: %zu vs %zu records", what, json_array_size(a),
                 json_array_size(b));
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *x = json_array_get(a, i), *y = json_array_get(b, i);
        static const char *const keys[] = {"i", "idx", "dataset", "pred", "correct", "what", "prompt_tokens"};
        for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
            cr_expect(json_equal(json_object_get(x, keys[k]), json_object_get(y, keys[k])), "%s: record %zu: %s differs",
                      what, i, keys[k]);
        cr_expect_eq(json_integer_value(json_object_get(x, "i")), (json_int_t)i, "%s: records out of order", what);
    }
}

static bool have_mpirun(void) {
    if (system("command -v mpirun > /dev/null 2>&1") == 0) return true;
    cr_log_warn("mpirun not found: the multi-rank cases are skipped");
    return false;
}

static int run_ranks(int np, char *out, size_t n, const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 ELASTILM_THREADS=1 "
             "mpirun --oversubscribe -np %d %s %s",
             np, tu_bin(), args);
    return tu_run(cmd, out, n);
}

static bool no_partials(const char *results, const char *mode) {
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "ls %s/e2e_llm/alpha=0.25/%s.jsonl.partial-* > /dev/null 2>&1", results, mode);
    return system(cmd) != 0;
}

Test(e2e_cli, ranks_give_the_same_answers_and_a_killed_replay_resumes) {
    static char out[32768];
    char trace[900];
    snprintf(trace, sizeof trace, "%s", in_dir("trace_0.25.json"));
    cr_assert_eq(tu_run_bin(out, sizeof out, E2E "--mode LLMPruner", g_llm, g_art, trace, in_dir("r1")), 0, "%s", out);
    cr_expect(strstr(out, "e2e alpha=0.25 llm LLMPruner: accuracy") != NULL, "%s", out);
    json_t *one = records(in_dir("r1"), "LLMPruner");
    cr_assert_eq(json_array_size(one), 8);
    // the decision follows each request's own SLO: LLMPruner serves level r = prefill
    cr_expect(strncmp(json_string_value(json_object_get(json_array_get(one, 0), "what")), "level 0.8 ", 10) == 0);
    cr_expect(strncmp(json_string_value(json_object_get(json_array_get(one, 2), "what")), "level 0.2 ", 10) == 0);
    cr_expect(json_is_null(json_object_get(json_array_get(one, 1), "model_ratio")) ||
              json_real_value(json_object_get(json_array_get(one, 1), "model_ratio")) == 1.0);
    // the artifact's result line and the summary row
    char *res = tu_read_text(in_dir("r1/res_llm.txt"), NULL);
    cr_expect(strncmp(res, "alpha=0.25 llm LLMPruner ", 25) == 0, "%s", res);
    char *csv = tu_read_text(in_dir("r1/e2e_llm/summary.csv"), NULL);
    cr_expect(strstr(csv, "\n0.25,LLMPruner,8,") != NULL, "%s", csv);
    // the accuracy-only replay (cached prefix, requests grouped by dataset): the same answers, in trace order
    cr_assert_eq(tu_run_bin(out, sizeof out, "e2e --model %s --artifact %s --trace %s --results %s --mode LLMPruner "
                                             "--latency none --quiet",
                            g_llm, g_art, trace, in_dir("rn")),
                 0, "%s", out);
    cr_expect(strstr(out, "latency not measured") != NULL, "%s", out);
    json_t *none = records(in_dir("rn"), "LLMPruner");
    cr_assert_eq(json_array_size(none), 8);
    for (size_t i = 0; i < 8; i++) {
        json_t *x = json_array_get(one, i), *y = json_array_get(none, i);
        cr_expect_eq(json_integer_value(json_object_get(y, "i")), (json_int_t)i);
        cr_expect(json_equal(json_object_get(x, "pred"), json_object_get(y, "pred")), "record %zu: pred differs", i);
        cr_expect(json_object_get(y, "ttft_ms") == NULL, "record %zu: latency without measuring", i);
    }
    json_decref(none);
    // a killed replay resumes from its records to the same answers
    int rc = tu_run_bin(out, sizeof out, E2E "--mode LLMPruner --kill-after 3", g_llm, g_art, trace, in_dir("rk"));
    cr_expect_neq(rc, 0, "the fault injection did not kill: %s", out);
    cr_assert_eq(tu_run_bin(out, sizeof out, "e2e --model %s --artifact %s --trace %s --results %s --ttft-ms 1e6 "
                                             "--tpot-ms 1e6 --mode LLMPruner",
                            g_llm, g_art, trace, in_dir("rk")),
                 0, "%s", out);
    cr_expect(strstr(out, "resuming: 3 of 8 requests") != NULL, "%s", out);
    json_t *resumed = records(in_dir("rk"), "LLMPruner");
    expect_same_answers(one, resumed, "resumed");
    cr_expect(no_partials(in_dir("rk"), "LLMPruner"));
    char *res_k = tu_read_text(in_dir("rk/res_llm.txt"), NULL);
    cr_expect_str_eq(res_k, res);
    if (have_mpirun()) {
        for (int np = 2; np <= 3; np++) {
            char args[4096], dir[16];
            snprintf(dir, sizeof dir, "r%d", np);
            snprintf(args, sizeof args, E2E "--mode LLMPruner", g_llm, g_art, trace, in_dir(dir));
            cr_assert_eq(run_ranks(np, out, sizeof out, args), 0, "%d ranks: %s", np, out);
            json_t *many = records(in_dir(dir), "LLMPruner");
            expect_same_answers(one, many, dir);
            int ranks_seen = 0;
            for (size_t i = 0; i < json_array_size(many); i++)
                ranks_seen |= 1 << json_integer_value(json_object_get(json_array_get(many, i), "rank"));
            cr_expect_eq(ranks_seen, (1 << np) - 1, "%d ranks: not every rank served requests", np);
            cr_expect(no_partials(in_dir(dir), "LLMPruner"));
            char path[64];
            snprintf(path, sizeof path, "%s/res_llm.txt", dir);
            char *res_n = tu_read_text(in_dir(path), NULL);
            cr_expect_str_eq(res_n, res, "%d ranks", np);
            free(res_n);
            json_decref(many);
        }
        // more ranks than requests
        char args[4096];
        snprintf(args, sizeof args, E2E "--mode LLMPruner --limit 2", g_llm, g_art, trace, in_dir("r4"));
        cr_expect_neq(run_ranks(3, out, sizeof out, args), 0, "%s", out);
        cr_expect(strstr(out, "3 ranks for 2 requests") != NULL, "%s", out);
    }
    free(res), free(res_k), free(csv);
    json_decref(one), json_decref(resumed);
}

// The service time of a record: its TTFT without queueing.
static double service_ms(json_t *r) {
    return json_real_value(json_object_get(r, "tlm_ms")) + json_real_value(json_object_get(r, "prefill_ms"));
}

Test(e2e_cli, budgets_profile_and_arrivals) {
    static char out[32768];
    char trace[900];
    snprintf(trace, sizeof trace, "%s", in_dir("trace_0.25.json"));
    // the profile, stored in the artifact and then the budgets' reference
    cr_assert_eq(tu_run_bin(out, sizeof out, "profile --model %s --artifact %s --lengths 16,64,128 --reps 1", g_llm,
                            g_art),
                 0, "%s", out);
    cr_expect(strstr(out, "as profile/") && strstr(out, "16 tokens"), "%s", out);
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "e2e --model %s --artifact %s --trace %s --results %s --mode full --limit 4", g_llm, g_art,
                            trace, in_dir("p")),
                 0, "%s", out);
    cr_expect(strstr(out, "budgets: SLO fractions of the full model's TTFT (16 ... 128 tokens") != NULL, "%s", out);
    json_t *r = records(in_dir("p"), "full");
    for (size_t i = 0; i < json_array_size(r); i++) {
        json_t *x = json_array_get(r, i);
        double pre = json_real_value(json_object_get(x, "prefill_slo")),
               b = json_real_value(json_object_get(x, "ttft_budget_ms"));
        cr_expect(b > 0 && json_real_value(json_object_get(x, "tpot_budget_ms")) > 0, "record %zu: no budget", i);
        cr_expect(json_integer_value(json_object_get(x, "prompt_tokens")) ==
                      json_integer_value(json_object_get(x, "full_tokens")),
                  "full compresses nothing");
        (void)pre;
    }
    // the budget scales with the request's prefill SLO: same prompt length, budgets in the SLOs' ratio
    json_decref(r);
    // fixed budgets: everything within a generous one, nothing within a tiny one
    cr_assert_eq(tu_run_bin(out, sizeof out, E2E "--mode full --limit 4", g_llm, g_art, trace, in_dir("f1")), 0, "%s",
                 out);
    cr_expect(strstr(out, "SLO attainment 1.000") != NULL, "%s", out);
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "e2e --model %s --artifact %s --trace %s --results %s --ttft-ms 1e-6 --tpot-ms 1e-6 "
                            "--mode full --limit 4",
                            g_llm, g_art, trace, in_dir("f0")),
                 0, "%s", out);
    cr_expect(strstr(out, "SLO attainment 0.000") != NULL, "%s", out);
    // arrivals, all at once: each request waits for the ones before it
    tu_write_file_in(g_dir, "arr.json",
                     "[[\"Which is a liquid?\", [\"rock\", \"water\"], \"B\", [0.8, 0.9], 0, \"ARC_E\", 0.0],\n"
                     " [\"What melts ice?\", [\"heat\", \"cold\"], \"A\", [1.0, 1.0], 1, \"OBQA\", 0.0],\n"
                     " [\"Dry a towel\", [\"sun\", \"freezer\"], 0, [0.2, 0.6], 2, \"PIQA\", 0.0]]\n");
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "e2e --model %s --artifact %s --trace %s --results %s --mode full --arrivals --alpha 0.25",
                            g_llm, g_art, in_dir("arr.json"), in_dir("q")),
                 0, "%s", out);
    cr_expect(strstr(out, "(with queueing)") != NULL, "%s", out);
    json_t *q = records(in_dir("q"), "full");
    cr_assert_eq(json_array_size(q), 3);
    double wait = 0;
    for (size_t i = 0; i < 3; i++) {
        json_t *x = json_array_get(q, i);
        double qm = json_real_value(json_object_get(x, "queue_ms"));
        cr_expect(fabs(qm - wait) < 1e-3 * (1 + wait), "request %zu waited %g ms, want %g", i, qm, wait);
        cr_expect(fabs(json_real_value(json_object_get(x, "ttft_ms")) - (qm + service_ms(x))) < 1e-3 * (1 + qm));
        wait += service_ms(x);
    }
    json_decref(q);
    // --arrivals on a trace without arrival times
    cr_expect_eq(tu_run_bin(out, sizeof out, E2E "--mode full --arrivals", g_llm, g_art, trace, in_dir("x")), 2, "%s",
                 out);
    cr_expect(strstr(out, "no arrival times") != NULL, "%s", out);
}

Test(e2e_cli, bad_input_is_named) {
    static char out[32768];
    char trace[900];
    snprintf(trace, sizeof trace, "%s", in_dir("trace_0.25.json"));
    // a malformed trace: the file and the request
    tu_write_file_in(g_dir, "bad.json",
                     "[[\"q\", [\"a\", \"b\"], \"A\", [1.0, 1.0], 0, \"OBQA\"],\n"
                     " [\"q\", [\"a\", \"b\"], \"A\", [0.55, 1.0], 1, \"OBQA\"]]\n");
    cr_expect_eq(tu_run_bin(out, sizeof out, E2E "--mode full", g_llm, g_art, in_dir("bad.json"), in_dir("b")), 1,
                 "%s", out);
    cr_expect(strstr(out, "bad.json") && strstr(out, "request 1"), "%s", out);
    // a mode whose preparation the artifact lacks
    cr_expect_neq(tu_run_bin(out, sizeof out, E2E "--mode ShortGPT", g_llm, g_art, trace, in_dir("b")), 0, "%s", out);
    cr_expect(strstr(out, "ShortGPT") != NULL && strstr(out, "prepare") != NULL, "%s", out);
    // per-request SLOs only; the trace is required; latency modes
    cr_expect_eq(tu_run_bin(out, sizeof out, E2E "--mode full --prefill-slo 0.5", g_llm, g_art, trace, in_dir("b")), 2,
                 "%s", out);
    cr_expect_eq(tu_run_bin(out, sizeof out, "e2e --model %s --mode full", g_llm), 2, "%s", out);
    cr_expect(strstr(out, "--trace") != NULL, "%s", out);
    cr_expect_eq(tu_run_bin(out, sizeof out, E2E "--mode full --latency fast", g_llm, g_art, trace, in_dir("b")), 2,
                 "%s", out);
    // records of another mode in the way of a resume
    cr_assert_eq(tu_run_bin(out, sizeof out, E2E "--mode full --limit 2", g_llm, g_art, trace, in_dir("m")), 0, "%s",
                 out);
    char from[1200], to[1200];
    snprintf(from, sizeof from, "%s/e2e_llm/alpha=0.25/full.jsonl", in_dir("m"));
    snprintf(to, sizeof to, "%s/e2e_llm/alpha=0.25/LLMPruner.jsonl", in_dir("m"));
    cr_assert_eq(rename(from, to), 0);
    cr_expect_eq(tu_run_bin(out, sizeof out, E2E "--mode LLMPruner --limit 2", g_llm, g_art, trace, in_dir("m")), 1,
                 "%s", out);
    cr_expect(strstr(out, "LLMPruner.jsonl:1") && strstr(out, "mode full"), "%s", out);
    // the artifact's accuracy divides by 600; accuracy-only replays still write their line
    cr_assert_eq(tu_run_bin(out, sizeof out, "e2e --model %s --artifact %s --trace %s --results %s --mode full "
                                             "--latency none --compat artifact",
                            g_llm, g_art, trace, in_dir("c")),
                 0, "%s", out);
    cr_expect(strstr(out, "/600)") != NULL && strstr(out, "latency not measured") != NULL, "%s", out);
    // its summary row leaves the attainment and latency fields empty (make plots leaves it out of that figure)
    char *csv = tu_read_text(in_dir("c/e2e_llm/summary.csv"), NULL);
    cr_expect(strstr(csv, "\n0.25,full,8,") != NULL && strstr(csv, ",,,") != NULL, "%s", csv);
    free(csv);
}
