// BERT's forward over ops.h: the layer step shared with training
// (encoder_train.c), and the inference session (encoder_hidden / encoder_logits)
// on any device, for BERT and MobileBERT (mobilebert.c's layer step).
#include <stdlib.h>
#include <string.h>

#include "encoder_internal.h"
#include "ops/ops.h"
#include "runtime/device.h"

static void linear(Tensor *out, const Tensor *x, const Linear *w) {
    op_matmul(out, x, &w->w);
    op_bias_add(out, &w->b);
}

void bert_layer_forward(const EncoderConfig *c, const BertLayer *w, int l, const BertLayerBufs *b,
                        const BertLayerSteps *s) {
    // attention block: x1 = LN(x + dropout(o(attention(q(x), k(x), v(x)))))
    linear((Tensor *)&b->q, &b->x, &w->q);
    linear((Tensor *)&b->k, &b->x, &w->k);
    linear((Tensor *)&b->v, &b->x, &w->v);
    s->attend(s->ctx, l, &b->q, &b->k, &b->v, (Tensor *)&b->att);
    linear((Tensor *)&b->ao, &b->att, &w->o);
    if (s->dropout) s->dropout(s->ctx, l, BERT_DROP_ATTN_OUT, (Tensor *)&b->ao);
    op_add((Tensor *)&b->ares, &b->x, &b->ao);
    op_layernorm((Tensor *)&b->x1, &b->ares, &w->attn_ln.w, &w->attn_ln.b, c->ln_eps);
    // FFN block: out = LN(x1 + dropout(out(act(inter(x1)))))
    linear((Tensor *)&b->hpre, &b->x1, &w->inter);
    op_activation((Tensor *)&b->h, &b->hpre, c->act);
    linear((Tensor *)&b->fo, &b->h, &w->out);
    if (s->dropout) s->dropout(s->ctx, l, BERT_DROP_FFN_OUT, (Tensor *)&b->fo);
    op_add((Tensor *)&b->fres, &b->x1, &b->fo);
    op_layernorm((Tensor *)&b->out, &b->fres, &w->out_ln.w, &w->out_ln.b, c->ln_eps);
}

void bert_embed(const Encoder *m, const int32_t *ids, const int32_t *pos, const int32_t *types, Tensor *esum,
                Tensor *tmp, Tensor *x) {
    op_embedding(esum, &m->word_embd, ids);
    op_embedding(tmp, &m->pos_embd, pos);
    op_add(esum, esum, tmp);
    op_embedding(tmp, &m->type_embd, types);
    op_add(esum, esum, tmp);
    op_layernorm(x, esum, &m->embd_ln.w, &m->embd_ln.b, m->cfg.ln_eps);
}

// ---- batches ----------------------------------------------------------------------

Status encoder_check_batch(const Encoder *m, const EncoderBatch *b, int max_tokens) {
    const EncoderConfig *c = &m->cfg;
    if (b->n_seq <= 0 || b->n_tokens <= 0 || !b->ids || !b->cu) return status_fail(ST_USAGE, "encoder: empty batch");
    if (b->n_tokens > max_tokens)
        return status_fail(ST_USAGE, "encoder: a batch of %d tokens exceeds the %d the session was sized for",
                           b->n_tokens, max_tokens);
    if (b->cu[0] != 0 || b->cu[b->n_seq] != b->n_tokens)
        return status_fail(ST_USAGE, "encoder: sequence bounds must run from 0 to the token count %d", b->n_tokens);
    for (int s = 0; s < b->n_seq; s++) {
        int len = b->cu[s + 1] - b->cu[s];
        if (len <= 0 || len > c->max_position)
            return status_fail(ST_USAGE, "encoder: sequence %d has %d tokens; each needs 1..%d", s, len,
                               c->max_position);
    }
    for (int i = 0; i < b->n_tokens; i++) {
        if (b->ids[i] < 0 || b->ids[i] >= c->vocab_size)
            return status_fail(ST_USAGE, "encoder: token id %d at position %d is outside the vocabulary [0, %d)",
                               b->ids[i], i, c->vocab_size);
        if (b->types && (b->types[i] < 0 || b->types[i] >= c->type_vocab))
            return status_fail(ST_USAGE, "encoder: token type %d at position %d is outside [0, %d)", b->types[i], i,
                               c->type_vocab);
    }
    return ST_OK;
}

