// The encoder's training forward (activations saved, the same layer step as
// inference: bert_layer_forward, mobilebert_layer_forward) and backward, with the classification
// heads' cross-entropy, freezing, hidden dropout and flat parameters/gradients.
#include <stdlib.h>
#include <string.h>

#include "encoder_internal.h"
#include "ops/ops.h"

static const Device CPU = {DEV_CPU, 0};

// One layer's saved activations (flat buffers of max_tokens rows).
typedef struct {
    Tensor q, k, v, att, lse, ares, x1, hpre, h, fres;
} LayerSave;

// A MobileBERT layer's (act(hpre) is recomputed in the backward, not saved).
typedef struct {
    Tensor li_pre, li, s_pre, s, q, k, v, att, lse, ares, obres;
    Tensor a[MB_MAX_FFN + 1], hpre[MB_MAX_FFN], fres[MB_MAX_FFN];
} MbSave;

struct EncoderTrain {
    Encoder *m;
    EncoderTrainOptions opt;
    int max_tokens;
    int n_params;
    EncoderParam *params;  // [n_params] the model's table
    Tensor *orig;          // [n_params] the model's tensors before they moved into flat
    bool *trainable;       // [n_params]
    Tensor **grad;         // [n_params] gradient views (NULL when frozen)
    Tensor flat, gflat;    // [n_trainable]
    Encoder g;             // gradients in the model's shape (frozen tensors have no data)
    // activations
    Tensor *xs;            // [L + 1] layer inputs; xs[L] is the last hidden state
    LayerSave *acts;       // [L] (BERT)
    MbSave *macts;         // [L] (MobileBERT)
    Tensor x3;             // MobileBERT: [N, 3E or E] the embedding_transformation's input
    int32_t *next, *prev;  // MobileBERT: [max_tokens] trigram neighbours
    Tensor mb_da, mb_db, mb_dli, mb_ds, mb_h; // MobileBERT backward scratch ([N, W], [N, F])
    int64_t width;         // W: the widest activation (D; MobileBERT max(D, inner, 3E))
    Tensor esum;           // embeddings' LayerNorm input
    Tensor first, ppre, pooled, feat, logits; // the head
    // backward scratch
    Tensor dres, dfres, dtmp, datt, dq, dk, dv, dh, dhp, dfeat, dfirst;
    int32_t *pos, *types;  // [max_tokens]
    Tensor *word_grad;     // the word embeddings' gradient (NULL when frozen)
    float *group_buf;      // label groups: [max_tokens * num_labels] one group's logits, contiguous
    int32_t *group_targets; // [max_tokens] one group's targets
};

static Tensor view2(const Tensor *buf, int64_t rows, int64_t cols) {
    return tensor_wrap(buf->data, DT_F32, buf->dev, 2, (int64_t[]){rows, cols});
}

static Status alloc_flat(Tensor *t, int64_t n) { return tensor_alloc_1d(t, DT_F32, CPU, n > 0 ? n : 1); }

static Tensor *gp(Tensor *t) { return t && t->data ? t : NULL; }

static bool param_trainable(const EncoderTrain *t, const EncoderParam *p) {
    if (p->layer < 0)
        return !t->opt.freeze_embeddings || (p->t == &t->m->word_embd && t->opt.train_word_rows_from > 0 &&
                                             t->opt.train_word_rows_from < t->m->cfg.vocab_size);
    if (p->layer < t->m->cfg.n_layers) return p->layer >= t->opt.freeze_below;
    return true; // pooler and classifier
}

