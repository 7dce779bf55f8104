// elastilm lora end to end on the tiny fixtures: a run killed with SIGKILL and
// resumed gives exactly the uninterrupted run's log and adapter; two MPI ranks
// give the single-rank losses within fp32 rounding; dropout and recomputation
// keep the resume exact; the adapter lands in an artifact; bad input fails
// with a message.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/h5.h"
#include "test_util.h"

#define TINY "--model tests/fixtures/tiny-llama-mha --tokenizer tests/fixtures/train/byte-tokenizer.json "
#define RUN_ARGS                                                                                                    \
    TINY "--data tests/fixtures/train/alpaca.jsonl --batch 8 --micro-batch 2 --epochs 3 --warmup 2 --lr 1e-2 "     \
         "--eval-every 5 --save-every 4 --val-size 8 --quiet --threads 1 "

static void check_same_file(const char *a, const char *b) {
    size_t la, lb;
    uint8_t *da = tu_read_file(a, &la), *db = tu_read_file(b, &lb);
    cr_assert(la == lb && memcmp(da, db, la) == 0, "%s and %s differ", a, b);
    free(da);
    free(db);
}

static void kill_and_resume(const char *extra) {
    char ref[64], cut[64], cmd[2048], out[8192], a[128], b[128];
    tu_make_temp_dir(ref, sizeof ref, "lora");
    tu_make_temp_dir(cut, sizeof cut, "lora");
    snprintf(cmd, sizeof cmd, "%s lora " RUN_ARGS "%s --out %s", tu_bin(), extra, ref);
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    // killed after step 7: the checkpoint holds step 4, so steps 5-7 are redone
    snprintf(cmd, sizeof cmd, "%s lora " RUN_ARGS "%s --out %s --kill-after-step 7", tu_bin(), extra, cut);
    int rc = tu_run(cmd, out, sizeof out);
    cr_assert_neq(rc, 0, "the run was to be killed: %s", out);
    snprintf(a, sizeof a, "%s/result.json", cut);
    cr_assert(access(a, F_OK) != 0, "a killed run has no result");
    double losses[32];
    snprintf(a, sizeof a, "%s/train_log.tsv", cut);
    cr_assert_eq(tu_train_losses(a, losses, 32), 4, "the log of the last checkpoint has 4 steps");
    snprintf(cmd, sizeof cmd, "%s lora " RUN_ARGS "%s --out %s --resume", tu_bin(), extra, cut);
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    snprintf(a, sizeof a, "%s/train_log.tsv", ref);
    snprintf(b, sizeof b, "%s/train_log.tsv", cut);
    check_same_file(a, b);
    snprintf(a, sizeof a, "%s/adapter/adapter_model.safetensors", ref);
    snprintf(b, sizeof b, "%s/adapter/adapter_model.safetensors", cut);
    check_same_file(a, b);
    // training lowered the validation loss
    snprintf(a, sizeof a, "%s/result.json", ref);
    char *res = tu_read_text(a, NULL);
    double first, best;
    const char *p = strstr(res, "\"first_val_loss\": "), *q = strstr(res, "\"best_val_loss\": ");
    cr_assert(p && q, "%s", res);
    first = atof(p + 18), best = atof(q + 17);
    cr_expect(best < first - 0.5, "validation loss %g -> %g", first, best);
    free(res);
    tu_remove_dir(ref);
    tu_remove_dir(cut);
}

Test(train_cli, kill_and_resume_is_exact) { kill_and_resume(""); }
Test(train_cli, kill_and_resume_with_dropout_and_recompute) { kill_and_resume("--dropout 0.1 --recompute"); }

Test(train_cli, resume_refuses_other_settings) {
    char dir[64], cmd[2048], out[8192];
    tu_make_temp_dir(dir, sizeof dir, "lora");
    snprintf(cmd, sizeof cmd, "%s lora " RUN_ARGS "--out %s --kill-after-step 5", tu_bin(), dir);
    cr_assert_neq(tu_run(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "%s lora " RUN_ARGS "--out %s --resume --rank 4", tu_bin(), dir);
    cr_assert_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "checkpoint.h5 was written by a run with other settings") != NULL, "%s", out);
    tu_remove_dir(dir);
}