// ---- inference session ------------------------------------------------------------

struct EncoderSession {
    const Encoder *m;
    int max_tokens;
    Device dev;
    Tensor x, q, k, v, att, tmp, x1, h, esum; // [max, W] / [max, F]; W = D (MobileBERT: max(D, inner, 3E))
    Tensor li, s2;                          // MobileBERT: [max, W] bottleneck outputs
    Tensor rows, pooled, logits;            // [max, D], [max, D], [max, labels] (head)
    int32_t *pos, *types, *cu;              // host: [max], [max], [max + 1]
    int32_t *next, *prev;                   // host: [max] trigram neighbours (MobileBERT)
    Tensor idx_dev;                         // device copies: ids, pos, types, cu, next, prev
};

void encoder_session_free(EncoderSession *s) {
    if (!s) return;
    Tensor *ts[] = {&s->x, &s->q, &s->k, &s->v, &s->att, &s->tmp, &s->x1, &s->h, &s->esum,
                    &s->li, &s->s2, &s->rows, &s->pooled, &s->logits, &s->idx_dev};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) tensor_free(ts[i]);
    free(s->next);
    free(s->prev);
    free(s->pos);
    free(s->types);
    free(s->cu);
    free(s);
}

Status encoder_session_new(EncoderSession **out, const Encoder *m, int max_tokens) {
    *out = NULL;
    TRY(encoder_arch_check(&m->cfg));
    if (max_tokens <= 0) return status_fail(ST_USAGE, "encoder session: room for at least one token is needed");
    if (!ops_backend_available(m->dev.kind))
        return status_fail(ST_UNSUPPORTED, "no usable CUDA device or no CUDA backend in this build; use the CPU");
    EncoderSession *s = calloc(1, sizeof *s);
    if (!s) return status_fail(ST_OOM, "out of memory");
    const EncoderConfig *c = &m->cfg;
    s->m = m;
    s->max_tokens = max_tokens;
    s->dev = m->dev;
    bool mb = c->arch == ENC_MOBILEBERT;
    int64_t N = max_tokens, D = c->dim, F = c->ffn_dim, W = D;
    if (mb) {
        int64_t E3 = 3 * (int64_t)c->embedding_size;
        W = D > c->inner ? D : c->inner;
        W = W > E3 ? W : E3;
    }
    s->pos = calloc((size_t)N, sizeof *s->pos);
    s->types = calloc((size_t)N, sizeof *s->types);
    s->cu = calloc((size_t)N + 1, sizeof *s->cu);
    s->next = calloc((size_t)N, sizeof *s->next);
    s->prev = calloc((size_t)N, sizeof *s->prev);
    Status st = s->pos && s->types && s->cu && s->next && s->prev ? ST_OK : status_fail(ST_OOM, "out of memory");
    Tensor *dts[] = {&s->x, &s->q, &s->k, &s->v, &s->att, &s->tmp, &s->x1, &s->esum, &s->rows, &s->pooled};
    for (size_t i = 0; st == ST_OK && i < sizeof dts / sizeof *dts; i++) st = tensor_alloc_2d(dts[i], DT_F32, s->dev, N, W);
    if (st == ST_OK && mb) st = tensor_alloc_2d(&s->li, DT_F32, s->dev, N, W);
    if (st == ST_OK && mb) st = tensor_alloc_2d(&s->s2, DT_F32, s->dev, N, W);
    if (st == ST_OK) st = tensor_alloc_2d(&s->h, DT_F32, s->dev, N, F);
    if (st == ST_OK && c->head != HEAD_NONE) st = tensor_alloc_2d(&s->logits, DT_F32, s->dev, N, c->num_labels);
    if (st == ST_OK && s->dev.kind != DEV_CPU) st = tensor_alloc_1d(&s->idx_dev, DT_I32, s->dev, 6 * N + 1);
    if (st != ST_OK) {
        encoder_session_free(s);
        return st;
    }
    *out = s;
    return ST_OK;
}