static Status train_alloc(EncoderTrain *t) {
    Encoder *m = t->m;
    const EncoderConfig *c = &m->cfg;
    int n = t->n_params = encoder_params(m, NULL);
    t->params = calloc((size_t)n, sizeof *t->params);
    t->orig = calloc((size_t)n, sizeof *t->orig);
    t->trainable = calloc((size_t)n, sizeof *t->trainable);
    t->grad = calloc((size_t)n, sizeof *t->grad);
    bool mb = c->arch == ENC_MOBILEBERT, ok = true;
    if (mb) {
        t->g.mlayers = calloc((size_t)c->n_layers, sizeof *t->g.mlayers);
        ok = t->g.mlayers != NULL;
        for (int l = 0; ok && l < c->n_layers; l++) {
            MobileBertLayer *ly = &t->g.mlayers[l];
            size_t k = (size_t)(c->n_ffn > 1 ? c->n_ffn - 1 : 1);
            ly->ffn_inter = calloc(k, sizeof *ly->ffn_inter);
            ly->ffn_out = calloc(k, sizeof *ly->ffn_out);
            ly->ffn_ln = calloc(k, sizeof *ly->ffn_ln);
            ok = ly->ffn_inter && ly->ffn_out && ly->ffn_ln;
        }
    } else {
        t->g.layers = calloc((size_t)c->n_layers, sizeof *t->g.layers);
        ok = t->g.layers != NULL;
    }
    EncoderParam *gps = calloc((size_t)n, sizeof *gps);
    int64_t N = t->max_tokens, D = c->dim, F = c->ffn_dim, L = c->n_layers, I = c->inner;
    int64_t W = D;
    if (mb) {
        int64_t E3 = 3 * (int64_t)c->embedding_size;
        W = D > I ? D : I;
        W = W > E3 ? W : E3;
    }
    t->width = W;
    t->xs = calloc((size_t)L + 1, sizeof *t->xs);
    if (mb) t->macts = calloc((size_t)L, sizeof *t->macts);
    else t->acts = calloc((size_t)L, sizeof *t->acts);
    t->pos = calloc((size_t)N, sizeof *t->pos);
    t->types = calloc((size_t)N, sizeof *t->types);
    t->next = calloc((size_t)N, sizeof *t->next);
    t->prev = calloc((size_t)N, sizeof *t->prev);
    if (!t->params || !t->orig || !t->trainable || !t->grad || !ok || !gps || !t->xs || !(t->acts || t->macts) ||
        !t->pos || !t->types || !t->next || !t->prev) {
        free(gps);
        return status_fail(ST_OOM, "out of memory for training buffers");
    }
    encoder_params(m, t->params);
    t->g.cfg = *c;
    encoder_params(&t->g, gps);
    int64_t n_tr = 0;
    for (int i = 0; i < n; i++) {
        t->trainable[i] = param_trainable(t, &t->params[i]);
        if (t->trainable[i]) n_tr += tensor_numel(t->params[i].t);
    }
    Status st = alloc_flat(&t->flat, n_tr);
    if (st == ST_OK) st = alloc_flat(&t->gflat, n_tr);
    if (st != ST_OK) {
        free(gps);
        return st;
    }
    t->flat.shape[0] = t->gflat.shape[0] = n_tr;
    float *p = t->flat.data, *gptr = t->gflat.data;
    for (int i = 0; i < n; i++) {
        Tensor *w = t->params[i].t;
        t->orig[i] = *w;
        if (!t->trainable[i]) continue;
        int64_t k = tensor_numel(w);
        memcpy(p, w->data, (size_t)k * sizeof(float));
        *w = tensor_wrap(p, DT_F32, CPU, w->ndim, w->shape);
        *gps[i].t = tensor_wrap(gptr, DT_F32, CPU, w->ndim, w->shape);
        t->grad[i] = gps[i].t;
        p += k, gptr += k;
    }
    free(gps);
    // activations
    for (int l = 0; l <= L; l++) TRY(alloc_flat(&t->xs[l], N * D));
    for (int l = 0; mb && l < L; l++) {
        MbSave *a = &t->macts[l];
        Tensor *ni[] = {&a->li_pre, &a->li, &a->s_pre, &a->s, &a->q, &a->k, &a->v, &a->att, &a->ares};
        for (size_t i = 0; i < sizeof ni / sizeof *ni; i++) TRY(alloc_flat(ni[i], N * I));
        TRY(alloc_flat(&a->lse, N * c->n_heads));
        TRY(alloc_flat(&a->obres, N * D));
        for (int j = 0; j <= c->n_ffn; j++) TRY(alloc_flat(&a->a[j], N * I));
        for (int j = 0; j < c->n_ffn; j++) {
            TRY(alloc_flat(&a->hpre[j], N * F));
            TRY(alloc_flat(&a->fres[j], N * I));
        }
    }
    if (mb) {
        Tensor *nw[] = {&t->x3, &t->mb_da, &t->mb_db, &t->mb_dli, &t->mb_ds};
        for (size_t i = 0; i < sizeof nw / sizeof *nw; i++) TRY(alloc_flat(nw[i], N * W));
        TRY(alloc_flat(&t->mb_h, N * F));
    }
    for (int l = 0; !mb && l < L; l++) {
        LayerSave *a = &t->acts[l];
        Tensor *nd[] = {&a->q, &a->k, &a->v, &a->att, &a->ares, &a->x1, &a->fres};
        for (size_t i = 0; i < sizeof nd / sizeof *nd; i++) TRY(alloc_flat(nd[i], N * D));
        TRY(alloc_flat(&a->lse, N * c->n_heads));
        TRY(alloc_flat(&a->hpre, N * F));
        TRY(alloc_flat(&a->h, N * F));
    }
    int64_t K = c->num_labels > 0 ? c->num_labels : 1;
    Tensor *nd[] = {&t->esum, &t->first, &t->ppre, &t->pooled, &t->feat, &t->dres, &t->dfres, &t->dtmp,
                    &t->datt, &t->dq, &t->dk, &t->dv, &t->dfeat, &t->dfirst};
    for (size_t i = 0; i < sizeof nd / sizeof *nd; i++) TRY(alloc_flat(nd[i], N * W));
    TRY(alloc_flat(&t->logits, N * K));
    TRY(alloc_flat(&t->dh, N * F));
    TRY(alloc_flat(&t->dhp, N * F));
    return ST_OK;
}

