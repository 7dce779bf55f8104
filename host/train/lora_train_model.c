// The LLaMA LoRA trainer as a TrainModel: packs sequences, runs llama_train.
#include "lora_train_model.h"

#include <stdlib.h>
#include <string.h>

static int64_t lm_counted(void *ctx, int example) {
    const LoraTrainModel *lm = ctx;
    return data_counted(lm->data, example);
}

static int64_t lm_size(void *ctx, int example) {
    const LoraTrainModel *lm = ctx;
    return data_len(lm->data, example);
}

// Packs sequences seqs[0..n) into one micro-batch.
static Status pack(LoraTrainModel *lm, const int *seqs, int n, TrainBatch *b) {
    if (n < 1 || n > lm->max_seqs)
        return status_fail(ST_USAGE, "lora: %d sequences in a micro-batch (1 to %d)", n, lm->max_seqs);
    const TokenData *d = lm->data;
    int64_t at = 0;
    lm->cu[0] = 0;
    for (int s = 0; s < n; s++) {
        if (seqs[s] < 0 || seqs[s] >= d->n) return status_fail(ST_USAGE, "lora: no sequence %d", seqs[s]);
        int len = data_len(d, seqs[s]);
        if (at + len > lm->tm.capacity)
            return status_fail(ST_USAGE, "lora: a micro-batch of more than %lld tokens", (long long)lm->tm.capacity);
        memcpy(lm->ids + at, d->ids + d->start[seqs[s]], (size_t)len * sizeof *lm->ids);
        data_targets(d, seqs[s], lm->targets + at);
        at += len;
        lm->cu[s + 1] = (int32_t)at;
    }
    *b = (TrainBatch){.ids = lm->ids, .targets = lm->targets, .cu = lm->cu, .n_seq = n, .n_tokens = (int)at};
    return ST_OK;
}

static Status lm_step(void *ctx, const int *examples, int n, float loss_scale, uint64_t seed, double *loss_sum,
                      int64_t *size_done) {
    LoraTrainModel *lm = ctx;
    TrainBatch b;
    TRY(pack(lm, examples, n, &b));
    TRY(llama_train_step(&lm->t, &b, loss_scale, seed, loss_sum, NULL));
    *size_done = b.n_tokens;
    return ST_OK;
}

static Status lm_eval(void *ctx, const int *examples, int n, double *loss_sum, int64_t *counted) {
    LoraTrainModel *lm = ctx;
    TrainBatch b;
    TRY(pack(lm, examples, n, &b));
    return llama_train_eval(&lm->t, &b, loss_sum, counted);
}

Status lora_train_model_init(LoraTrainModel *lm, const LlamaModel *m, const LlamaWidth *widths, LoraSet *lora,
                             const TokenData *data, int micro_batch, bool recompute) {
    memset(lm, 0, sizeof *lm);
    if (micro_batch < 1) return status_fail(ST_USAGE, "lora: the micro-batch must be positive (got %d)", micro_batch);
    int max_len = 0;
    for (int i = 0; i < data->n; i++)
        if (data_len(data, i) > max_len) max_len = data_len(data, i);
    if ((int64_t)max_len * micro_batch > INT32_MAX)
        return status_fail(ST_USAGE, "lora: a micro-batch of %d sequences of up to %d tokens is too large", micro_batch,
                           max_len);
    int max_tokens = max_len * micro_batch;
    lm->data = data;
    lm->max_seqs = micro_batch;
    TrainOptions to = {.full_grads = false, .recompute = recompute};
    Status st = llama_train_init(&lm->t, m, widths, lora, &to, max_tokens);
    if (st != ST_OK) {
        lora_train_model_free(lm);
        return st;
    }
    lm->ids = malloc((size_t)(max_tokens > 0 ? max_tokens : 1) * sizeof *lm->ids);
    lm->targets = malloc((size_t)(max_tokens > 0 ? max_tokens : 1) * sizeof *lm->targets);
    lm->cu = malloc((size_t)(micro_batch + 1) * sizeof *lm->cu);
    if (!lm->ids || !lm->targets || !lm->cu) {
        lora_train_model_free(lm);
        return status_fail(ST_OOM, "out of memory");
    }
    lm->tm = (TrainModel){.ctx = lm,
                          .kind = "lora",
                          .params = &lora->params,
                          .grads = &lora->grads,
                          .n_params = lora->n_params,
                          .n_examples = data->n,
                          .capacity = max_tokens,
                          .counted = lm_counted,
                          .size = lm_size,
                          .step = lm_step,
                          .eval = lm_eval};
    return ST_OK;
}

void lora_train_model_free(LoraTrainModel *lm) {
    llama_train_free(&lm->t);
    free(lm->ids), free(lm->targets), free(lm->cu);
    memset(lm, 0, sizeof *lm);
}
