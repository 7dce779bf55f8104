// The training loop (trainer.h) through its model interface (train_model.h),
// without LLaMA: a toy linear regression whose examples hold a varying number
// of rows (the counted units). One AdamW step matches its closed form; the
// loss is normalised per counted unit however the batch is cut into
// micro-batches; micro-batches respect the model's capacity and go round-robin
// to ranks; training lowers the validation loss and keeps the best state; a run
// SIGKILLed after a step and resumed from its checkpoint ends with exactly the
// parameters and log of an uninterrupted run; another run's checkpoint is refused.
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/log.h"
#include "runtime/rng.h"
#include "test_util.h"
#include "train/trainer.h"

#define NF 3              // features; params = NF weights + 1 bias
#define NP (NF + 1)
#define N_EX 40
#define MAX_ROWS 4

typedef struct {
    int rows[N_EX];                      // counted units (and size) of each example
    float x[N_EX][MAX_ROWS][NF], y[N_EX][MAX_ROWS];
    float noise;                         // seeded target noise in step() (stands for dropout)
    Tensor params, grads;
    TrainModel tm;
    // what the loop asked for
    int max_n, calls;
    int64_t max_size;
    int seen[N_EX];                      // times each example went through step()
} Toy;

static int64_t toy_counted(void *ctx, int e) { return ((Toy *)ctx)->rows[e]; }
static int64_t toy_size(void *ctx, int e) { return ((Toy *)ctx)->rows[e]; }

// Loss of one row: 0.5 * (w.x + b - y)^2.
static double toy_rows(Toy *t, const int *ex, int n, float scale, uint64_t seed, bool grad, int64_t *units) {
    const float *p = t->params.data;
    float *g = t->grads.data;
    double loss = 0;
    *units = 0;
    for (int i = 0; i < n; i++) {
        Rng rng;
        rng_seed(&rng, rng_mix(seed, (uint64_t)ex[i]));
        for (int r = 0; r < t->rows[ex[i]]; r++) {
            const float *x = t->x[ex[i]][r];
            float y = t->y[ex[i]][r] + (grad ? t->noise * (rng_uniform(&rng) - 0.5f) : 0.0f);
            float pred = p[NF];
            for (int f = 0; f < NF; f++) pred += p[f] * x[f];
            float d = pred - y;
            loss += 0.5 * (double)d * d;
            if (grad) {
                for (int f = 0; f < NF; f++) g[f] += scale * d * x[f];
                g[NF] += scale * d;
            }
        }
        *units += t->rows[ex[i]];
    }
    return loss;
}

static Status toy_step(void *ctx, const int *ex, int n, float scale, uint64_t seed, double *loss, int64_t *size) {
    Toy *t = ctx;
    if (n > t->max_n) t->max_n = n;
    t->calls++;
    for (int i = 0; i < n; i++) t->seen[ex[i]]++;
    *loss = toy_rows(t, ex, n, scale, seed, true, size);
    if (*size > t->max_size) t->max_size = *size;
    return ST_OK;
}

static Status toy_eval(void *ctx, const int *ex, int n, double *loss, int64_t *counted) {
    *loss = toy_rows(ctx, ex, n, 0, 0, false, counted);
    return ST_OK;
}

// Rows of example e: 1 + e % MAX_ROWS; y = 2 x0 - x1 + 0.5 x2 + 0.3 + small noise.
static void toy_init(Toy *t, int64_t capacity, float noise) {
    memset(t, 0, sizeof *t);
    Rng rng;
    rng_seed(&rng, 7);
    const float w[NF] = {2.0f, -1.0f, 0.5f};
    for (int e = 0; e < N_EX; e++) {
        t->rows[e] = 1 + e % MAX_ROWS;
        for (int r = 0; r < t->rows[e]; r++) {
            float y = 0.3f;
            for (int f = 0; f < NF; f++) {
                t->x[e][r][f] = 2.0f * rng_uniform(&rng) - 1.0f;
                y += w[f] * t->x[e][r][f];
            }
            t->y[e][r] = y + 0.01f * (rng_uniform(&rng) - 0.5f);
        }
    }
    t->noise = noise;
    cr_assert_eq(tensor_alloc_1d(&t->params, DT_F32, (Device){DEV_CPU, 0}, NP), ST_OK);
    cr_assert_eq(tensor_alloc_1d(&t->grads, DT_F32, (Device){DEV_CPU, 0}, NP), ST_OK);
    float *p = t->params.data;
    for (int i = 0; i < NP; i++) p[i] = 0.1f * (float)(i + 1);
    t->tm = (TrainModel){.ctx = t, .kind = "toy", .params = &t->params, .grads = &t->grads, .n_params = NP,
                         .n_examples = N_EX, .capacity = capacity, .counted = toy_counted, .size = toy_size,
                         .step = toy_step, .eval = toy_eval};
}