Status encoder_train_new(EncoderTrain **out, Encoder *m, const EncoderTrainOptions *opt, int max_tokens) {
    *out = NULL;
    TRY(encoder_arch_check(&m->cfg));
    if (m->dev.kind != DEV_CPU) return status_fail(ST_UNSUPPORTED, "encoder training runs on the CPU");
    if (m->cfg.head == HEAD_NONE)
        return status_fail(ST_USAGE, "encoder training needs a classification head (encoder_set_head)");
    if (max_tokens <= 0) return status_fail(ST_USAGE, "encoder training needs room for at least one token");
    EncoderTrain *t = calloc(1, sizeof *t);
    if (!t) return status_fail(ST_OOM, "out of memory");
    t->m = m;
    t->opt = opt ? *opt : (EncoderTrainOptions){0};
    if (t->opt.dropout < 0 || t->opt.dropout >= 1) {
        free(t);
        return status_fail(ST_USAGE, "encoder training: dropout must be in [0, 1)");
    }
    t->max_tokens = max_tokens;
    Status st = train_alloc(t);
    for (int i = 0; st == ST_OK && i < t->n_params; i++)
        if (t->params[i].t == &m->word_embd) t->word_grad = t->grad[i];
    if (st == ST_OK && m->cfg.n_groups) {
        t->group_buf = malloc((size_t)max_tokens * (size_t)m->cfg.num_labels * sizeof *t->group_buf);
        t->group_targets = malloc((size_t)max_tokens * sizeof *t->group_targets);
        if (!t->group_buf || !t->group_targets) st = status_fail(ST_OOM, "out of memory for training buffers");
    }
    if (st != ST_OK) {
        encoder_train_free(t);
        return st;
    }
    *out = t;
    return ST_OK;
}

void encoder_train_free(EncoderTrain *t) {
    if (!t) return;
    free(t->group_buf);
    free(t->group_targets);
    // the trained values go back where the model had them
    for (int i = 0; t->params && t->orig && i < t->n_params; i++) {
        if (!t->trainable[i] || !t->orig[i].data) continue;
        Tensor *w = t->params[i].t;
        if (w->data != t->orig[i].data) memcpy(t->orig[i].data, w->data, (size_t)tensor_numel(w) * sizeof(float));
        *w = t->orig[i];
    }
    int L = t->m->cfg.n_layers;
    for (int l = 0; t->xs && l <= L; l++) tensor_free(&t->xs[l]);
    for (int l = 0; t->acts && l < L; l++) {
        LayerSave *a = &t->acts[l];
        Tensor *ts[] = {&a->q, &a->k, &a->v, &a->att, &a->lse, &a->ares, &a->x1, &a->hpre, &a->h, &a->fres};
        for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) tensor_free(ts[i]);
    }
    for (int l = 0; t->macts && l < L; l++) {
        MbSave *a = &t->macts[l];
        Tensor *ts[] = {&a->li_pre, &a->li, &a->s_pre, &a->s, &a->q, &a->k, &a->v, &a->att, &a->lse, &a->ares,
                        &a->obres};
        for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) tensor_free(ts[i]);
        for (int j = 0; j <= MB_MAX_FFN; j++) tensor_free(&a->a[j]);
        for (int j = 0; j < MB_MAX_FFN; j++) tensor_free(&a->hpre[j]), tensor_free(&a->fres[j]);
    }
    for (int l = 0; t->g.mlayers && l < L; l++)
        free(t->g.mlayers[l].ffn_inter), free(t->g.mlayers[l].ffn_out), free(t->g.mlayers[l].ffn_ln);
    Tensor *mts[] = {&t->x3, &t->mb_da, &t->mb_db, &t->mb_dli, &t->mb_ds, &t->mb_h};
    for (size_t i = 0; i < sizeof mts / sizeof *mts; i++) tensor_free(mts[i]);
    Tensor *ts[] = {&t->flat, &t->gflat, &t->esum, &t->first, &t->ppre, &t->pooled, &t->feat, &t->logits,
                    &t->dres, &t->dfres, &t->dtmp, &t->datt, &t->dq, &t->dk, &t->dv, &t->dh, &t->dhp,
                    &t->dfeat, &t->dfirst};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) tensor_free(ts[i]);
    free(t->xs), free(t->acts), free(t->macts), free(t->params), free(t->orig), free(t->trainable), free(t->grad);
    free(t->g.layers), free(t->g.mlayers), free(t->pos), free(t->types), free(t->next), free(t->prev);
    free(t);
}

