// The training loop: batches, ranks, validation, checkpoints, resume.
#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/h5.h"
#include "runtime/log.h"
#include "runtime/mapped_file.h"
#include "runtime/rng.h"

// Per-step records, kept for the log and the checkpoint.
typedef struct {
    double *loss, *lr, *grad_norm, *val_loss, *tokens; // [total]
} History;

typedef struct {
    const TrainJob *job;
    int64_t total;          // optimizer steps
    int64_t steps_per_epoch;
    const TrainModel *tm;
    AdamW opt;
    History h;
    float *best;            // [n_params] the best parameters so far
    double first_val, best_val;
    int64_t best_step;
    int *order;             // [n_train] the current epoch's shuffle
    int order_epoch;
} Run;

int64_t trainer_total_steps(const TrainJob *job) {
    int64_t per_epoch = (job->split->n_train + job->loop.batch - 1) / job->loop.batch;
    int64_t total = per_epoch * job->loop.epochs;
    if (job->loop.max_steps > 0 && job->loop.max_steps < total) total = job->loop.max_steps;
    return total;
}


// ---- setup ------------------------------------------------------------------------------

static Status history_alloc(History *h, int64_t n) {
    double **fields[] = {&h->loss, &h->lr, &h->grad_norm, &h->val_loss, &h->tokens};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        *fields[i] = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
        if (!*fields[i]) return status_fail(ST_OOM, "out of memory");
        for (int64_t k = 0; k < n; k++) (*fields[i])[k] = NAN;
    }
    return ST_OK;
}

static void history_free(History *h) {
    free(h->loss), free(h->lr), free(h->grad_norm), free(h->val_loss), free(h->tokens);
}

static const char *model_kind(const TrainModel *tm) { return tm->kind ? tm->kind : "model"; }

// The split's indices are the model's examples, and each fits a micro-batch on its own.
static Status check_examples(const TrainModel *tm, const int *ex, int n, const char *what) {
    for (int i = 0; i < n; i++) {
        if (ex[i] < 0 || ex[i] >= tm->n_examples)
            return status_fail(ST_USAGE, "%s example %d is outside the model's %d examples", what, ex[i],
                               tm->n_examples);
        int64_t size = tm->size(tm->ctx, ex[i]);
        if (tm->capacity > 0 && size > tm->capacity)
            return status_fail(ST_USAGE, "%s example %d has size %lld, more than a micro-batch holds (%lld)", what,
                               ex[i], (long long)size, (long long)tm->capacity);
    }
    return ST_OK;
}

static Status run_init(Run *r, const TrainJob *job) {
    memset(r, 0, sizeof *r);
    r->job = job;
    r->tm = job->model;
    const TrainModel *tm = r->tm;
    const LoopOptions *lo = &job->loop;
    if (lo->epochs < 1 || lo->batch < 1 || lo->micro_batch < 1)
        return status_fail(ST_USAGE, "epochs, batch and micro-batch must be positive");
    if (lo->batch % lo->micro_batch)
        return status_fail(ST_USAGE, "the batch (%d) must be a multiple of the micro-batch (%d)", lo->batch,
                           lo->micro_batch);
    if (!tm || !tm->params || !tm->grads || !tm->counted || !tm->size || !tm->step || !tm->eval || tm->n_params < 0 ||
        tensor_numel(tm->params) < tm->n_params || tensor_numel(tm->grads) < tm->n_params)
        return status_fail(ST_USAGE, "trainer: the model is incomplete (parameters, gradients or callbacks missing)");
    TRY(check_examples(tm, job->split->train, job->split->n_train, "training"));
    TRY(check_examples(tm, job->split->val, job->split->n_val, "validation"));
    r->steps_per_epoch = (job->split->n_train + lo->batch - 1) / lo->batch;
    r->total = trainer_total_steps(job);
    OptimConfig oc = job->optim;
    oc.total = r->total;
    TRY(adamw_init(&r->opt, &oc, tm->n_params));
    TRY(history_alloc(&r->h, r->total));
    r->best = malloc((size_t)(tm->n_params > 0 ? tm->n_params : 1) * sizeof *r->best);
    r->order = malloc((size_t)(job->split->n_train > 0 ? job->split->n_train : 1) * sizeof *r->order);
    if (!r->best || !r->order) return status_fail(ST_OOM, "out of memory");
    memcpy(r->best, tm->params->data, (size_t)tm->n_params * sizeof *r->best);
    r->order_epoch = -1;
    r->first_val = r->best_val = NAN;
    return ST_OK;
}

