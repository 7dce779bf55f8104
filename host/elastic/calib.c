// Calibration batches and their loss.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "elastic.h"
#include "runtime/rng.h"
#include "train/data.h"
#include "train/llama_train.h"

Status calib_sample(const char *path, const Tokenizer *tok, int n, int seq, uint64_t seed, int32_t **ids) {
    *ids = NULL;
    if (n < 1 || seq < 2) return status_fail(ST_USAGE, "calibration needs at least 1 sample of 2 tokens");
    if ((int64_t)n * seq > (1 << 28))
        return status_fail(ST_USAGE, "calibration: %d samples x %d tokens is too large", n, seq);
    // Documents as the text reader sees them, without windowing: cutoff large.
    DataOptions o = {.format = DATA_TEXT, .cutoff = 1 << 30, .eos_id = -1};
    TokenData d;
    TRY(data_load(&d, path, tok, &o));
    int eligible = 0;
    for (int i = 0; i < d.n; i++) eligible += data_len(&d, i) >= seq;
    if (eligible < n) {
        data_free(&d);
        return status_fail(ST_USAGE, "%s: %d documents have at least %d tokens, %d calibration samples asked", path,
                           eligible, seq, n);
    }
    int32_t *out = malloc((size_t)n * (size_t)seq * sizeof *out);
    uint8_t *drawn = calloc((size_t)d.n, 1);
    if (!out || !drawn) {
        free(out), free(drawn), data_free(&d);
        return status_fail(ST_OOM, "out of memory");
    }
    Rng rng;
    rng_seed(&rng, seed);
    for (int k = 0; k < n;) {
        int i = (int)rng_below(&rng, (uint64_t)d.n);
        if (drawn[i] || data_len(&d, i) < seq) continue;
        drawn[i] = 1;
        int start = (int)rng_below(&rng, (uint64_t)(data_len(&d, i) - seq + 1));
        memcpy(out + (size_t)k * seq, d.ids + d.start[i] + start, (size_t)seq * sizeof *out);
        k++;
    }
    free(drawn);
    data_free(&d);
    *ids = out;
    return ST_OK;
}

// The packed batch of n sequences of seq tokens with next-token targets.
typedef struct {
    int32_t *targets, *cu;
    TrainBatch b;
} CalibBatch;

static Status calib_batch(CalibBatch *cb, const int32_t *ids, int n, int seq) {
    cb->targets = malloc((size_t)n * (size_t)seq * sizeof *cb->targets);
    cb->cu = malloc(((size_t)n + 1) * sizeof *cb->cu);
    if (!cb->targets || !cb->cu) return status_fail(ST_OOM, "out of memory");
    for (int s = 0; s <= n; s++) cb->cu[s] = s * seq;
    for (int i = 0; i < n * seq; i++) cb->targets[i] = i % seq == seq - 1 ? -1 : ids[i + 1];
    cb->b = (TrainBatch){.ids = ids, .targets = cb->targets, .cu = cb->cu, .n_seq = n, .n_tokens = n * seq};
    return ST_OK;
}

static void calib_batch_free(CalibBatch *cb) { free(cb->targets), free(cb->cu); }

static Status eval_loss(LlamaTrain *t, const CalibBatch *cb, double *loss) {
    double sum = 0;
    int64_t counted = 0;
    TRY(llama_train_eval(t, &cb->b, &sum, &counted));
    *loss = sum / (double)counted;
    return ST_OK;
}

Status calib_loss(const LlamaModel *m, const int32_t *ids, int n, int seq, const uint8_t *blocks, double *loss) {
    CalibBatch cb = {0};
    LlamaTrain t = {0};
    TrainOptions o = {.blocks = blocks, .eval_only = true};
    Status st = calib_batch(&cb, ids, n, seq);
    if (st == ST_OK) st = llama_train_init(&t, m, NULL, NULL, &o, n * seq);
    if (st == ST_OK) st = eval_loss(&t, &cb, loss);
    llama_train_free(&t);
    calib_batch_free(&cb);
    return st;
}

Status anchors_select(const LlamaModel *m, const int32_t *ids, int n, int seq, int keep, double *base_loss,
                      double *skip_loss, int *order, uint8_t *anchor) {
    int L = m->cfg.n_layers;
    if (keep < 0 || keep > L) return status_fail(ST_USAGE, "--keep %d: the model has %d layers", keep, L);
    CalibBatch cb = {0};
    LlamaTrain t = {0};
    TrainOptions o = {.eval_only = true};
    Status st = calib_batch(&cb, ids, n, seq);
    if (st == ST_OK) st = llama_train_init(&t, m, NULL, NULL, &o, n * seq);
    if (st == ST_OK) st = eval_loss(&t, &cb, base_loss);
    for (int l = 0; st == ST_OK && l < L; l++) { // one trainer; only the skipped layer changes
        t.blocks[l] = 0;
        st = eval_loss(&t, &cb, &skip_loss[l]);
        t.blocks[l] = LAYER_ALL;
    }
    llama_train_free(&t);
    calib_batch_free(&cb);
    TRY(st);
    for (int l = 0; l < L; l++) order[l] = l;
    for (int i = 1; i < L; i++) // stable insertion sort, ascending loss
        for (int j = i; j > 0 && skip_loss[order[j - 1]] > skip_loss[order[j]]; j--) {
            int tmp = order[j];
            order[j] = order[j - 1], order[j - 1] = tmp;
        }
    for (int l = 0; l < L; l++) anchor[l] = 0;
    for (int i = L - keep; i < L; i++) anchor[order[i]] = 1;
    return ST_OK;
}