Tensor *encoder_train_params(EncoderTrain *t) { return &t->flat; }
Tensor *encoder_train_grads(EncoderTrain *t) { return &t->gflat; }
Tensor *encoder_train_grad(EncoderTrain *t, int i) { return i >= 0 && i < t->n_params ? t->grad[i] : NULL; }
void encoder_train_zero_grads(EncoderTrain *t) { memset(t->gflat.data, 0, (size_t)t->gflat.shape[0] * sizeof(float)); }

// ---- forward ---------------------------------------------------------------------

typedef struct {
    EncoderTrain *t;
    const EncoderBatch *b;
    bool dropout;
    uint64_t seed;
} Ctx;

static VarlenShape varlen(const EncoderTrain *t, const EncoderBatch *b) {
    const EncoderConfig *c = &t->m->cfg;
    return (VarlenShape){.cu = b->cu, .n_seq = b->n_seq, .n_heads = c->n_heads, .n_kv_heads = c->n_heads,
                         .head_dim = c->head_dim, .bidirectional = true};
}

static void attend_train(void *ctx, int l, const Tensor *q, const Tensor *k, const Tensor *v, Tensor *att) {
    Ctx *x = ctx;
    VarlenShape shape = varlen(x->t, x->b);
    const Tensor *buf = x->t->macts ? &x->t->macts[l].lse : &x->t->acts[l].lse;
    Tensor lse = view2(buf, x->t->m->cfg.n_heads, x->b->n_tokens);
    op_attention_varlen(att, &lse, q, k, v, &shape);
}

static void dropout_train(void *ctx, int l, int site, Tensor *x) {
    Ctx *c = ctx;
    if (c->dropout && c->t->opt.dropout > 0) op_dropout(x, x, c->t->opt.dropout, encoder_drop_seed(c->seed, l, site));
}

// A MobileBERT layer's step buffers: its saved activations (act(hpre) in a shared scratch).
static MobileBertLayerBufs mb_bufs(EncoderTrain *t, int l, int64_t N) {
    const EncoderConfig *c = &t->m->cfg;
    int64_t D = c->dim, I = c->inner, F = c->ffn_dim;
    MbSave *a = &t->macts[l];
    MobileBertLayerBufs b = {.x = view2(&t->xs[l], N, D), .li_pre = view2(&a->li_pre, N, I),
                             .li = view2(&a->li, N, I), .s_pre = view2(&a->s_pre, N, I), .s = view2(&a->s, N, I),
                             .q = view2(&a->q, N, I), .k = view2(&a->k, N, I), .v = view2(&a->v, N, I),
                             .att = view2(&a->att, N, I), .ares = view2(&a->ares, N, I),
                             .obres = view2(&a->obres, N, D), .out = view2(&t->xs[l + 1], N, D)};
    for (int j = 0; j < c->n_ffn; j++) {
        b.a[j] = view2(&a->a[j], N, I);
        b.hpre[j] = view2(&a->hpre[j], N, F);
        b.h[j] = view2(&t->mb_h, N, F);
        b.fres[j] = view2(&a->fres[j], N, I);
    }
    b.a[c->n_ffn] = view2(&a->a[c->n_ffn], N, I);
    return b;
}

static void forward_body_mobilebert(EncoderTrain *t, const EncoderBatch *b, const int32_t *types, Ctx *ctx) {
    Encoder *m = t->m;
    const EncoderConfig *c = &m->cfg;
    int64_t N = b->n_tokens, D = c->dim;
    mobilebert_trigram_ids(b->ids, b->cu, b->n_seq, t->next, t->prev);
    Tensor x0 = view2(&t->xs[0], N, D), esum = view2(&t->esum, N, D), tmp = view2(&t->dtmp, N, D);
    Tensor x3 = view2(&t->x3, N, (c->trigram ? 3 : 1) * (int64_t)c->embedding_size);
    mobilebert_embed(m, b->ids, t->next, t->prev, t->pos, types, &x3, &esum, &tmp, &x0);
    dropout_train(ctx, -1, 0, &x0);
    BertLayerSteps steps = {ctx, attend_train, dropout_train};
    for (int l = 0; l < c->n_layers; l++) {
        MobileBertLayerBufs bufs = mb_bufs(t, l, N);
        mobilebert_layer_forward(c, &m->mlayers[l], l, &bufs, &steps);
    }
}