static void run_free(Run *r) {
    adamw_free(&r->opt);
    history_free(&r->h);
    free(r->best), free(r->order);
}

// ---- batches ------------------------------------------------------------------------------

// The training sequences of global batch `step`, from the epoch's seeded shuffle.
static const int *global_batch(Run *r, int64_t step, int *n) {
    const TrainJob *job = r->job;
    int epoch = (int)(step / r->steps_per_epoch);
    if (epoch != r->order_epoch) {
        int nt = job->split->n_train;
        memcpy(r->order, job->split->train, (size_t)nt * sizeof *r->order);
        Rng rng;
        rng_seed(&rng, rng_mix(job->loop.seed, 1000 + (uint64_t)epoch));
        rng_shuffle(&rng, r->order, (size_t)nt, sizeof *r->order);
        r->order_epoch = epoch;
    }
    int64_t first = (step % r->steps_per_epoch) * job->loop.batch;
    int64_t left = job->split->n_train - first;
    *n = (int)(left < job->loop.batch ? left : job->loop.batch);
    return r->order + first;
}

// How many of ex[0..n) (n >= 1) make the next micro-batch: at most micro_batch
// examples and at most the model's capacity in size (always at least one).
static int micro_len(const Run *r, const int *ex, int n) {
    const TrainModel *tm = r->tm;
    int most = n < r->job->loop.micro_batch ? n : r->job->loop.micro_batch;
    if (tm->capacity <= 0) return most;
    int64_t size = tm->size(tm->ctx, ex[0]);
    int k = 1;
    while (k < most) {
        int64_t s = tm->size(tm->ctx, ex[k]);
        if (size + s > tm->capacity) break;
        size += s, k++;
    }
    return k;
}

// Mean loss per counted unit over the validation split (sharded over ranks).
static Status validate(Run *r, double *out) {
    const TrainJob *job = r->job;
    const TrainModel *tm = r->tm;
    const DataSplit *sp = job->split;
    double acc[2] = {0, 0}; // loss sum, counted units
    for (int i = 0, k = 0, n; i < sp->n_val; i += n, k++) {
        n = micro_len(r, sp->val + i, sp->n_val - i);
        if (k % job->dist->world != job->dist->rank) continue;
        double loss;
        int64_t counted;
        TRY(tm->eval(tm->ctx, sp->val + i, n, &loss, &counted));
        acc[0] += loss, acc[1] += (double)counted;
    }
    TRY(dist_allreduce_sum_f64(job->dist, acc, 2));
    *out = acc[1] > 0 ? acc[0] / acc[1] : NAN;
    return ST_OK;
}

// One optimizer step: the rank's micro-batches, all-reduce, AdamW.
static Status train_step(Run *r, int64_t step, double *size_done) {
    const TrainJob *job = r->job;
    const TrainModel *tm = r->tm;
    int n;
    const int *ex = global_batch(r, step, &n);
    int64_t counted = 0;
    for (int i = 0; i < n; i++) counted += tm->counted(tm->ctx, ex[i]);
    float scale = counted > 0 ? 1.0f / (float)counted : 0.0f;
    double acc[2] = {0, 0}; // loss sum, size processed
    for (int i = 0, k = 0, m; i < n; i += m, k++) {
        m = micro_len(r, ex + i, n - i);
        if (k % job->dist->world != job->dist->rank) continue;
        double loss;
        int64_t size;
        TRY(tm->step(tm->ctx, ex + i, m, scale, rng_mix(rng_mix(job->loop.seed, (uint64_t)step), (uint64_t)k), &loss,
                     &size));
        acc[0] += loss, acc[1] += (double)size;
    }
    TRY(dist_allreduce_sum_f32(job->dist, tm->grads->data, tm->n_params));
    TRY(dist_allreduce_sum_f64(job->dist, acc, 2));
    float lr;
    // AdamW and clipping see exactly the n_params trainable values
    Tensor p = tensor_wrap(tm->params->data, DT_F32, tm->params->dev, 1, (int64_t[]){tm->n_params});
    Tensor g = tensor_wrap(tm->grads->data, DT_F32, tm->grads->dev, 1, (int64_t[]){tm->n_params});
    double norm = adamw_update(&r->opt, &p, &g, &lr);
    tensor_zero(&g);
    r->h.loss[step] = counted > 0 ? acc[0] / (double)counted : NAN;
    r->h.lr[step] = lr;
    r->h.grad_norm[step] = norm;
    r->h.tokens[step] = acc[1];
    *size_done += acc[1];
    return ST_OK;
}

