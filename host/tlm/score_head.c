// The score head: training over EncoderTrain, token F1, keep logits.
#include "score_head.h"

#include <stdlib.h>
#include <string.h>

static int64_t sm_counted(void *ctx, int example) {
    const ScoreTrainModel *sm = ctx;
    const ScoreData *d = sm->data;
    int64_t c = 0;
    for (int32_t t = d->start[example]; t < d->start[example + 1]; t++) c += d->targets[t] >= 0;
    return c;
}

static int64_t sm_size(void *ctx, int example) {
    const ScoreTrainModel *sm = ctx;
    return sm->data->start[example + 1] - sm->data->start[example];
}

static Status pack(ScoreTrainModel *sm, const int *seqs, int n, EncoderBatch *b) {
    if (n < 1 || n > sm->max_seqs)
        return status_fail(ST_USAGE, "score head: %d sequences in a micro-batch (1 to %d)", n, sm->max_seqs);
    const ScoreData *d = sm->data;
    int64_t at = 0;
    sm->cu[0] = 0;
    for (int s = 0; s < n; s++) {
        if (seqs[s] < 0 || seqs[s] >= d->n) return status_fail(ST_USAGE, "score head: no sequence %d", seqs[s]);
        int32_t a = d->start[seqs[s]], len = d->start[seqs[s] + 1] - a;
        if (at + len > sm->tm.capacity)
            return status_fail(ST_USAGE, "score head: a micro-batch of more than %lld tokens",
                               (long long)sm->tm.capacity);
        memcpy(sm->ids + at, d->ids + a, (size_t)len * sizeof *sm->ids);
        memcpy(sm->targets + at, d->targets + a, (size_t)len * sizeof *sm->targets);
        at += len;
        sm->cu[s + 1] = (int32_t)at;
    }
    *b = (EncoderBatch){.ids = sm->ids, .types = NULL, .cu = sm->cu, .n_seq = n, .n_tokens = (int)at};
    return ST_OK;
}

static Status sm_step(void *ctx, const int *examples, int n, float loss_scale, uint64_t seed, double *loss_sum,
                      int64_t *size_done) {
    ScoreTrainModel *sm = ctx;
    EncoderBatch b;
    TRY(pack(sm, examples, n, &b));
    TRY(encoder_train_step(sm->t, &b, sm->targets, loss_scale, seed, loss_sum, NULL));
    *size_done = b.n_tokens;
    return ST_OK;
}

static Status sm_eval(void *ctx, const int *examples, int n, double *loss_sum, int64_t *counted) {
    ScoreTrainModel *sm = ctx;
    EncoderBatch b;
    TRY(pack(sm, examples, n, &b));
    return encoder_train_eval(sm->t, &b, sm->targets, loss_sum, counted);
}

void score_train_model_free(ScoreTrainModel *sm) {
    if (sm->t) encoder_train_free(sm->t);
    free(sm->ids), free(sm->targets), free(sm->cu);
    memset(sm, 0, sizeof *sm);
}

Status score_train_model_init(ScoreTrainModel *sm, Encoder *m, const ScoreData *d, const EncoderTrainOptions *o,
                              int micro_batch, float dropout) {
    memset(sm, 0, sizeof *sm);
    if (m->cfg.head != HEAD_TOKEN || m->cfg.num_labels != 2)
        return status_fail(ST_USAGE, "score head: the encoder needs a token-classification head of 2 labels");
    if (micro_batch < 1) return status_fail(ST_USAGE, "score head: the micro-batch must be positive (got %d)", micro_batch);
    int max_len = 0;
    for (int i = 0; i < d->n; i++)
        if (d->start[i + 1] - d->start[i] > max_len) max_len = d->start[i + 1] - d->start[i];
    int64_t cap = (int64_t)max_len * micro_batch;
    EncoderTrainOptions eo = *o;
    eo.dropout = dropout;
    sm->data = d, sm->max_seqs = micro_batch;
    Status st = encoder_train_new(&sm->t, m, &eo, (int)cap);
    if (st != ST_OK) return score_train_model_free(sm), st;
    sm->ids = malloc((size_t)cap * sizeof *sm->ids);
    sm->targets = malloc((size_t)cap * sizeof *sm->targets);
    sm->cu = malloc((size_t)(micro_batch + 1) * sizeof *sm->cu);
    if (!sm->ids || !sm->targets || !sm->cu) return score_train_model_free(sm), status_fail(ST_OOM, "out of memory");
    Tensor *p = encoder_train_params(sm->t), *g = encoder_train_grads(sm->t);
    sm->tm = (TrainModel){.ctx = sm,
                          .kind = "score_head",
                          .params = p,
                          .grads = g,
                          .n_params = tensor_numel(p),
                          .n_examples = d->n,
                          .capacity = cap,
                          .counted = sm_counted,
                          .size = sm_size,
                          .step = sm_step,
                          .eval = sm_eval};
    return ST_OK;
}