// Everything up to the last hidden state xs[L], activations saved.
static void forward_body(EncoderTrain *t, const EncoderBatch *b, bool dropout, uint64_t seed) {
    Encoder *m = t->m;
    const EncoderConfig *c = &m->cfg;
    int64_t N = b->n_tokens, D = c->dim, F = c->ffn_dim;
    for (int s = 0; s < b->n_seq; s++)
        for (int i = b->cu[s]; i < b->cu[s + 1]; i++) t->pos[i] = i - b->cu[s];
    const int32_t *types = b->types;
    if (!types) {
        memset(t->types, 0, (size_t)N * sizeof *t->types);
        types = t->types;
    }
    Ctx ctx = {t, b, dropout, seed};
    if (c->arch == ENC_MOBILEBERT) {
        forward_body_mobilebert(t, b, types, &ctx);
        return;
    }
    Tensor x0 = view2(&t->xs[0], N, D), esum = view2(&t->esum, N, D), tmp = view2(&t->dtmp, N, D);
    bert_embed(m, b->ids, t->pos, types, &esum, &tmp, &x0);
    dropout_train(&ctx, -1, 0, &x0);
    BertLayerSteps steps = {&ctx, attend_train, dropout_train};
    for (int l = 0; l < c->n_layers; l++) {
        LayerSave *a = &t->acts[l];
        BertLayerBufs bufs = {.x = view2(&t->xs[l], N, D), .q = view2(&a->q, N, D), .k = view2(&a->k, N, D),
                              .v = view2(&a->v, N, D), .att = view2(&a->att, N, D), .ao = view2(&a->ares, N, D),
                              .ares = view2(&a->ares, N, D), .x1 = view2(&a->x1, N, D),
                              .hpre = view2(&a->hpre, N, F), .h = view2(&a->h, N, F), .fo = view2(&a->fres, N, D),
                              .fres = view2(&a->fres, N, D), .out = view2(&t->xs[l + 1], N, D)};
        bert_layer_forward(c, &m->layers[l], l, &bufs, &steps);
    }
}

// The head's logits [rows, K] from xs[L] (rows = N tokens or n_seq sequences).
static Tensor forward_head(EncoderTrain *t, const EncoderBatch *b, bool dropout, uint64_t seed) {
    Encoder *m = t->m;
    const EncoderConfig *c = &m->cfg;
    int64_t N = b->n_tokens, D = c->dim, S = b->n_seq;
    Ctx ctx = {t, b, dropout, seed};
    Tensor xL = view2(&t->xs[c->n_layers], N, D), feat;
    int64_t rows = N;
    if (c->head == HEAD_TOKEN) {
        feat = view2(&t->feat, N, D);
        op_copy(&feat, &xL);
    } else {
        rows = S;
        Tensor first = view2(&t->first, S, D);
        op_embedding(&first, &xL, b->cu);
        feat = view2(&t->feat, S, D);
        if (c->pooler) {
            Tensor ppre = view2(&t->ppre, S, D);
            op_matmul(&ppre, &first, &m->pooler.w);
            op_bias_add(&ppre, &m->pooler.b);
            op_activation(&feat, &ppre, ACT_TANH);
        } else {
            op_copy(&feat, &first);
        }
    }
    dropout_train(&ctx, c->n_layers, 0, &feat);
    Tensor logits = view2(&t->logits, rows, c->num_labels);
    op_matmul(&logits, &feat, &m->classifier.w);
    op_bias_add(&logits, &m->classifier.b);
    return logits;
}

static Status check_targets(const EncoderTrain *t, const EncoderBatch *b, const int32_t *targets, int64_t *counted) {
    const EncoderConfig *c = &t->m->cfg;
    int rows = c->head == HEAD_TOKEN ? b->n_tokens : b->n_seq, groups = c->n_groups ? c->n_groups : 1;
    int64_t n = 0;
    for (int i = 0; i < rows; i++) {
        bool any = false;
        for (int g = 0; g < groups; g++) {
            int32_t y = targets[(int64_t)i * groups + g], k = c->n_groups ? c->group_size[g] : c->num_labels;
            if (y >= k) {
                if (c->n_groups)
                    return status_fail(ST_USAGE, "encoder training: target %d of row %d is not a label of group %d "
                                                 "[0, %d)", y, i, g, k);
                return status_fail(ST_USAGE, "encoder training: target %d of row %d is not a label [0, %d)", y, i, k);
            }
            any = any || y >= 0;
        }
        n += any;
    }
    *counted = n;
    return ST_OK;
}

// The summed cross-entropy of the head's logits [rows, num_labels]; with
// dlogits, their gradient (times scale) replaces them. Label groups: each
// group's columns are their own softmax (gathered into a contiguous block).
static double head_loss(EncoderTrain *t, Tensor *logits, const int32_t *targets, float scale, bool grad) {
    const EncoderConfig *c = &t->m->cfg;
    if (!c->n_groups) return op_cross_entropy(grad ? logits : NULL, logits, targets, scale);
    int64_t rows = logits->shape[0], K = c->num_labels;
    double loss = 0;
    float *lg = logits->data, *blk = t->group_buf;
    int32_t *ys = t->group_targets;
    for (int g = 0, off = 0; g < c->n_groups; off += c->group_size[g], g++) {
        int64_t k = c->group_size[g];
        for (int64_t r = 0; r < rows; r++) {
            memcpy(blk + r * k, lg + r * K + off, (size_t)k * sizeof *blk);
            ys[r] = targets[r * c->n_groups + g];
        }
        Tensor part = tensor_wrap(blk, DT_F32, logits->dev, 2, (int64_t[]){rows, k});
        loss += op_cross_entropy(grad ? &part : NULL, &part, ys, scale);
        if (grad)
            for (int64_t r = 0; r < rows; r++) memcpy(lg + r * K + off, blk + r * k, (size_t)k * sizeof *blk);
    }
    return loss;
}