// ---- importance ---------------------------------------------------------------------

typedef struct {
    const LlamaConfig *c;
    Importance *imp;
    double *acc; // [max(H*hd, F)] per-row or per-column sums
} ImpCtx;

// Reduces |W * G| of one projection into its layer's unit and channel scores
// (sums in double, in a fixed order, so a run is reproducible bit for bit).
static void reduce_grad(void *ctx, int l, LoraTarget proj, const Tensor *w, const Tensor *g) {
    ImpCtx *ic = ctx;
    const LlamaConfig *c = ic->c;
    int hd = c->head_dim, grp = c->n_heads / c->n_kv_heads;
    double *attn = ic->imp->attn + (size_t)l * ic->imp->n_kv, *mlp = ic->imp->mlp + (size_t)l * ic->imp->ffn;
    double *acc = ic->acc;
    int64_t rows = w->shape[0], cols = w->shape[1];
    int64_t per_unit = proj == LORA_Q || proj == LORA_O ? (int64_t)grp * hd : hd; // rows (or columns) per KV group
    if (proj != LORA_O && proj != LORA_DOWN) { // rows
#pragma omp parallel for if (rows > 64)
        for (int64_t r = 0; r < rows; r++) {
            const float *wr = tensor_row_f32(w, r), *gr = tensor_row_f32(g, r);
            double s = 0;
            for (int64_t j = 0; j < cols; j++) s += fabs((double)wr[j] * (double)gr[j]);
            acc[r] = s;
        }
        for (int64_t r = 0; r < rows; r++) {
            if (proj == LORA_GATE || proj == LORA_UP) mlp[r] += acc[r];
            else attn[r / per_unit] += acc[r];
        }
    } else { // columns of W_o (per unit) or W_down (per channel), summed row by row in column blocks
        int64_t n_blocks = (cols + 255) / 256;
#pragma omp parallel for if (n_blocks > 1)
        for (int64_t blk = 0; blk < n_blocks; blk++) {
            int64_t j0 = blk * 256, j1 = j0 + 256 < cols ? j0 + 256 : cols;
            for (int64_t j = j0; j < j1; j++) acc[j] = 0;
            for (int64_t r = 0; r < rows; r++) {
                const float *wr = tensor_row_f32(w, r), *gr = tensor_row_f32(g, r);
                for (int64_t j = j0; j < j1; j++) acc[j] += fabs((double)wr[j] * (double)gr[j]);
            }
        }
        for (int64_t j = 0; j < cols; j++) {
            if (proj == LORA_DOWN) mlp[j] += acc[j];
            else attn[j / per_unit] += acc[j];
        }
    }
}

Status importance_compute(const LlamaModel *m, const int32_t *ids, int n, int seq, const uint8_t *anchor,
                          Importance *imp) {
    const LlamaConfig *c = &m->cfg;
    memset(imp, 0, sizeof *imp);
    imp->n_layers = c->n_layers, imp->n_kv = c->n_kv_heads, imp->ffn = c->ffn_dim;
    imp->attn = calloc((size_t)c->n_layers * (size_t)c->n_kv_heads, sizeof *imp->attn);
    imp->mlp = calloc((size_t)c->n_layers * (size_t)c->ffn_dim, sizeof *imp->mlp);
    uint8_t *want = malloc((size_t)c->n_layers);
    if (!imp->attn || !imp->mlp || !want) {
        free(want);
        importance_free(imp);
        return status_fail(ST_OOM, "out of memory for importance scores");
    }
    for (int l = 0; l < c->n_layers; l++) want[l] = anchor ? !anchor[l] : 1;
    int64_t QD = (int64_t)c->n_heads * c->head_dim;
    ImpCtx ctx = {c, imp, malloc((size_t)(QD > c->ffn_dim ? QD : c->ffn_dim) * sizeof(double))};
    if (!ctx.acc) {
        free(want);
        importance_free(imp);
        return status_fail(ST_OOM, "out of memory for importance scores");
    }
    CalibBatch cb = {0};
    LlamaTrain t = {0};
    TrainOptions o = {.on_weight_grad = reduce_grad, .grad_ctx = &ctx, .grad_layers = want};
    Status st = calib_batch(&cb, ids, n, seq);
    if (st == ST_OK) st = llama_train_init(&t, m, NULL, NULL, &o, n * seq);
    int64_t counted = (int64_t)n * (seq - 1);
    if (st == ST_OK) st = llama_train_step(&t, &cb.b, 1.0f / (float)counted, 0, NULL, NULL);
    llama_train_free(&t);
    calib_batch_free(&cb);
    free(want);
    free(ctx.acc);
    if (st != ST_OK) importance_free(imp);
    return st;
}

void importance_free(Importance *imp) {
    free(imp->attn), free(imp->mlp);
    memset(imp, 0, sizeof *imp);
}