// ---- checkpoint and log ---------------------------------------------------------------------

static void out_path(const TrainJob *job, const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", job->out_dir, name);
}

static Status write_log(Run *r, int64_t steps) {
    char path[4096];
    out_path(r->job, "train_log.tsv", path, sizeof path);
    size_t cap = 128 + (size_t)steps * 128, len = 0;
    char *text = malloc(cap);
    if (!text) return status_fail(ST_OOM, "out of memory");
    len += (size_t)snprintf(text, cap, "step\tepoch\tloss\tlr\tgrad_norm\tval_loss\ttokens\n");
    for (int64_t k = 0; k < steps; k++)
        len += (size_t)snprintf(text + len, cap - len, "%lld\t%lld\t%.9g\t%.9g\t%.9g\t%.9g\t%.0f\n", (long long)k + 1,
                                (long long)(k / r->steps_per_epoch) + 1, r->h.loss[k], r->h.lr[k], r->h.grad_norm[k],
                                r->h.val_loss[k], r->h.tokens[k]);
    Status st = write_file_atomic(path, text, len);
    free(text);
    return st;
}

static Status save_checkpoint(Run *r, int64_t steps) {
    const TrainJob *job = r->job;
    if (job->dist->rank != 0) return ST_OK;
    char path[4096];
    out_path(job, "checkpoint.h5", path, sizeof path);
    H5Store *f;
    TRY(h5_create(&f, path));
    const TrainModel *tm = r->tm;
    char params_name[128];
    snprintf(params_name, sizeof params_name, "%s/params", model_kind(tm));
    int64_t n[1] = {tm->n_params}, t[1] = {r->total};
    Status st = h5_write_f32(f, params_name, 1, n, tm->params->data);
    if (st == ST_OK) st = h5_write_f32(f, "adam/m", 1, n, r->opt.m.data);
    if (st == ST_OK) st = h5_write_f32(f, "adam/v", 1, n, r->opt.v.data);
    if (st == ST_OK) st = h5_write_f32(f, "best/params", 1, n, r->best);
    const char *hist_names[] = {"history/loss", "history/lr", "history/grad_norm", "history/val_loss", "history/tokens"};
    double *hist[] = {r->h.loss, r->h.lr, r->h.grad_norm, r->h.val_loss, r->h.tokens};
    for (int i = 0; st == ST_OK && i < 5; i++) st = h5_write_f64(f, hist_names[i], 1, t, hist[i]);
    if (st == ST_OK) st = h5_set_attr_i64(f, "/", "step", steps);
    if (st == ST_OK) st = h5_set_attr_i64(f, "/", "adam_step", r->opt.step);
    if (st == ST_OK) st = h5_set_attr_i64(f, "/", "total_steps", r->total);
    if (st == ST_OK) st = h5_set_attr_f64(f, "/", "first_val_loss", r->first_val);
    if (st == ST_OK) st = h5_set_attr_f64(f, "/", "best_val_loss", r->best_val);
    if (st == ST_OK) st = h5_set_attr_i64(f, "/", "best_step", r->best_step);
    if (st == ST_OK) st = h5_set_attr_str(f, "/", "settings", job->fingerprint ? job->fingerprint : "");
    if (st != ST_OK) {
        h5_close(f);
        return st;
    }
    TRY(h5_commit(f));
    return write_log(r, steps);
}