// ---- backward ----------------------------------------------------------------------

// dx = dropout(d) at a site (the same mask as the forward), or d itself.
static const Tensor *drop_grad(EncoderTrain *t, bool on, uint64_t seed, int l, int site, const Tensor *d, Tensor *buf) {
    if (!on || t->opt.dropout <= 0) return d;
    op_dropout(buf, d, t->opt.dropout, encoder_drop_seed(seed, l, site));
    return buf;
}

static void layer_backward_mobilebert(EncoderTrain *t, const EncoderBatch *b, int l, bool need_dx, uint64_t seed) {
    const EncoderConfig *c = &t->m->cfg;
    int64_t N = b->n_tokens, D = c->dim, I = c->inner, F = c->ffn_dim;
    MobileBertLayerBufs bufs = mb_bufs(t, l, N);
    MobileBertGradBufs d = {.dres = view2(&t->dres, N, D), .dx = view2(&t->dfres, N, D), .da = view2(&t->mb_da, N, I),
                            .db = view2(&t->mb_db, N, I), .dli = view2(&t->mb_dli, N, I), .ds = view2(&t->mb_ds, N, I),
                            .dq = view2(&t->dq, N, I), .dk = view2(&t->dk, N, I), .dv = view2(&t->dv, N, I),
                            .datt = view2(&t->datt, N, I), .dtmp = view2(&t->dtmp, N, D), .h = view2(&t->mb_h, N, F),
                            .dh = view2(&t->dh, N, F), .dhp = view2(&t->dhp, N, F)};
    VarlenShape shape = varlen(t, b);
    Tensor lse = view2(&t->macts[l].lse, c->n_heads, N);
    Ctx ctx = {t, b, true, seed};
    BertLayerSteps steps = {&ctx, attend_train, t->opt.dropout > 0 ? dropout_train : NULL};
    mobilebert_layer_backward(c, &t->m->mlayers[l], &t->g.mlayers[l], l, &bufs, &d, &shape, &lse, need_dx, &steps);
}

// dres holds dL/d(output of layer l) on entry and dL/d(its input) on return (when need_dx).
static void layer_backward(EncoderTrain *t, const EncoderBatch *b, int l, bool need_dx, uint64_t seed) {
    const EncoderConfig *c = &t->m->cfg;
    if (c->arch == ENC_MOBILEBERT) {
        layer_backward_mobilebert(t, b, l, need_dx, seed);
        return;
    }
    const BertLayer *w = &t->m->layers[l];
    BertLayer *g = &t->g.layers[l];
    LayerSave *a = &t->acts[l];
    int64_t N = b->n_tokens, D = c->dim, F = c->ffn_dim;
    Tensor dres = view2(&t->dres, N, D), dfres = view2(&t->dfres, N, D), dtmp = view2(&t->dtmp, N, D);
    Tensor dh = view2(&t->dh, N, F), dhp = view2(&t->dhp, N, F);
    Tensor datt = view2(&t->datt, N, D), dq = view2(&t->dq, N, D), dk = view2(&t->dk, N, D), dv = view2(&t->dv, N, D);
    Tensor x = view2(&t->xs[l], N, D), q = view2(&a->q, N, D), k = view2(&a->k, N, D), v = view2(&a->v, N, D);
    Tensor att = view2(&a->att, N, D), lse = view2(&a->lse, c->n_heads, N), ares = view2(&a->ares, N, D);
    Tensor x1 = view2(&a->x1, N, D), hpre = view2(&a->hpre, N, F), h = view2(&a->h, N, F), fres = view2(&a->fres, N, D);
    // FFN block
    tensor_zero(&dfres);
    op_layernorm_backward(&dfres, gp(&g->out_ln.w), gp(&g->out_ln.b), &dres, &fres, &w->out_ln.w, c->ln_eps);
    const Tensor *dfo = drop_grad(t, true, seed, l, BERT_DROP_FFN_OUT, &dfres, &dtmp);
    if (gp(&g->out.b)) op_bias_backward(&g->out.b, dfo);
    tensor_zero(&dh);
    op_matmul_backward(&dh, gp(&g->out.w), dfo, &h, &w->out.w, 1.0f);
    tensor_zero(&dhp);
    op_activation_backward(&dhp, &dh, &hpre, c->act);
    if (gp(&g->inter.b)) op_bias_backward(&g->inter.b, &dhp);
    op_matmul_backward(&dfres, gp(&g->inter.w), &dhp, &x1, &w->inter.w, 1.0f); // dfres = dL/dx1 now
    // attention block
    tensor_zero(&dres);
    op_layernorm_backward(&dres, gp(&g->attn_ln.w), gp(&g->attn_ln.b), &dfres, &ares, &w->attn_ln.w, c->ln_eps);
    const Tensor *dao = drop_grad(t, true, seed, l, BERT_DROP_ATTN_OUT, &dres, &dtmp);
    if (gp(&g->o.b)) op_bias_backward(&g->o.b, dao);
    tensor_zero(&datt);
    op_matmul_backward(&datt, gp(&g->o.w), dao, &att, &w->o.w, 1.0f);
    tensor_zero(&dq);
    tensor_zero(&dk);
    tensor_zero(&dv);
    VarlenShape shape = varlen(t, b);
    op_attention_varlen_backward(&dq, &dk, &dv, &datt, &q, &k, &v, &att, &lse, &shape);
    const Linear *ws[3] = {&w->q, &w->k, &w->v};
    Linear *gs[3] = {&g->q, &g->k, &g->v};
    Tensor *ds[3] = {&dq, &dk, &dv};
    for (int i = 0; i < 3; i++) {
        if (gp(&gs[i]->b)) op_bias_backward(&gs[i]->b, ds[i]);
        op_matmul_backward(need_dx ? &dres : NULL, gp(&gs[i]->w), ds[i], &x, &ws[i]->w, 1.0f);
    }
}

