// The score head: training over EncoderTrain, token F1, keep logits.
#include "score_head.h"

#include <stdlib.h>
#include <string.h>

Status score_train_model_init(EncoderTaskModel *em, Encoder *m, const ScoreData *d, const EncoderTrainOptions *o,
                              int micro_batch) {
    memset(em, 0, sizeof *em);
    if (m->cfg.head != HEAD_TOKEN || m->cfg.num_labels != 2)
        return status_fail(ST_USAGE, "score head: the encoder needs a token-classification head of 2 labels");
    EncoderTaskData td = {.ids = d->ids, .start = d->start, .n = d->n, .targets = d->targets, .per_seq = 0};
    return encoder_task_init(em, m, &td, o, micro_batch, "score_head");
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