// mpirun -np 2: each rank takes every other micro-batch; gradients are summed.
Test(train_cli, two_ranks_match_one) {
    char one[64], two[64], cmd[2048], out[16384], path[128];
    tu_make_temp_dir(one, sizeof one, "lora");
    tu_make_temp_dir(two, sizeof two, "lora");
    snprintf(cmd, sizeof cmd, "%s lora " RUN_ARGS "--out %s", tu_bin(), one);
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    // root in CI containers; leak checking is off for the MPI runtime's own allocations
    snprintf(cmd, sizeof cmd,
             "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 "
             "mpirun --oversubscribe -np 2 %s lora " RUN_ARGS "--out %s",
             tu_bin(), two);
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    double a[32], b[32];
    snprintf(path, sizeof path, "%s/train_log.tsv", one);
    int n = tu_train_losses(path, a, 32);
    snprintf(path, sizeof path, "%s/train_log.tsv", two);
    cr_assert_eq(tu_train_losses(path, b, 32), n);
    cr_assert_eq(n, 15);
    for (int i = 0; i < n; i++)
        cr_expect(fabs(a[i] - b[i]) <= 2e-6 * fabs(a[i]), "step %d: 1 rank %.9g, 2 ranks %.9g", i + 1, a[i], b[i]);
    cr_expect(fabs(a[n - 1] - a[0]) > 1.0, "the runs trained (%g -> %g)", a[0], a[n - 1]);
    // killed under mpirun and resumed (rank 0 reads the checkpoint and sends it to rank 1):
    // exactly the uninterrupted 2-rank run
    char cut[64], log_a[128], log_b[128];
    tu_make_temp_dir(cut, sizeof cut, "lora");
    const char *mpi = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 "
                      "mpirun --oversubscribe -np 2";
    snprintf(cmd, sizeof cmd, "%s %s lora " RUN_ARGS "--out %s --kill-after-step 7", mpi, tu_bin(), cut);
    cr_assert_neq(tu_run(cmd, out, sizeof out), 0, "the run was to be killed: %s", out);
    snprintf(cmd, sizeof cmd, "%s %s lora " RUN_ARGS "--out %s --resume", mpi, tu_bin(), cut);
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    snprintf(log_a, sizeof log_a, "%s/train_log.tsv", two);
    snprintf(log_b, sizeof log_b, "%s/train_log.tsv", cut);
    check_same_file(log_a, log_b);
    tu_remove_dir(one);
    tu_remove_dir(two);
    tu_remove_dir(cut);
}