// From the logits' gradient (in the logits buffer) to dres = dL/d xs[L].
static void head_backward(EncoderTrain *t, const EncoderBatch *b, const Tensor *dlogits, bool dropout, uint64_t seed) {
    Encoder *m = t->m;
    const EncoderConfig *c = &m->cfg;
    int64_t N = b->n_tokens, D = c->dim, S = b->n_seq, rows = c->head == HEAD_TOKEN ? N : S;
    Encoder *g = &t->g;
    Tensor feat = view2(&t->feat, rows, D), dfeat = view2(&t->dfeat, rows, D);
    if (gp(&g->classifier.b)) op_bias_backward(&g->classifier.b, dlogits);
    tensor_zero(&dfeat);
    op_matmul_backward(&dfeat, gp(&g->classifier.w), dlogits, &feat, &m->classifier.w, 1.0f);
    if (dropout && t->opt.dropout > 0)
        op_dropout(&dfeat, &dfeat, t->opt.dropout, encoder_drop_seed(seed, c->n_layers, 0));
    Tensor dres = view2(&t->dres, N, D);
    tensor_zero(&dres);
    if (c->head == HEAD_TOKEN) {
        op_add(&dres, &dres, &dfeat);
        return;
    }
    Tensor dfirst = view2(&t->dfirst, S, D);
    if (c->pooler) {
        Tensor ppre = view2(&t->ppre, S, D), dppre = view2(&t->dtmp, S, D), first = view2(&t->first, S, D);
        tensor_zero(&dppre);
        op_activation_backward(&dppre, &dfeat, &ppre, ACT_TANH);
        if (gp(&g->pooler.b)) op_bias_backward(&g->pooler.b, &dppre);
        tensor_zero(&dfirst);
        op_matmul_backward(&dfirst, gp(&g->pooler.w), &dppre, &first, &m->pooler.w, 1.0f);
    } else {
        dfirst = dfeat;
    }
    op_embedding_backward(&dres, &dfirst, b->cu);
}