static void toy_free(Toy *t) {
    tensor_free(&t->params);
    tensor_free(&t->grads);
}

// The first n_val examples are validation, the rest training.
static void make_split(DataSplit *s, int n_val) {
    s->n_val = n_val, s->n_train = N_EX - n_val;
    s->val = malloc((size_t)(n_val > 0 ? n_val : 1) * sizeof(int));
    s->train = malloc((size_t)s->n_train * sizeof(int));
    for (int i = 0; i < N_EX; i++) {
        if (i < n_val) s->val[i] = i;
        else s->train[i - n_val] = i;
    }
}

static void quiet(void) { log_set_quiet(true); }
TestSuite(trainer_generic, .init = quiet);

static const Dist one_rank = {.rank = 0, .world = 1, .mpi = false};

static TrainJob job_for(Toy *t, const DataSplit *s, int batch, int micro) {
    OptimConfig oc = optim_defaults();
    oc.lr = 0.05f, oc.warmup = 2, oc.max_grad_norm = 5.0f, oc.weight_decay = 0.01f;
    return (TrainJob){.model = &t->tm, .split = s, .optim = oc,
                      .loop = {.epochs = 3, .batch = batch, .micro_batch = micro, .eval_every = 4, .save_every = 3,
                               .seed = 11},
                      .fingerprint = "toy", .dist = &one_rank};
}

// One step, clipping off, no warm-up: p1 = p0 (1 - lr wd) - lr g / (|g| + eps)
// with g the mean gradient per counted row of the global batch.
Test(trainer_generic, one_adamw_step_is_the_closed_form) {
    Toy t;
    toy_init(&t, 0, 0.0f);
    DataSplit s;
    make_split(&s, 0);
    TrainJob job = job_for(&t, &s, N_EX, 4);
    job.optim.max_grad_norm = 0, job.optim.warmup = 0, job.loop.max_steps = 1;
    float p0[NP];
    memcpy(p0, t.params.data, sizeof p0);
    // the global batch of step 0: every training example
    double g[NP] = {0}, loss = 0;
    int64_t rows = 0;
    for (int e = 0; e < N_EX; e++)
        for (int r = 0; r < t.rows[e]; r++) {
            double pred = p0[NF];
            for (int f = 0; f < NF; f++) pred += (double)p0[f] * t.x[e][r][f];
            double d = pred - t.y[e][r];
            for (int f = 0; f < NF; f++) g[f] += d * t.x[e][r][f];
            g[NF] += d;
            loss += 0.5 * d * d;
            rows++;
        }
    TrainResult res;
    cr_assert_eq(trainer_run(&job, &res), ST_OK, "%s", status_message());
    cr_assert_eq(res.steps, 1);
    cr_expect(fabs(res.last_train_loss - loss / (double)rows) <= 1e-5 * loss / (double)rows, "loss %.9g vs %.9g",
              res.last_train_loss, loss / (double)rows);
    const float *p1 = t.params.data;
    float lr = job.optim.lr, wd = job.optim.weight_decay;
    for (int i = 0; i < NP; i++) {
        double gi = g[i] / (double)rows;
        double want = p0[i] * (1.0 - (double)lr * wd) - lr * gi / (fabs(gi) + 1e-8);
        cr_expect(fabs(p1[i] - want) <= 1e-6, "param %d: %.9g, closed form %.9g", i, p1[i], want);
    }
    cr_expect_eq(t.max_n, 4, "micro-batches of at most 4 examples");
    cr_expect_eq(t.calls, 10, "40 examples in micro-batches of 4");
    data_split_free(&s);
    toy_free(&t);
}

