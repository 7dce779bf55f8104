// Packing labelled sequences into micro-batches for encoder_train_step.
#include "encoder_task.h"

#include <stdlib.h>
#include <string.h>

static int64_t et_counted(void *ctx, int example) {
    const EncoderTaskModel *em = ctx;
    const EncoderTaskData *d = &em->data;
    int64_t c = 0;
    if (d->per_seq) {
        for (int g = 0; g < d->per_seq; g++) c |= d->targets[(int64_t)example * d->per_seq + g] >= 0;
        return c;
    }
    for (int32_t t = d->start[example]; t < d->start[example + 1]; t++) c += d->targets[t] >= 0;
    return c;
}

static int64_t et_size(void *ctx, int example) {
    const EncoderTaskModel *em = ctx;
    return em->data.start[example + 1] - em->data.start[example];
}

static Status pack(EncoderTaskModel *em, const int *seqs, int n, EncoderBatch *b) {
    const char *kind = em->tm.kind;
    if (n < 1 || n > em->max_seqs)
        return status_fail(ST_USAGE, "%s: %d sequences in a micro-batch (1 to %d)", kind, n, em->max_seqs);
    const EncoderTaskData *d = &em->data;
    int64_t at = 0;
    em->cu[0] = 0;
    for (int s = 0; s < n; s++) {
        if (seqs[s] < 0 || seqs[s] >= d->n) return status_fail(ST_USAGE, "%s: no sequence %d", kind, seqs[s]);
        int32_t a = d->start[seqs[s]], len = d->start[seqs[s] + 1] - a;
        if (at + len > em->tm.capacity)
            return status_fail(ST_USAGE, "%s: a micro-batch of more than %lld tokens", kind,
                               (long long)em->tm.capacity);
        memcpy(em->ids + at, d->ids + a, (size_t)len * sizeof *em->ids);
        if (d->per_seq)
            memcpy(em->targets + (int64_t)s * d->per_seq, d->targets + (int64_t)seqs[s] * d->per_seq,
                   (size_t)d->per_seq * sizeof *em->targets);
        else
            memcpy(em->targets + at, d->targets + a, (size_t)len * sizeof *em->targets);
        at += len;
        em->cu[s + 1] = (int32_t)at;
    }
    *b = (EncoderBatch){.ids = em->ids, .types = NULL, .cu = em->cu, .n_seq = n, .n_tokens = (int)at};
    return ST_OK;
}

static Status et_step(void *ctx, const int *examples, int n, float loss_scale, uint64_t seed, double *loss_sum,
                      int64_t *size_done) {
    EncoderTaskModel *em = ctx;
    EncoderBatch b;
    TRY(pack(em, examples, n, &b));
    TRY(encoder_train_step(em->t, &b, em->targets, loss_scale, seed, loss_sum, NULL));
    *size_done = b.n_tokens;
    return ST_OK;
}

static Status et_eval(void *ctx, const int *examples, int n, double *loss_sum, int64_t *counted) {
    EncoderTaskModel *em = ctx;
    EncoderBatch b;
    TRY(pack(em, examples, n, &b));
    return encoder_train_eval(em->t, &b, em->targets, loss_sum, counted);
}

void encoder_task_free(EncoderTaskModel *em) {
    if (em->t) encoder_train_free(em->t);
    free(em->ids), free(em->targets), free(em->cu);
    memset(em, 0, sizeof *em);
}

Status encoder_task_init(EncoderTaskModel *em, Encoder *m, const EncoderTaskData *d, const EncoderTrainOptions *o,
                         int micro_batch, const char *kind) {
    memset(em, 0, sizeof *em);
    const EncoderConfig *c = &m->cfg;
    int groups = c->n_groups ? c->n_groups : 1;
    if (d->per_seq ? c->head != HEAD_SEQUENCE || d->per_seq != groups : c->head != HEAD_TOKEN)
        return status_fail(ST_USAGE, "%s: the encoder's head does not take %s targets", kind,
                           d->per_seq ? "per-sequence" : "per-token");
    if (micro_batch < 1) return status_fail(ST_USAGE, "%s: the micro-batch must be positive (got %d)", kind, micro_batch);
    int max_len = 0;
    for (int i = 0; i < d->n; i++)
        if (d->start[i + 1] - d->start[i] > max_len) max_len = d->start[i + 1] - d->start[i];
    int64_t cap = (int64_t)max_len * micro_batch;
    em->data = *d, em->max_seqs = micro_batch;
    Status st = encoder_train_new(&em->t, m, o, (int)cap);
    if (st != ST_OK) return encoder_task_free(em), st;
    int64_t n_targets = d->per_seq ? (int64_t)micro_batch * d->per_seq : cap;
    em->ids = malloc((size_t)cap * sizeof *em->ids);
    em->targets = malloc((size_t)n_targets * sizeof *em->targets);
    em->cu = malloc((size_t)(micro_batch + 1) * sizeof *em->cu);
    if (!em->ids || !em->targets || !em->cu) return encoder_task_free(em), status_fail(ST_OOM, "out of memory");
    Tensor *p = encoder_train_params(em->t), *g = encoder_train_grads(em->t);
    em->tm = (TrainModel){.ctx = em,
                          .kind = kind,
                          .params = p,
                          .grads = g,
                          .n_params = tensor_numel(p),
                          .n_examples = d->n,
                          .capacity = cap,
                          .counted = et_counted,
                          .size = et_size,
                          .step = et_step,
                          .eval = et_eval};
    return ST_OK;
}