Status score_head_f1(const Encoder *m, const ScoreData *d, const int *examples, int n, TokenF1 *out) {
    memset(out, 0, sizeof *out);
    if (!examples) n = d->n;
    int max_len = 0;
    for (int i = 0; i < n; i++) {
        int e = examples ? examples[i] : i;
        if (d->start[e + 1] - d->start[e] > max_len) max_len = d->start[e + 1] - d->start[e];
    }
    if (max_len == 0) return ST_OK;
    EncoderSession *s;
    TRY(encoder_session_new(&s, m, max_len));
    float *lg = malloc((size_t)max_len * 2 * sizeof *lg);
    Status st = lg ? ST_OK : status_fail(ST_OOM, "out of memory");
    for (int i = 0; st == ST_OK && i < n; i++) {
        int e = examples ? examples[i] : i;
        int32_t a = d->start[e], len = d->start[e + 1] - a;
        int32_t cu[2] = {0, len};
        EncoderBatch b = {.ids = d->ids + a, .cu = cu, .n_seq = 1, .n_tokens = len};
        st = encoder_logits(s, &b, lg);
        for (int t = 0; st == ST_OK && t < len; t++) {
            int y = d->targets[a + t], id = d->ids[a + t];
            if (y < 0 || id == d->cls || id == d->sep || id == d->pad) continue; // text pieces only
            int pred = lg[2 * t + 1] > lg[2 * t];
            out->tp += pred && y, out->fp += pred && !y, out->fn += !pred && y, out->tn += !pred && !y;
        }
    }
    free(lg);
    encoder_session_free(s);
    double tp = (double)out->tp;
    out->precision = tp + (double)out->fp > 0 ? tp / (tp + (double)out->fp) : 0;
    out->recall = tp + (double)out->fn > 0 ? tp / (tp + (double)out->fn) : 0;
    out->f1 = out->precision + out->recall > 0 ? 2 * out->precision * out->recall / (out->precision + out->recall) : 0;
    int64_t all = out->tp + out->fp + out->fn + out->tn;
    out->accuracy = all ? (double)(out->tp + out->tn) / (double)all : 0;
    return st;
}

Status score_head_logits(EncoderSession *s, const Encoder *m, const Tokenizer *enc, const TokenList *l, int max_len,
                         float *logits) {
    if (m->cfg.head != HEAD_TOKEN || m->cfg.num_labels != 2)
        return status_fail(ST_USAGE, "the TLM has no score head (a token-classification head of 2 labels)");
    if (max_len > m->cfg.max_position) max_len = m->cfg.max_position;
    if (max_len < 3) return status_fail(ST_USAGE, "score head: windows of %d tokens are too short", max_len);
    int32_t cls, sep, pad;
    TRY(score_special_ids(enc, &cls, &sep, &pad));
    int w = max_len - 2;
    int32_t *ids = malloc((size_t)max_len * sizeof *ids);
    float *lg = malloc((size_t)max_len * 2 * sizeof *lg);
    Status st = ids && lg ? ST_OK : status_fail(ST_OOM, "out of memory");
    for (size_t at = 0; st == ST_OK && at < l->n; at += (size_t)w) {
        int k = l->n - at < (size_t)w ? (int)(l->n - at) : w;
        ids[0] = cls;
        memcpy(ids + 1, l->ids + at, (size_t)k * sizeof *ids);
        ids[k + 1] = sep;
        int32_t cu[2] = {0, k + 2};
        EncoderBatch b = {.ids = ids, .cu = cu, .n_seq = 1, .n_tokens = k + 2};
        st = encoder_logits(s, &b, lg);
        if (st == ST_OK) memcpy(logits + 2 * at, lg + 2, (size_t)k * 2 * sizeof *lg);
    }
    free(ids), free(lg);
    return st;
}