// Every counted unit weighs the same: micro-batches of 1 example or of the whole
// batch give the same losses; micro-batches never exceed the model's capacity.
// (Without the seeded noise: each micro-batch has its own seed.)
Test(trainer_generic, loss_per_unit_whatever_the_micro_batches) {
    double last[3];
    int64_t caps[3] = {0, 0, 6};
    int micros[3] = {1, 8, 8};
    for (int c = 0; c < 3; c++) {
        Toy t;
        toy_init(&t, caps[c], 0.0f);
        DataSplit s;
        make_split(&s, 8);
        TrainJob job = job_for(&t, &s, 8, micros[c]);
        TrainResult res;
        cr_assert_eq(trainer_run(&job, &res), ST_OK, "%s", status_message());
        cr_assert_eq(res.steps, 12);
        last[c] = res.last_train_loss;
        cr_expect(t.max_n <= micros[c]);
        if (caps[c]) cr_expect(t.max_size <= caps[c], "a micro-batch of size %lld", (long long)t.max_size);
        for (int e = 8; e < N_EX; e++) cr_expect_eq(t.seen[e], 3, "example %d in each of 3 epochs", e);
        data_split_free(&s);
        toy_free(&t);
    }
    cr_expect(fabs(last[0] - last[1]) <= 1e-5 * last[1], "%.9g vs %.9g", last[0], last[1]);
    cr_expect(fabs(last[2] - last[1]) <= 1e-5 * last[1], "%.9g vs %.9g", last[2], last[1]);
}

// An example larger than the capacity cannot be trained: refused up front.
Test(trainer_generic, example_over_capacity_is_refused) {
    Toy t;
    toy_init(&t, 3, 0.0f); // examples have up to 4 rows
    DataSplit s;
    make_split(&s, 0);
    TrainJob job = job_for(&t, &s, 8, 2);
    TrainResult res;
    tu_expect_err(trainer_run(&job, &res), ST_USAGE, "more than a micro-batch holds", NULL, NULL);
    data_split_free(&s);
    toy_free(&t);
}

// Ranks take micro-batch k when k % world == rank (world 2, no MPI: no sums).
Test(trainer_generic, micro_batches_go_round_robin_to_ranks) {
    int seen[2][N_EX];
    for (int rank = 0; rank < 2; rank++) {
        Toy t;
        toy_init(&t, 0, 0.0f);
        DataSplit s;
        make_split(&s, 0);
        Dist d = {.rank = rank, .world = 2, .mpi = false};
        TrainJob job = job_for(&t, &s, 8, 2);
        job.dist = &d, job.loop.epochs = 1;
        TrainResult res;
        cr_assert_eq(trainer_run(&job, &res), ST_OK, "%s", status_message());
        cr_expect_eq(t.calls, 10, "rank %d: 2 of the 4 micro-batches in each of 5 steps", rank);
        memcpy(seen[rank], t.seen, sizeof t.seen);
        data_split_free(&s);
        toy_free(&t);
    }
    for (int e = 0; e < N_EX; e++) cr_expect_eq(seen[0][e] + seen[1][e], 1, "example %d on exactly one rank", e);
}

Test(trainer_generic, training_lowers_the_loss_and_keeps_the_best) {
    Toy t;
    toy_init(&t, 5, 0.2f);
    DataSplit s;
    make_split(&s, 8);
    TrainJob job = job_for(&t, &s, 4, 2);
    job.loop.epochs = 6;
    TrainResult res;
    cr_assert_eq(trainer_run(&job, &res), ST_OK, "%s", status_message());
    cr_assert_eq(res.steps, 48);
    cr_expect(res.best_val_loss < 0.2 * res.first_val_loss, "validation loss %g -> %g", res.first_val_loss,
              res.best_val_loss);
    cr_expect(res.best_step > 0);
    // the parameters returned are the best ones: their validation loss is best_val_loss
    int64_t counted = 0, units;
    double sum = toy_rows(&t, s.val, s.n_val, 0, 0, false, &units);
    counted += units;
    cr_expect(fabs(sum / (double)counted - res.best_val_loss) <= 1e-9 + 1e-6 * res.best_val_loss, "%.9g vs %.9g",
              sum / (double)counted, res.best_val_loss);
    data_split_free(&s);
    toy_free(&t);
}

