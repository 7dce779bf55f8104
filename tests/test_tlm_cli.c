// The TLM from the command line: labels (LLM self-information and pairs), the
// score head's training (artifact, HF export, kill-and-resume), compression
// by every method from an artifact and from the exported directory, eval
// with a compressed system prompt, and bad input. A tiny BERT with the real
// uncased WordPiece vocabulary (random weights, written here) and the tiny
// Llama-3 fixture with a byte tokenizer as the LLM.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/h5.h"
#include "models/encoder.h"
#include "test_util.h"


static char g_dir[256]; // temp dir: tok/, enc/, bytes.json, text.txt, pairs.jsonl
static char g_enc[512]; // the tiny encoder (HF directory)
static char g_llm[256]; // the tiny Llama-3 with a byte tokenizer.json

static void setup(void) {
    tu_make_temp_dir(g_dir, sizeof g_dir, "tlmcli");
    tu_make_tiny_encoder(g_dir, g_enc, sizeof g_enc);
    char path[600];
    snprintf(path, sizeof path, "%s/bytes.json", g_dir);
    tu_write_byte_tokenizer(path);
    tu_copy_dir("tests/fixtures/tiny-llama3-gqa", g_llm, sizeof g_llm);
    snprintf(path, sizeof path, "%s/tokenizer.json", g_llm);
    tu_write_byte_tokenizer(path);
    // short documents: every chunk is one sequence of at most 62 pieces
    tu_write_file_in(g_dir, "text.txt",
                     "Cats sleep most of the day. Dogs bark at night?\n\n"
                     "The river floods every spring and the farmers plant rice.\n\n"
                     "A prime number has exactly two divisors. Seven is prime.\n\n"
                     "Bees make honey from the nectar of flowers in the summer.\n\n"
                     "The moon orbits the earth once a month and shows phases.\n\n"
                     "Iron rusts when water and air reach its surface for long.\n");
}

static void teardown(void) {
    tu_remove_dir(g_dir);
    tu_remove_dir(g_llm);
}

TestSuite(tlm_cli, .init = setup, .fini = teardown, .timeout = 300);

static void make_labels(char *labels, size_t n) {
    static char out[8192];
    snprintf(labels, n, "%s/labels.jsonl", g_dir);
    int rc = tu_run_bin(out, sizeof out,
                        "tlm labels --model tests/fixtures/tiny-llama3-gqa --tokenizer %s/bytes.json --encoder %s "
                        "--text %s/text.txt --keep 0.5 --chunk 62 --out %s",
                        g_dir, g_enc, g_dir, labels);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "6 labelled texts"), "%s", out);
}

static uint8_t *file_bytes(const char *dir, const char *name, size_t *len) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return tu_read_file(path, len);
}