typedef struct {
    const int32_t *ids, *pos, *types, *cu, *next, *prev; // where the ops read them
} Index;

static Status upload(EncoderSession *s, const EncoderBatch *b, Index *ix) {
    int64_t N = b->n_tokens;
    for (int q = 0; q < b->n_seq; q++)
        for (int i = b->cu[q]; i < b->cu[q + 1]; i++) s->pos[i] = i - b->cu[q];
    const int32_t *types = b->types;
    if (!types) {
        memset(s->types, 0, (size_t)N * sizeof *s->types);
        types = s->types;
    }
    bool mb = s->m->cfg.arch == ENC_MOBILEBERT;
    if (mb) mobilebert_trigram_ids(b->ids, b->cu, b->n_seq, s->next, s->prev);
    if (s->dev.kind == DEV_CPU) {
        *ix = (Index){b->ids, s->pos, types, b->cu, s->next, s->prev};
        return ST_OK;
    }
    int32_t *d = s->idx_dev.data;
    TRY(device_copy_to(s->dev, d, b->ids, (size_t)N * 4));
    TRY(device_copy_to(s->dev, d + N, s->pos, (size_t)N * 4));
    TRY(device_copy_to(s->dev, d + 2 * N, types, (size_t)N * 4));
    TRY(device_copy_to(s->dev, d + 3 * N, b->cu, (size_t)(b->n_seq + 1) * 4));
    if (mb) {
        TRY(device_copy_to(s->dev, d + 4 * N + 1, s->next, (size_t)N * 4));
        TRY(device_copy_to(s->dev, d + 5 * N + 1, s->prev, (size_t)N * 4));
    }
    *ix = (Index){d, d + N, d + 2 * N, d + 3 * N, d + 4 * N + 1, d + 5 * N + 1};
    return ST_OK;
}

typedef struct {
    const Encoder *m;
    const EncoderBatch *b;
    const Index *ix;
} InferCtx;

static void attend_infer(void *ctx, int l, const Tensor *q, const Tensor *k, const Tensor *v, Tensor *att) {
    (void)l;
    InferCtx *x = ctx;
    const EncoderConfig *c = &x->m->cfg;
    VarlenShape shape = {.cu = x->ix->cu, .n_seq = x->b->n_seq, .n_heads = c->n_heads, .n_kv_heads = c->n_heads,
                         .head_dim = c->head_dim, .bidirectional = true};
    op_attention_varlen(att, NULL, q, k, v, &shape);
}

static Tensor rows_of(const Tensor *t, int64_t n) { return tensor_rows(t, 0, n); }

// [n, cols] contiguous at the start of a session buffer.
static Tensor mat(const Tensor *buf, int64_t n, int64_t cols) {
    return tensor_wrap(buf->data, DT_F32, buf->dev, 2, (int64_t[]){n, cols});
}