// Restores the state of a checkpoint; *steps = the steps it had completed.
static Status read_checkpoint(Run *r, int64_t *steps) {
    const TrainJob *job = r->job;
    char path[4096];
    out_path(job, "checkpoint.h5", path, sizeof path);
    *steps = 0;
    struct stat sb;
    if (stat(path, &sb) != 0) return ST_OK; // nothing to resume: start afresh
    H5Store *f;
    TRY(h5_open_read(&f, path));
    char *settings = NULL;
    int64_t total = 0;
    Status st = h5_get_attr_str(f, "/", "settings", &settings);
    if (st == ST_OK && strcmp(settings, job->fingerprint ? job->fingerprint : ""))
        st = status_fail(ST_USAGE, "%s was written by a run with other settings (%s); remove it or use another --out",
                         path, settings);
    if (st == ST_OK) st = h5_get_attr_i64(f, "/", "total_steps", &total);
    if (st == ST_OK && total != r->total)
        st = status_fail(ST_USAGE, "%s: the run it belongs to has %lld steps, this one %lld", path, (long long)total,
                         (long long)r->total);
    const TrainModel *tm = r->tm;
    char params_name[128];
    snprintf(params_name, sizeof params_name, "%s/params", model_kind(tm));
    int64_t n[1] = {tm->n_params}, t[1] = {r->total};
    if (st == ST_OK) st = h5_read_f32_into(f, params_name, 1, n, tm->params->data);
    if (st == ST_OK) st = h5_read_f32_into(f, "adam/m", 1, n, r->opt.m.data);
    if (st == ST_OK) st = h5_read_f32_into(f, "adam/v", 1, n, r->opt.v.data);
    if (st == ST_OK) st = h5_read_f32_into(f, "best/params", 1, n, r->best);
    const char *hist_names[] = {"history/loss", "history/lr", "history/grad_norm", "history/val_loss", "history/tokens"};
    double *hist[] = {r->h.loss, r->h.lr, r->h.grad_norm, r->h.val_loss, r->h.tokens};
    for (int i = 0; st == ST_OK && i < 5; i++) st = h5_read_f64_into(f, hist_names[i], 1, t, hist[i]);
    if (st == ST_OK) st = h5_get_attr_i64(f, "/", "step", steps);
    if (st == ST_OK) st = h5_get_attr_i64(f, "/", "adam_step", &r->opt.step);
    if (st == ST_OK) st = h5_get_attr_f64(f, "/", "first_val_loss", &r->first_val);
    if (st == ST_OK) st = h5_get_attr_f64(f, "/", "best_val_loss", &r->best_val);
    if (st == ST_OK) st = h5_get_attr_i64(f, "/", "best_step", &r->best_step);
    if (st == ST_OK && (*steps < 0 || *steps > r->total))
        st = status_fail(ST_FORMAT, "%s: step %lld is outside the run's %lld steps", path, (long long)*steps,
                         (long long)r->total);
    free(settings);
    h5_close(f);
    return st;
}

// Rank 0 reads the checkpoint and sends the state to the other ranks, so that
// resuming under mpirun does not need the output directory on every node.
static Status load_checkpoint(Run *r, int64_t *steps) {
    const TrainJob *job = r->job;
    const Dist *d = job->dist;
    int64_t head[2] = {0, 0}; // read ok, steps
    Status st = ST_OK;
    *steps = 0;
    if (d->rank == 0) {
        st = read_checkpoint(r, steps);
        head[0] = st == ST_OK, head[1] = *steps;
    }
    TRY(dist_broadcast(d, head, sizeof head, 0));
    if (!head[0]) return d->rank == 0 ? st : status_fail(ST_IO, "rank %d: rank 0 could not read the checkpoint", d->rank);
    *steps = head[1];
    if (*steps == 0 || d->world == 1) return ST_OK;
    size_t np = (size_t)r->tm->n_params * sizeof(float), nh = (size_t)r->total * sizeof(double);
    void *bufs[] = {r->tm->params->data, r->opt.m.data, r->opt.v.data, r->best};
    for (int i = 0; i < 4; i++) TRY(dist_broadcast(d, bufs[i], (int64_t)np, 0));
    double *hist[] = {r->h.loss, r->h.lr, r->h.grad_norm, r->h.val_loss, r->h.tokens};
    for (int i = 0; i < 5; i++) TRY(dist_broadcast(d, hist[i], (int64_t)nh, 0));
    double scalars[4] = {(double)r->opt.step, r->first_val, r->best_val, (double)r->best_step};
    TRY(dist_broadcast(d, scalars, sizeof scalars, 0));
    r->opt.step = (int64_t)scalars[0], r->first_val = scalars[1], r->best_val = scalars[2];
    r->best_step = (int64_t)scalars[3];
    return ST_OK;
}