static void kill_at(void *ctx, int64_t steps) {
    if (steps == *(const int64_t *)ctx) raise(SIGKILL);
}

static void run_to_end(const char *dir, bool resume, int64_t kill_after, float *params_out) {
    Toy t;
    toy_init(&t, 5, 0.2f);
    DataSplit s;
    make_split(&s, 8);
    TrainJob job = job_for(&t, &s, 8, 2);
    job.out_dir = dir, job.resume = resume;
    if (kill_after > 0) job.after_step = kill_at, job.step_ctx = &kill_after;
    TrainResult res;
    cr_assert_eq(trainer_run(&job, &res), ST_OK, "%s", status_message());
    if (params_out) memcpy(params_out, t.params.data, NP * sizeof(float));
    data_split_free(&s);
    toy_free(&t);
}

Test(trainer_generic, kill_and_resume_is_exact) {
    char ref[64], cut[64], a[128], b[128];
    tu_make_temp_dir(ref, sizeof ref, "trainer");
    tu_make_temp_dir(cut, sizeof cut, "trainer");
    float p_ref[NP], p_cut[NP];
    run_to_end(ref, false, 0, p_ref);
    // killed after step 8: the checkpoint holds step 6 (save_every 3), steps 7-8 are redone
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        run_to_end(cut, false, 8, NULL);
        _exit(0); // not reached
    }
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the run was to be killed");
    snprintf(a, sizeof a, "%s/train_log.tsv", cut);
    size_t len;
    uint8_t *log = tu_read_file(a, &len);
    int lines = 0;
    for (size_t i = 0; i < len; i++) lines += log[i] == '\n';
    free(log);
    cr_assert_eq(lines, 1 + 6, "the log of the last checkpoint has 6 steps");
    run_to_end(cut, true, 0, p_cut);
    cr_expect(memcmp(p_ref, p_cut, sizeof p_ref) == 0, "the resumed run ends with other parameters");
    snprintf(a, sizeof a, "%s/train_log.tsv", ref);
    snprintf(b, sizeof b, "%s/train_log.tsv", cut);
    uint8_t *la = tu_read_file(a, &len);
    size_t lenb;
    uint8_t *lb = tu_read_file(b, &lenb);
    cr_expect(len == lenb && memcmp(la, lb, len) == 0, "%s and %s differ", a, b);
    free(la), free(lb);
    // a checkpoint of other settings is refused
    Toy t;
    toy_init(&t, 5, 0.2f);
    DataSplit s;
    make_split(&s, 8);
    TrainJob job = job_for(&t, &s, 8, 2);
    job.out_dir = cut, job.resume = true, job.fingerprint = "toy, other settings";
    TrainResult res;
    tu_expect_err(trainer_run(&job, &res), ST_USAGE, "written by a run with other settings", NULL, NULL);
    data_split_free(&s);
    toy_free(&t);
    tu_remove_dir(ref);
    tu_remove_dir(cut);
}

// OptimConfig.constant: the rate stays at lr after the warm-up instead of decaying.
Test(trainer_generic, constant_schedule) {
    OptimConfig oc = optim_defaults();
    oc.lr = 0.5f, oc.warmup = 2, oc.total = 10;
    cr_expect_eq(optim_lr_at(&oc, 5), 0.5f * 5 / 8);
    oc.constant = true;
    cr_expect_eq(optim_lr_at(&oc, 0), 0.0f);
    cr_expect_eq(optim_lr_at(&oc, 1), 0.25f);
    cr_expect_eq(optim_lr_at(&oc, 5), 0.5f);
    cr_expect_eq(optim_lr_at(&oc, 12), 0.5f);
}