// MobileBERT's last hidden states, [N, D] contiguous in s->x.
static Tensor forward_hidden_mobilebert(EncoderSession *s, const EncoderBatch *b, const Index *ix) {
    const Encoder *m = s->m;
    const EncoderConfig *c = &m->cfg;
    int64_t N = b->n_tokens, D = c->dim, I = c->inner, F = c->ffn_dim;
    Tensor x = mat(&s->x, N, D), esum = mat(&s->esum, N, D), tmp = mat(&s->tmp, N, D);
    Tensor x3 = mat(&s->q, N, (c->trigram ? 3 : 1) * (int64_t)c->embedding_size);
    mobilebert_embed(m, ix->ids, ix->next, ix->prev, ix->pos, ix->types, &x3, &esum, &tmp, &x);
    MobileBertLayerBufs bufs = {.x = x, .li_pre = mat(&s->li, N, I), .li = mat(&s->li, N, I),
                                .s_pre = mat(&s->s2, N, I), .s = mat(&s->s2, N, I), .q = mat(&s->q, N, I),
                                .k = mat(&s->k, N, I), .v = mat(&s->v, N, I), .att = mat(&s->att, N, I),
                                .ares = mat(&s->tmp, N, I), .obres = mat(&s->esum, N, D), .out = x};
    for (int j = 0; j < c->n_ffn; j++) {
        bufs.a[j] = mat(&s->x1, N, I);
        bufs.hpre[j] = bufs.h[j] = mat(&s->h, N, F);
        bufs.fres[j] = mat(&s->tmp, N, I);
    }
    bufs.a[c->n_ffn] = mat(&s->x1, N, I);
    InferCtx ctx = {m, b, ix};
    BertLayerSteps steps = {&ctx, attend_infer, NULL};
    for (int l = 0; l < c->n_layers; l++) mobilebert_layer_forward(c, &m->mlayers[l], l, &bufs, &steps);
    return x;
}

// The last hidden states, [N, D] (in s->x).
static Tensor forward_hidden(EncoderSession *s, const EncoderBatch *b, const Index *ix) {
    const Encoder *m = s->m;
    if (m->cfg.arch == ENC_MOBILEBERT) return forward_hidden_mobilebert(s, b, ix);
    int64_t N = b->n_tokens;
    Tensor x = rows_of(&s->x, N), esum = rows_of(&s->esum, N), tmp = rows_of(&s->tmp, N);
    bert_embed(m, ix->ids, ix->pos, ix->types, &esum, &tmp, &x);
    BertLayerBufs bufs = {.x = x, .q = rows_of(&s->q, N), .k = rows_of(&s->k, N), .v = rows_of(&s->v, N),
                          .att = rows_of(&s->att, N), .ao = tmp, .ares = tmp, .x1 = rows_of(&s->x1, N),
                          .hpre = rows_of(&s->h, N), .h = rows_of(&s->h, N), .fo = tmp, .fres = tmp, .out = x};
    InferCtx ctx = {m, b, ix};
    BertLayerSteps steps = {&ctx, attend_infer, NULL};
    for (int l = 0; l < m->cfg.n_layers; l++) bert_layer_forward(&m->cfg, &m->layers[l], l, &bufs, &steps);
    return tensor_cols(&x, 0, m->cfg.dim);
}

Status encoder_hidden(EncoderSession *s, const EncoderBatch *b, Tensor *hidden) {
    TRY(encoder_check_batch(s->m, b, s->max_tokens));
    Index ix;
    TRY(upload(s, b, &ix));
    *hidden = forward_hidden(s, b, &ix);
    return ST_OK;
}

Status encoder_logits(EncoderSession *s, const EncoderBatch *b, float *logits) {
    const Encoder *m = s->m;
    const EncoderConfig *c = &m->cfg;
    if (c->head == HEAD_NONE) return status_fail(ST_USAGE, "encoder_logits: the model has no classification head");
    TRY(encoder_check_batch(m, b, s->max_tokens));
    Index ix;
    TRY(upload(s, b, &ix));
    Tensor x = forward_hidden(s, b, &ix), out;
    if (c->head == HEAD_TOKEN) {
        out = rows_of(&s->logits, b->n_tokens);
        linear(&out, &x, &m->classifier);
    } else {
        // each sequence's first token: a gather with the sequence starts as ids
        Tensor first = mat(&s->rows, b->n_seq, c->dim), pooled = mat(&s->pooled, b->n_seq, c->dim);
        op_embedding(&first, &x, ix.cu);
        const Tensor *feat = &first;
        if (c->pooler) {
            linear(&pooled, &first, &m->pooler);
            op_activation(&pooled, &pooled, ACT_TANH);
            feat = &pooled;
        }
        out = rows_of(&s->logits, b->n_seq);
        linear(&out, feat, &m->classifier);
    }
    op_copy_to_host(logits, &out);
    return ST_OK;
}