Test(tlm_cli, score_trains_exports_and_resumes_exactly) {
    static char out[16384];
    char labels[600];
    make_labels(labels, sizeof labels);
    // uninterrupted: 9 steps (3 epochs of 3: 5 training texts, batch 2), checkpoints every step, dropout on
    const char *common = "--epochs 3 --batch 2 --micro-batch 1 --val 0.2 --save-every 1 --eval-every 2 --lr 1e-3";
    int rc = tu_run_bin(out, sizeof out,
                        "tlm score --encoder %s --labels %s %s --out %s/a --artifact %s/a.h5 --export %s/a_hf", g_enc,
                        labels, common, g_dir, g_dir, g_dir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "\"steps\": 9"), "%s", out);
    cr_expect(strstr(out, "\"val_f1\""), "%s", out);
    // killed after step 3, then resumed
    rc = tu_run_bin(out, sizeof out,
                    "tlm score --encoder %s --labels %s %s --out %s/b --export %s/b_hf --kill-after-step 3", g_enc,
                    labels, common, g_dir, g_dir);
    cr_assert_neq(rc, 0, "the run was to be killed: %s", out);
    rc = tu_run_bin(out, sizeof out, "tlm score --encoder %s --labels %s %s --out %s/b --resume --export %s/b_hf",
                    g_enc, labels, common, g_dir, g_dir);
    cr_assert_eq(rc, 0, "%s", out);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/a", g_dir);
    snprintf(b, sizeof b, "%s/b", g_dir);
    size_t la, lb;
    uint8_t *ta = file_bytes(a, "train_log.tsv", &la), *tb = file_bytes(b, "train_log.tsv", &lb);
    cr_expect(la == lb && !memcmp(ta, tb, la), "train logs differ:\n%.*s\n---\n%.*s", (int)la, ta, (int)lb, tb);
    free(ta), free(tb);
    snprintf(a, sizeof a, "%s/a_hf", g_dir);
    snprintf(b, sizeof b, "%s/b_hf", g_dir);
    ta = file_bytes(a, "model.safetensors", &la), tb = file_bytes(b, "model.safetensors", &lb);
    cr_expect(la == lb && !memcmp(ta, tb, la), "the resumed run's weights differ from the uninterrupted run's");
    free(ta), free(tb);
    // another run's settings are refused on resume
    rc = tu_run_bin(out, sizeof out,
                    "tlm score --encoder %s --labels %s %s --out %s/b --resume --lr 2e-3 --export %s/c_hf", g_enc,
                    labels, "--epochs 3 --batch 2 --micro-batch 1 --val 0.2", g_dir, g_dir);
    cr_expect_neq(rc, 0, "%s", out);
    // the artifact and the exported directory are the same TLM: the same compressions
    static char o1[4096], o2[4096];
    const char *text = "Cats sleep most of the day, and dogs bark at night near the river? Bees make honey.";
    char compat[400];
    snprintf(compat, sizeof compat, "score --compat artifact --model %s", g_llm);
    const char *methods[] = {"score", "random", compat};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(tu_run_bin(o1, sizeof o1, "compress --tlm %s/a.h5 --ratio 0.5 --text '%s' --method %s --quiet",
                                g_dir, text, methods[i]),
                     0, "%s", o1);
        cr_assert_eq(tu_run_bin(o2, sizeof o2, "compress --tlm %s/a_hf --ratio 0.5 --text '%s' --method %s --quiet",
                                g_dir, text, methods[i]),
                     0, "%s", o2);
        cr_expect_str_eq(o1, o2, "method %s", methods[i]);
        if (i < 2) cr_expect(strlen(o1) < strlen(text), "%s: %s", methods[i], o1);
    }
    // tlm scores: one line per piece, the same from the artifact and the directory
    cr_assert_eq(tu_run_bin(o1, sizeof o1, "tlm scores --tlm %s/a.h5 --text 'Cats sleep? Yes.'", g_dir), 0, "%s", o1);
    cr_assert_eq(tu_run_bin(o2, sizeof o2, "tlm scores --tlm %s/a_hf --text 'Cats sleep? Yes.'", g_dir), 0, "%s", o2);
    cr_expect_str_eq(o1, o2);
    cr_expect(!strncmp(o1, "piece\tstart\tend\tlogit_drop\tlogit_keep\tp_keep\ncats\t0\t4\t", 48), "%s", o1);
    int lines = 0;
    for (const char *c = o1; *c; c++) lines += *c == '\n';
    cr_expect_eq(lines, 6, "%s", o1); // the header and cats sleep ? yes .
    // p = 1 leaves the prompt as it is
    cr_assert_eq(tu_run_bin(o1, sizeof o1, "compress --tlm %s/a.h5 --ratio 1 --text '%s' --quiet", g_dir, text), 0,
                 "%s", o1);
    char want[512];
    snprintf(want, sizeof want, "%s\n", text);
    cr_expect_str_eq(o1, want);
}

Test(tlm_cli, eval_compresses_the_system_prompt) {
    static char out[16384];
    char labels[600];
    make_labels(labels, sizeof labels);
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "tlm score --encoder %s --labels %s --max-steps 1 --batch 2 --micro-batch 2 "
                            "--artifact %s/t.h5",
                            g_enc, labels, g_dir),
                 0, "%s", out);
    cr_assert_eq(
        tu_run_bin(out, sizeof out,
                   "eval --model %s --model-name tiny --dataset ARC_E --data tests/fixtures/datasets/hf_arc_easy.jsonl "
                   "--limit 3 --compress score --prompt-ratio 0.4 --tlm %s/t.h5 --results %s/res",
                   g_llm, g_dir, g_dir),
        0, "%s", out);
    const char *line = strstr(out, "system prompt: score at p = 0.4, ");
    cr_assert(line, "%s", out);
    double kept, all;
    cr_assert_eq(sscanf(line, "system prompt: score at p = 0.4, %lf of %lf", &kept, &all), 2, "%s", line);
    cr_expect(kept < 0.6 * all, "the system prompt shrank: %s", line);
    char path[600];
    snprintf(path, sizeof path, "%s/res/tiny_ARC_E.txt", g_dir);
    size_t len;
    uint8_t *res = tu_read_file(path, &len);
    cr_expect(res && strstr((char *)res, "ARC_E tiny full+score:0.4 1.0 1.0 "), "%s", res ? (char *)res : "");
    free(res);
}