// ---- the loop ---------------------------------------------------------------------------------

static Status maybe_validate(Run *r, int64_t step, bool force) {
    const TrainJob *job = r->job;
    if (job->split->n_val == 0) return ST_OK;
    int every = job->loop.eval_every;
    if (!force && !(every > 0 && step % every == 0)) return ST_OK;
    double val;
    TRY(validate(r, &val));
    r->h.val_loss[step - 1] = val;
    if (!(val >= r->best_val)) { // also when best_val is NaN
        r->best_val = val;
        r->best_step = step;
        memcpy(r->best, r->tm->params->data, (size_t)r->tm->n_params * sizeof *r->best);
    }
    return ST_OK;
}

static Status run_loop(Run *r, TrainResult *res) {
    const TrainJob *job = r->job;
    bool rank0 = job->dist->rank == 0;
    int64_t start = 0;
    if (job->out_dir && job->resume) TRY(load_checkpoint(r, &start));
    if (start > 0) {
        if (rank0) log_info("resuming after step %lld of %lld", (long long)start, (long long)r->total);
    } else if (job->split->n_val > 0) {
        TRY(validate(r, &r->first_val));
        r->best_val = r->first_val; // the untrained parameters are the best until a step beats it
        if (rank0) log_info("validation loss before training: %.4f", r->first_val);
    }
    Progress p;
    progress_begin(&p, model_kind(r->tm), (long)r->total);
    if (!rank0) p.active = false;
    p.done = (long)start;
    double t0 = time_now(), tokens = 0;
    for (int64_t step = start; step < r->total; step++) {
        TRY(train_step(r, step, &tokens));
        bool last = step + 1 == r->total;
        TRY(maybe_validate(r, step + 1, last));
        double dt = time_now() - t0;
        progress_note(&p, "loss %.4f  %.0f tok/s", r->h.loss[step], dt > 0 ? tokens / dt : 0.0);
        progress_step(&p, 1);
        bool validated = !isnan(r->h.val_loss[step]);
        if (rank0 && !p.active && (validated || (step + 1) % (r->total >= 40 ? r->total / 20 : 1) == 0)) {
            char val[48] = "";
            if (validated) snprintf(val, sizeof val, ", validation loss %.4f", r->h.val_loss[step]);
            log_info("step %lld/%lld: loss %.4f%s, %.0f tokens/s", (long long)step + 1, (long long)r->total,
                     r->h.loss[step], val, dt > 0 ? tokens / dt : 0.0);
        }
        if (job->out_dir && (last || (job->loop.save_every > 0 && (step + 1) % job->loop.save_every == 0)))
            TRY(save_checkpoint(r, step + 1));
        if (job->after_step) job->after_step(job->step_ctx, step + 1);
    }
    progress_end(&p);
    double dt = time_now() - t0;
    if (job->out_dir && start == r->total) TRY(save_checkpoint(r, r->total)); // rewrite the log of a finished run
    // the result is the best parameters (the last ones without validation data)
    if (job->split->n_val > 0) memcpy(r->tm->params->data, r->best, (size_t)r->tm->n_params * sizeof *r->best);
    res->steps = r->total;
    res->first_val_loss = r->first_val;
    res->best_val_loss = r->best_val;
    res->best_step = r->best_step;
    res->last_train_loss = r->total > 0 ? r->h.loss[r->total - 1] : NAN;
    res->size_per_s = dt > 0 ? tokens / dt : 0;
    return ST_OK;
}

Status trainer_run(const TrainJob *job, TrainResult *res) {
    memset(res, 0, sizeof *res);
    if (job->out_dir && mkdir(job->out_dir, 0777) != 0) {
        struct stat sb;
        if (stat(job->out_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return status_fail(ST_IO, "%s: cannot create the output directory", job->out_dir);
    }
    Run r;
    Status st = run_init(&r, job);
    if (st == ST_OK) st = run_loop(&r, res);
    run_free(&r);
    return st;
}