static void embed_backward_mobilebert(EncoderTrain *t, const EncoderBatch *b, bool dropout, uint64_t seed) {
    Encoder *m = t->m;
    const EncoderConfig *c = &m->cfg;
    Encoder *g = &t->g;
    int64_t N = b->n_tokens, D = c->dim, E = c->embedding_size, kE = (c->trigram ? 3 : 1) * E;
    Tensor dres = view2(&t->dres, N, D), dtmp = view2(&t->dtmp, N, D), desum = view2(&t->dfres, N, D);
    Tensor esum = view2(&t->esum, N, D);
    const Tensor *de = drop_grad(t, dropout, seed, -1, 0, &dres, &dtmp);
    tensor_zero(&desum);
    mobilebert_norm_backward(c, &desum, &g->embd_ln, de, &esum, &m->embd_ln, MB_DEFAULT_LN_EPS);
    const int32_t *types = b->types ? b->types : t->types;
    if (gp(&g->pos_embd)) op_embedding_backward(&g->pos_embd, &desum, t->pos);
    if (gp(&g->type_embd)) op_embedding_backward(&g->type_embd, &desum, types);
    Tensor dx3 = desum; // without embedding_transformation, E = D and x3 is esum's word part
    Tensor *gw = gp(&g->word_embd);
    if (mobilebert_projects(c)) {
        Tensor x3 = view2(&t->x3, N, kE);
        dx3 = view2(&t->mb_da, N, kE);
        if (gp(&g->embd_proj.b)) op_bias_backward(&g->embd_proj.b, &desum);
        tensor_zero(&dx3);
        if (gw || gp(&g->embd_proj.w))
            op_matmul_backward(gw ? &dx3 : NULL, gp(&g->embd_proj.w), &desum, &x3, &m->embd_proj.w, 1.0f);
    }
    if (!gw) return;
    if (c->trigram) { // [E(t+1); E(t); E(t-1)]: each third back to its token (none past the edges)
        Tensor part = tensor_cols(&dx3, 0, E);
        op_embedding_backward(gw, &part, t->next);
        part = tensor_cols(&dx3, E, E);
        op_embedding_backward(gw, &part, b->ids);
        part = tensor_cols(&dx3, 2 * E, E);
        op_embedding_backward(gw, &part, t->prev);
    } else {
        op_embedding_backward(gw, &dx3, b->ids);
    }
}

static void embed_backward(EncoderTrain *t, const EncoderBatch *b, bool dropout, uint64_t seed) {
    Encoder *m = t->m;
    if (m->cfg.arch == ENC_MOBILEBERT) {
        embed_backward_mobilebert(t, b, dropout, seed);
        return;
    }
    int64_t N = b->n_tokens, D = m->cfg.dim;
    Tensor dres = view2(&t->dres, N, D), dtmp = view2(&t->dtmp, N, D), desum = view2(&t->dfres, N, D);
    Tensor esum = view2(&t->esum, N, D);
    const Tensor *de = drop_grad(t, dropout, seed, -1, 0, &dres, &dtmp);
    tensor_zero(&desum);
    op_layernorm_backward(&desum, gp(&t->g.embd_ln.w), gp(&t->g.embd_ln.b), de, &esum, &m->embd_ln.w, m->cfg.ln_eps);
    const int32_t *types = b->types ? b->types : t->types;
    if (gp(&t->g.word_embd)) op_embedding_backward(&t->g.word_embd, &desum, b->ids);
    if (gp(&t->g.pos_embd)) op_embedding_backward(&t->g.pos_embd, &desum, t->pos);
    if (gp(&t->g.type_embd)) op_embedding_backward(&t->g.type_embd, &desum, types);
}

Status encoder_train_step(EncoderTrain *t, const EncoderBatch *b, const int32_t *targets, float loss_scale,
                          uint64_t dropout_seed, double *loss_sum, int64_t *counted) {
    TRY(encoder_check_batch(t->m, b, t->max_tokens));
    int64_t n_counted;
    TRY(check_targets(t, b, targets, &n_counted));
    const EncoderConfig *c = &t->m->cfg;
    forward_body(t, b, true, dropout_seed);
    Tensor logits = forward_head(t, b, true, dropout_seed);
    double loss = head_loss(t, &logits, targets, loss_scale, true); // logits become their gradient
    head_backward(t, b, &logits, true, dropout_seed);
    // the lowest layer whose input gradient anyone needs
    bool rows = t->opt.freeze_embeddings && t->word_grad; // only added word rows train
    bool emb = !t->opt.freeze_embeddings || rows;
    int lowest = emb ? 0 : (t->opt.freeze_below > 0 ? t->opt.freeze_below : 0);
    for (int l = c->n_layers - 1; l >= lowest; l--) {
        if (!emb && l <= lowest) layer_backward(t, b, l, false, dropout_seed);
        else layer_backward(t, b, l, true, dropout_seed);
    }
    if (emb) embed_backward(t, b, true, dropout_seed);
    if (rows) // the rows below train_word_rows_from stay as they are
        memset(t->word_grad->data, 0, (size_t)t->opt.train_word_rows_from * (size_t)t->word_grad->shape[1] * sizeof(float));
    if (loss_sum) *loss_sum = loss;
    if (counted) *counted = n_counted;
    return ST_OK;
}

Status encoder_train_eval(EncoderTrain *t, const EncoderBatch *b, const int32_t *targets, double *loss_sum,
                          int64_t *counted) {
    TRY(encoder_check_batch(t->m, b, t->max_tokens));
    int64_t n_counted;
    TRY(check_targets(t, b, targets, &n_counted));
    forward_body(t, b, false, 0);
    Tensor logits = forward_head(t, b, false, 0);
    double loss = head_loss(t, &logits, targets, 1.0f, false);
    if (loss_sum) *loss_sum = loss;
    if (counted) *counted = n_counted;
    return ST_OK;
}