Test(tlm_cli, bad_input) {
    static char out[8192];
    char path[600];
    // an empty label file
    snprintf(path, sizeof path, "%s/empty.jsonl", g_dir);
    tu_write_file_in(g_dir, "empty.jsonl", "\n");
    cr_expect_eq(
        tu_run_bin(out, sizeof out, "tlm score --encoder %s --labels %s --artifact %s/x.h5", g_enc, path, g_dir), 1);
    cr_expect(strstr(out, "empty.jsonl") && strstr(out, "no labelled text"), "%s", out);
    // a checkpoint that is not an encoder
    tu_write_file_in(g_dir, "l.jsonl", "{\"text\": \"a b\", \"spans\": [[0, 1, 1]]}\n");
    snprintf(path, sizeof path, "%s/l.jsonl", g_dir);
    cr_expect_eq(tu_run_bin(out, sizeof out,
                            "tlm score --encoder tests/fixtures/tiny-llama3-gqa --labels %s --artifact %s/x.h5", path,
                            g_dir),
                 1);
    cr_expect(strstr(out, "tiny-llama3-gqa") && strstr(out, "llama"), "%s", out);
    // ratios outside (0, 1]
    cr_expect_eq(tu_run_bin(out, sizeof out, "compress --tlm %s --ratio 1.5 --text hi", g_enc), 2);
    cr_expect(strstr(out, "--ratio"), "%s", out);
    cr_expect_eq(tu_run_bin(out, sizeof out, "compress --tlm %s --ratio 0 --text hi", g_enc), 2);
    // an artifact without a TLM
    tu_write_file_in(g_dir, "note.txt", "x");
    snprintf(path, sizeof path, "%s/none.h5", g_dir);
    H5Store *f;
    cr_assert_eq(h5_create(&f, path), ST_OK);
    cr_assert_eq(h5_make_group(f, "levels"), ST_OK);
    cr_assert_eq(h5_commit(f), ST_OK);
    cr_expect_eq(tu_run_bin(out, sizeof out, "compress --tlm %s --ratio 0.5 --text hi", path), 1);
    cr_expect(strstr(out, "none.h5") && strstr(out, "tlm/score"), "%s", out);
    // an encoder without a score head
    Encoder m;
    cr_assert_eq(encoder_load(&m, g_enc), ST_OK);
    cr_assert_eq(encoder_set_head(&m, HEAD_NONE, 0, 1), ST_OK, "%s", status_message());
    char base[600], tok_dir[600];
    snprintf(base, sizeof base, "%s/base", g_dir);
    snprintf(tok_dir, sizeof tok_dir, "%s/tok", g_dir);
    cr_assert_eq(encoder_save_hf(&m, base, tok_dir), ST_OK, "%s", status_message());
    encoder_free(&m);
    cr_expect_eq(tu_run_bin(out, sizeof out, "compress --tlm %s --ratio 0.5 --text hi", base), 2);
    cr_expect(strstr(out, "score head"), "%s", out);
    // eval: compression flags come together; an unknown method
    cr_expect_eq(tu_run_bin(out, sizeof out, "eval --model %s --dataset ARC_E --compress score", g_llm), 2);
    cr_expect(strstr(out, "--tlm"), "%s", out);
    cr_expect_eq(tu_run_bin(out, sizeof out, "compress --tlm %s --ratio 0.5 --text hi --method best", g_enc), 2);
    cr_expect(strstr(out, "--method"), "%s", out);
    // labels: neither or both sources
    cr_expect_eq(tu_run_bin(out, sizeof out, "tlm labels --encoder %s --out %s/o.jsonl", g_enc, g_dir), 2);
    cr_expect_eq(
        tu_run_bin(out, sizeof out, "tlm labels --encoder %s --keep 1.5 --pairs x --out %s/o.jsonl", g_enc, g_dir), 2);
    cr_expect(strstr(out, "--keep"), "%s", out);
    cr_expect_eq(tu_run_bin(out, sizeof out, "tlm bogus"), 2);
}

// mpirun -np 2: each rank takes every other micro-batch; the losses are the single rank's.
Test(tlm_cli, two_ranks_match_one) {
    static char out[16384];
    char labels[600];
    make_labels(labels, sizeof labels);
    const char *args = "--epochs 2 --batch 2 --micro-batch 1 --val 0.2 --lr 1e-3 --eval-every 0 --save-every 0";
    cr_assert_eq(tu_run_bin(out, sizeof out, "tlm score --encoder %s --labels %s %s --out %s/one --export %s/one_hf",
                            g_enc, labels, args, g_dir, g_dir),
                 0, "%s", out);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 ELASTILM_THREADS=1 "
             "mpirun --oversubscribe -np 2 %s tlm score --encoder %s --labels %s %s --out %s/two --export %s/two_hf",
             tu_bin(), g_enc, labels, args, g_dir, g_dir);
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    double a[16], b[16];
    char path[600];
    snprintf(path, sizeof path, "%s/one/train_log.tsv", g_dir);
    int n = tu_train_losses(path, a, 16);
    snprintf(path, sizeof path, "%s/two/train_log.tsv", g_dir);
    cr_assert_eq(tu_train_losses(path, b, 16), n);
    cr_assert_eq(n, 6);
    for (int i = 0; i < n; i++)
        cr_expect(fabs(a[i] - b[i]) <= 2e-6 * fabs(a[i]), "step %d: 1 rank %.9g, 2 ranks %.9g", i + 1, a[i], b[i]);
}