// elasticize -> lora --artifact --level: the adapter is trained on the level's
// prefix view and stored as lora/<level>; forward --level applies it.
Test(train_cli, artifact_storage_and_levels) {
    char dir[64], art[128], cmd[2048], out[8192];
    tu_make_temp_dir(dir, sizeof dir, "lora");
    snprintf(art, sizeof art, "%s/art.h5", dir);
    snprintf(cmd, sizeof cmd,
             "%s elasticize " TINY "--calib tests/fixtures/train/text.txt --samples 4 --seq 16 --keep 1 --out %s --quiet",
             tu_bin(), art);
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    snprintf(cmd, sizeof cmd, "%s lora " RUN_ARGS "--max-steps 2 --artifact %s --level 0.45", tu_bin(), art);
    cr_assert_eq(tu_run(cmd, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "no level 0.45") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s lora " RUN_ARGS "--max-steps 2 --artifact %s --level 0.5", tu_bin(), art);
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    H5Store *f;
    cr_assert_eq(h5_open_read(&f, art), ST_OK);
    int64_t dims[2];
    int32_t *anchors;
    cr_assert_eq(h5_read_i32(f, "anchors/layers", 1, dims, &anchors), ST_OK, "%s", status_message());
    cr_assert_eq(dims[0], 1);
    int pruned = 1 - anchors[0], anchor = anchors[0];
    free(anchors);
    float *data;
    char name[64];
    // tiny-llama-mha at level 0.5 (ratio 0.625): 4 - (80 - 30) / 20 = 2 heads of 20, int(192 * 0.375) = 72 channels
    snprintf(name, sizeof name, "lora/0.5/%d/q_proj/B", pruned);
    cr_assert_eq(h5_read_f32(f, name, 2, dims, &data), ST_OK, "%s", status_message());
    cr_expect(dims[0] == 40 && dims[1] == 8, "q B of the pruned layer is [%lld, %lld]", (long long)dims[0],
              (long long)dims[1]);
    free(data);
    snprintf(name, sizeof name, "lora/0.5/%d/down_proj/A", pruned);
    cr_assert_eq(h5_read_f32(f, name, 2, dims, &data), ST_OK, "%s", status_message());
    cr_expect(dims[0] == 8 && dims[1] == 72, "down A is [%lld, %lld]", (long long)dims[0], (long long)dims[1]);
    free(data);
    snprintf(name, sizeof name, "lora/0.5/%d/down_proj/A", anchor);
    cr_assert_eq(h5_read_f32(f, name, 2, dims, &data), ST_OK, "%s", status_message());
    cr_expect(dims[1] == 192, "the anchor layer's adapter is full width");
    free(data);
    h5_close(f);
    char with[4096], without[4096];
    snprintf(cmd, sizeof cmd, "%s forward --model tests/fixtures/tiny-llama-mha --ids '5 6 7 8' --artifact %s --level 0.5", tu_bin(), art);
    cr_assert_eq(tu_run(cmd, with, sizeof with), 0, "%s", with);
    snprintf(cmd, sizeof cmd, "%s forward --model tests/fixtures/tiny-llama-mha --ids '5 6 7 8' --artifact %s --level 0.5 --no-lora", tu_bin(), art);
    cr_assert_eq(tu_run(cmd, without, sizeof without), 0, "%s", without);
    cr_expect(strcmp(with, without) != 0, "the level's adapter changes the logits");
    // ppl through the inference forward (right-padded batches over a KV cache, the GPU's path)
    // equals the packed training forward's, for the full model and for the level with its adapter
    const char *levels[] = {"", "--artifact %s --level 0.5"};
    for (int i = 0; i < 2; i++) {
        double loss[2];
        for (int pth = 0; pth < 2; pth++) {
            char lv[256];
            snprintf(lv, sizeof lv, levels[i], art);
            snprintf(cmd, sizeof cmd, "%s ppl " TINY "--data tests/fixtures/train/alpaca.jsonl --batch 5 --quiet %s --path %s",
                     tu_bin(), lv, pth ? "serve" : "train");
            cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
            const char *at = strstr(out, "\"loss\": ");
            cr_assert(at && strstr(out, pth ? "\"path\": \"serve\"" : "\"path\": \"train\""), "%s", out);
            loss[pth] = atof(at + 8);
        }
        cr_expect(fabs(loss[1] - loss[0]) <= 1e-5 * fabs(loss[0]), "%s: serve %.8f vs train %.8f", levels[i], loss[1],
                  loss[0]);
    }
    snprintf(cmd, sizeof cmd, "%s ppl " TINY "--data tests/fixtures/train/alpaca.jsonl --path gpu", tu_bin());
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "--path: expected train or serve") != NULL, "%s", out);
    tu_remove_dir(dir);
}

Test(train_cli, bad_input_is_reported) {
    char dir[64], cmd[2048], out[8192], path[128];
    tu_make_temp_dir(dir, sizeof dir, "lora");
    snprintf(path, sizeof path, "%s/bad.jsonl", dir);
    FILE *fp = fopen(path, "w");
    fprintf(fp, "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": \"a\", \"output\": }\n");
    fclose(fp);
    struct { const char *args; int rc; const char *msg; } cases[] = {
        {TINY "--data %s --out /tmp/x", 1, "bad.jsonl:2: malformed JSON"},
        {TINY "--data tests/fixtures/train/alpaca.jsonl --out /tmp/x --batch 6 --micro-batch 4", 2, "multiple of --micro-batch"},
        {TINY "--data tests/fixtures/train/alpaca.jsonl", 2, "give --out DIR and/or --artifact FILE"},
        {TINY "--data tests/fixtures/train/alpaca.jsonl --out /tmp/x --targets q,z", 2, "unknown LoRA target 'z'"},
        {TINY "--data tests/fixtures/train/alpaca.jsonl --out /tmp/x --lr abc", 2, "--lr: expected a number"},
        {TINY "--data tests/fixtures/train/alpaca.jsonl --out /tmp/x --level 0.5", 2, "--level below 1 needs --artifact"},
        {TINY "--data tests/fixtures/train/missing.jsonl --out /tmp/x", 1, "missing.jsonl"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char args[1024];
        snprintf(args, sizeof args, cases[i].args, path);
        snprintf(cmd, sizeof cmd, "%s lora %s --quiet", tu_bin(), args);
        int rc = tu_run(cmd, out, sizeof out);
        cr_expect_eq(rc, cases[i].rc, "case %zu: exit %d: %s", i, rc, out);
        cr_expect(strstr(out, cases[i].msg) != NULL, "case %zu: %s", i, out);
        cr_expect(strncmp(out, "elastilm: ", 10) == 0, "case %zu: %s", i, out);
    }
    tu_remove_dir(dir);
}
