// Training forward (activations saved) and backward of the LLaMA decoder,
// written once against ops.h.
#include "llama_train.h"

#include "models/llama_layer.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "runtime/rng.h"

static const Device CPU = {DEV_CPU, 0};

// A contiguous [rows, cols] f32 view over the start of a buffer.
static Tensor view2(const Tensor *buf, int64_t rows, int64_t cols) {
    assert(rows * cols <= tensor_numel(buf));
    return tensor_wrap(buf->data, DT_F32, buf->dev, 2, (int64_t[]){rows, cols});
}

static Status alloc_flat(Tensor *t, int64_t n) { return tensor_alloc_1d(t, DT_F32, CPU, n > 0 ? n : 1); }

// ---- widths and weight views -------------------------------------------------

// Layer l's widths and weights (or, with g, its gradients) in the trained view.
static LlamaLayerView layer_view(const LlamaTrain *t, int l, const LlamaLayer *g) {
    return g ? llama_layer_view(&t->m->cfg, g, &t->widths[l]) : llama_layer_plan(t->m, &t->view, l).wv;
}

// ---- allocation ----------------------------------------------------------------

static Status acts_alloc(LayerActs *a, int64_t N, int64_t D, const LlamaLayerView *w, const LoraSet *lora, int l,
                         bool per_layer_only) {
    TRY(alloc_flat(&a->x, N * D));
    if (lora)
        for (int tg = 0; tg < LORA_N_TARGETS; tg++)
            if (lora_adapter(lora, l, tg)->in) TRY(alloc_flat(&a->u[tg], N * lora->cfg.rank));
    if (per_layer_only) return ST_OK;
    TRY(alloc_flat(&a->xn1, N * D));
    TRY(alloc_flat(&a->q, N * w->qd));
    TRY(alloc_flat(&a->k, N * w->kvd));
    TRY(alloc_flat(&a->v, N * w->kvd));
    TRY(alloc_flat(&a->att, N * w->qd));
    TRY(alloc_flat(&a->lse, N * w->nq));
    TRY(alloc_flat(&a->x2, N * D));
    TRY(alloc_flat(&a->xn2, N * D));
    TRY(alloc_flat(&a->gate, N * w->ffn));
    TRY(alloc_flat(&a->up, N * w->ffn));
    TRY(alloc_flat(&a->h, N * w->ffn));
    return ST_OK;
}

static void acts_free(LayerActs *a) {
    Tensor *ts[] = {&a->x, &a->xn1, &a->q, &a->k, &a->v, &a->att, &a->lse, &a->x2, &a->xn2, &a->gate, &a->up, &a->h};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) tensor_free(ts[i]);
    for (int tg = 0; tg < LORA_N_TARGETS; tg++) tensor_free(&a->u[tg]);
}

static Status grads_alloc(LlamaGrads *g, const LlamaModel *m) {
    const LlamaConfig *c = &m->cfg;
    g->layers = calloc((size_t)c->n_layers, sizeof *g->layers);
    if (!g->layers) return status_fail(ST_OOM, "out of memory for gradients");
    TRY(tensor_alloc_2d(&g->tok_embd, DT_F32, CPU, c->vocab_size, c->dim));
    TRY(tensor_alloc_1d(&g->final_norm, DT_F32, CPU, c->dim));
    if (c->tie_embeddings) g->lm_head = g->tok_embd, g->lm_head.owns = false;
    else TRY(tensor_alloc_2d(&g->lm_head, DT_F32, CPU, c->vocab_size, c->dim));
    for (int l = 0; l < c->n_layers; l++) {
        const LlamaLayer *w = &m->layers[l];
        LlamaLayer *d = &g->layers[l];
        struct { Tensor *dst; const Tensor *like; } pairs[] = {
            {&d->attn_norm, &w->attn_norm}, {&d->wq, &w->wq},         {&d->wk, &w->wk},
            {&d->wv, &w->wv},               {&d->wo, &w->wo},         {&d->mlp_norm, &w->mlp_norm},
            {&d->w_gate, &w->w_gate},       {&d->w_up, &w->w_up},     {&d->w_down, &w->w_down},
        };
        for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++)
            TRY(tensor_alloc(pairs[i].dst, DT_F32, CPU, pairs[i].like->ndim, pairs[i].like->shape));
    }
    return ST_OK;
}

static void grads_free(LlamaGrads *g, int n_layers) {
    for (int l = 0; g->layers && l < n_layers; l++) {
        LlamaLayer *d = &g->layers[l];
        Tensor *ts[] = {&d->attn_norm, &d->wq, &d->wk, &d->wv, &d->wo, &d->mlp_norm, &d->w_gate, &d->w_up, &d->w_down};
        for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) tensor_free(ts[i]);
    }
    free(g->layers);
    tensor_free(&g->tok_embd);
    tensor_free(&g->final_norm);
    tensor_free(&g->lm_head);
    memset(g, 0, sizeof *g);
}

static Status train_alloc(LlamaTrain *t) {
    const LlamaConfig *c = &t->m->cfg;
    int64_t N = t->max_tokens, D = c->dim;
    int64_t QD = (int64_t)c->n_heads * c->head_dim, KVD = (int64_t)c->n_kv_heads * c->head_dim, F = c->ffn_dim;
    t->acts = calloc((size_t)c->n_layers, sizeof *t->acts);
    t->pos = calloc((size_t)N, sizeof *t->pos);
    t->rows = calloc((size_t)N, sizeof *t->rows);
    if (!t->acts || !t->pos || !t->rows) return status_fail(ST_OOM, "out of memory for training buffers");
    LlamaLayerView full = llama_layer_view(c, &t->m->layers[0], NULL);
    for (int l = 0; l < c->n_layers; l++) {
        LlamaLayerView w = layer_view(t, l, NULL);
        TRY(acts_alloc(&t->acts[l], N, D, &w, t->lora, l, t->opt.recompute));
    }
    if (t->opt.recompute) {
        TRY(acts_alloc(&t->shared, N, D, &full, NULL, 0, false));
        tensor_free(&t->shared.x); // each layer keeps its own input
    }
    int64_t chunk = t->opt.logits_chunk;
    int64_t wide = D > QD ? D : QD;
    if (F > wide) wide = F;
    TRY(alloc_flat(&t->xL, N * D));
    TRY(alloc_flat(&t->xf, N * D));
    TRY(alloc_flat(&t->logits, chunk * c->vocab_size));
    TRY(alloc_flat(&t->xrows, chunk * D));
    t->grad_layers = malloc((size_t)c->n_layers);
    if (!t->grad_layers) return status_fail(ST_OOM, "out of memory");
    for (int l = 0; l < c->n_layers; l++) {
        t->grad_layers[l] = t->opt.grad_layers ? t->opt.grad_layers[l] : 1;
    }
    if (t->opt.eval_only) return ST_OK;
    TRY(alloc_flat(&t->dres, N * D));
    TRY(alloc_flat(&t->dxn, N * D));
    TRY(alloc_flat(&t->dq, N * QD));
    TRY(alloc_flat(&t->datt, N * QD));
    TRY(alloc_flat(&t->dk, N * KVD));
    TRY(alloc_flat(&t->dv, N * KVD));
    TRY(alloc_flat(&t->dgate, N * F));
    TRY(alloc_flat(&t->dup, N * F));
    TRY(alloc_flat(&t->dh, N * F));
    TRY(alloc_flat(&t->du, N * (t->lora ? t->lora->cfg.rank : 1)));
    if (t->lora && t->lora->cfg.dropout > 0) {
        TRY(alloc_flat(&t->xd, N * wide));
        TRY(alloc_flat(&t->dxd, N * wide));
    }
    TRY(alloc_flat(&t->drows, chunk * D));
    if (t->opt.full_grads) {
        t->has_grads = true; // before the allocation: a partial one is freed by llama_train_free
        TRY(grads_alloc(&t->grads, t->m));
    }
    if (t->opt.on_weight_grad) TRY(alloc_flat(&t->wgrad, (QD > F ? QD : F) * D));
    return ST_OK;
}

Status llama_train_init(LlamaTrain *t, const LlamaModel *m, const LlamaWidth *widths, LoraSet *lora,
                        const TrainOptions *opt, int max_tokens) {
    memset(t, 0, sizeof *t);
    const LlamaConfig *c = &m->cfg;
    if (max_tokens <= 0) return status_fail(ST_USAGE, "training needs room for at least one token");
    TRY(llama_require_f32(m, "the training forward"));
    if (lora && (lora->tt != &lora_llama_targets || lora->n_layers != c->n_layers))
        return status_fail(ST_USAGE, "training: the LoRA set is not one for this LLaMA model (%s targets, %d layers)",
                           lora->tt ? lora->tt->model : "no", lora->n_layers);
    t->m = m;
    t->lora = lora;
    t->opt = opt ? *opt : (TrainOptions){0};
    if (t->opt.logits_chunk <= 0) t->opt.logits_chunk = 256;
    if (t->opt.full_grads && t->opt.on_weight_grad)
        return status_fail(ST_USAGE, "training: full gradients and a weight-gradient callback exclude each other");
    t->max_tokens = max_tokens;
    t->widths = malloc((size_t)c->n_layers * sizeof *t->widths);
    if (!t->widths) return status_fail(ST_OOM, "out of memory");
    t->blocks = malloc((size_t)c->n_layers);
    if (!t->blocks) {
        llama_train_free(t);
        return status_fail(ST_OOM, "out of memory");
    }
    for (int l = 0; l < c->n_layers; l++) {
        t->widths[l] = widths ? widths[l] : (LlamaWidth){c->n_kv_heads, c->ffn_dim};
        t->blocks[l] = t->opt.blocks ? t->opt.blocks[l] : LAYER_ALL;
    }
    t->view = (LlamaView){.widths = t->widths, .lora = lora, .blocks = t->blocks, .weights = t->opt.weights};
    Status st = llama_view_validate(m, &t->view);
    if (st == ST_OK) st = train_alloc(t);
    if (st != ST_OK) llama_train_free(t);
    return st;
}

void llama_train_free(LlamaTrain *t) {
    if (!t->m) return;
    int L = t->m->cfg.n_layers;
    for (int l = 0; t->acts && l < L; l++) acts_free(&t->acts[l]);
    acts_free(&t->shared);
    Tensor *ts[] = {&t->xL,   &t->xf,    &t->dres, &t->dxn, &t->dq,     &t->datt,  &t->dk,    &t->dv,
                    &t->dgate, &t->dup, &t->dh,   &t->du,  &t->xd,     &t->dxd,   &t->logits, &t->xrows, &t->drows,
                    &t->wgrad};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) tensor_free(ts[i]);
    if (t->has_grads) grads_free(&t->grads, L);
    free(t->acts);
    free(t->pos);
    free(t->rows);
    free(t->blocks);
    free(t->grad_layers);
    free(t->widths);
    memset(t, 0, sizeof *t);
}

void llama_train_zero_grads(LlamaTrain *t) {
    if (!t->has_grads) return;
    LlamaGrads *g = &t->grads;
    tensor_zero(&g->tok_embd);
    tensor_zero(&g->final_norm);
    if (!t->m->cfg.tie_embeddings) tensor_zero(&g->lm_head);
    for (int l = 0; l < t->m->cfg.n_layers; l++) {
        LlamaLayer *d = &g->layers[l];
        Tensor *ts[] = {&d->attn_norm, &d->wq, &d->wk, &d->wv, &d->wo, &d->mlp_norm, &d->w_gate, &d->w_up, &d->w_down};
        for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) tensor_zero(ts[i]);
    }
}

Status llama_train_check_batch(const LlamaTrain *t, const TrainBatch *b) {
    const LlamaConfig *c = &t->m->cfg;
    if (b->n_seq <= 0 || b->n_tokens <= 0) return status_fail(ST_USAGE, "empty training batch");
    if (b->n_tokens > t->max_tokens)
        return status_fail(ST_USAGE, "a batch of %d tokens exceeds the %d the trainer was sized for", b->n_tokens,
                           t->max_tokens);
    if (b->cu[0] != 0 || b->cu[b->n_seq] != b->n_tokens)
        return status_fail(ST_USAGE, "sequence bounds must run from 0 to the token count");
    for (int s = 0; s < b->n_seq; s++)
        if (b->cu[s + 1] <= b->cu[s]) return status_fail(ST_USAGE, "sequence %d of the batch is empty", s);
    for (int i = 0; i < b->n_tokens; i++) {
        if (b->ids[i] < 0 || b->ids[i] >= c->vocab_size)
            return status_fail(ST_USAGE, "token id %d at position %d is outside the vocabulary [0, %d)", b->ids[i], i,
                               c->vocab_size);
        if (b->targets[i] >= c->vocab_size)
            return status_fail(ST_USAGE, "target %d at position %d is outside the vocabulary [0, %d)", b->targets[i], i,
                               c->vocab_size);
    }
    return ST_OK;
}

// ---- adapters -------------------------------------------------------------------

// Dropout seed of one adapter in one step.
static uint64_t adapter_seed(uint64_t step_seed, int layer, int target) {
    return rng_mix(step_seed, (uint64_t)(layer * LORA_N_TARGETS + target));
}

static const LoraAdapter *adapter_of(const LlamaTrain *t, int l, LoraTarget tg) {
    if (!t->lora) return NULL;
    const LoraAdapter *a = lora_adapter(t->lora, l, tg);
    return a->in ? a : NULL;
}

// out += scale * B (A dropout(in)); u = A dropout(in) is kept for the backward.
static void lora_forward(LlamaTrain *t, int l, LoraTarget tg, LayerActs *a, const Tensor *in, Tensor *out,
                         bool dropout, uint64_t seed) {
    const LoraAdapter *ad = adapter_of(t, l, tg);
    if (!ad) return;
    int64_t N = in->shape[0];
    float p = t->lora->cfg.dropout;
    Tensor u = view2(&a->u[tg], N, t->lora->cfg.rank), xd;
    const Tensor *x = in;
    if (dropout && p > 0) {
        xd = view2(&t->xd, N, ad->in);
        op_dropout(&xd, in, p, adapter_seed(seed, l, tg));
        x = &xd;
    }
    op_matmul(&u, x, &ad->A);
    op_matmul_add(out, &u, &ad->B, lora_scale(t->lora));
}

// From dout (the projection output's gradient): gB, gA += ..., din += ...
static void lora_backward(LlamaTrain *t, int l, LoraTarget tg, LayerActs *a, const Tensor *in, const Tensor *dout,
                          Tensor *din, uint64_t seed) {
    LoraAdapter *ad = (LoraAdapter *)adapter_of(t, l, tg);
    if (!ad) return;
    int64_t N = in->shape[0];
    float p = t->lora->cfg.dropout;
    Tensor u = view2(&a->u[tg], N, t->lora->cfg.rank), du = view2(&t->du, N, t->lora->cfg.rank);
    tensor_zero(&du);
    op_matmul_backward(&du, &ad->gB, dout, &u, &ad->B, lora_scale(t->lora));
    if (p > 0) {
        uint64_t s = adapter_seed(seed, l, tg);
        Tensor xd = view2(&t->xd, N, ad->in), dxd = view2(&t->dxd, N, ad->in);
        op_dropout(&xd, in, p, s);
        tensor_zero(&dxd);
        op_matmul_backward(&dxd, &ad->gA, &du, &xd, &ad->A, 1.0f);
        op_dropout(&dxd, &dxd, p, s);
        op_add(din, din, &dxd);
    } else {
        op_matmul_backward(din, &ad->gA, &du, in, &ad->A, 1.0f);
    }
}

// ---- layers -------------------------------------------------------------------------

// The layer's saved tensors as [N, width] views for this batch.
typedef struct {
    Tensor x, xn1, q, k, v, att, lse, x2, xn2, gate, up, h;
} ActViews;

static ActViews act_views(const LlamaTrain *t, int l, const LlamaLayerView *w, int64_t N) {
    const LayerActs *a = &t->acts[l], *s = t->opt.recompute ? &t->shared : a;
    int64_t D = t->m->cfg.dim;
    return (ActViews){
        .x = view2(&a->x, N, D),          .xn1 = view2(&s->xn1, N, D),     .q = view2(&s->q, N, w->qd),
        .k = view2(&s->k, N, w->kvd),     .v = view2(&s->v, N, w->kvd),    .att = view2(&s->att, N, w->qd),
        .lse = view2(&s->lse, w->nq, N),  .x2 = view2(&s->x2, N, D),       .xn2 = view2(&s->xn2, N, D),
        .gate = view2(&s->gate, N, w->ffn), .up = view2(&s->up, N, w->ffn), .h = view2(&s->h, N, w->ffn),
    };
}

static VarlenShape varlen_shape(const LlamaTrain *t, const TrainBatch *b, const LlamaLayerView *w) {
    return (VarlenShape){.cu = b->cu, .n_seq = b->n_seq, .n_heads = w->nq, .n_kv_heads = w->kv,
                         .head_dim = t->m->cfg.head_dim};
}

// The layer step's context: the trainer, this batch, the layer's saved
// activations and the adapters' dropout.
typedef struct {
    LlamaTrain *t;
    const TrainBatch *b;
    LayerActs *a;
    ActViews *v;
    bool dropout;
    uint64_t seed;
} StepCtx;

// q, k, v (saved after RoPE), attention over each packed sequence (lse saved).
static void attend_packed(void *ctx, int l, const LlamaLayerPlan *p, const Tensor *xn, Tensor *att) {
    StepCtx *x = ctx;
    LlamaTrain *t = x->t;
    const LlamaConfig *c = &t->m->cfg;
    const LlamaLayerView *w = &p->wv;
    ActViews *v = x->v;
    op_matmul(&v->q, xn, &w->wq);
    lora_forward(t, l, LORA_Q, x->a, xn, &v->q, x->dropout, x->seed);
    op_matmul(&v->k, xn, &w->wk);
    lora_forward(t, l, LORA_K, x->a, xn, &v->k, x->dropout, x->seed);
    op_matmul(&v->v, xn, &w->wv);
    lora_forward(t, l, LORA_V, x->a, xn, &v->v, x->dropout, x->seed);
    op_rope(&v->q, t->pos, t->m->inv_freq, w->nq, c->head_dim);
    op_rope(&v->k, t->pos, t->m->inv_freq, w->kv, c->head_dim);
    VarlenShape shape = varlen_shape(t, x->b, w);
    op_attention_varlen(att, &v->lse, &v->q, &v->k, &v->v, &shape);
}

static void adapter_packed(void *ctx, int l, LoraTarget tg, const Tensor *in, Tensor *out) {
    StepCtx *x = ctx;
    lora_forward(x->t, l, tg, x->a, in, out, x->dropout, x->seed);
}

static void layer_forward(LlamaTrain *t, const TrainBatch *b, int l, Tensor *x_out, bool dropout, uint64_t seed) {
    LlamaLayerPlan p = llama_layer_plan(t->m, &t->view, l);
    LayerActs *a = &t->acts[l];
    ActViews v = act_views(t, l, &p.wv, b->n_tokens);
    LlamaLayerBufs bufs = {.x = v.x, .xn1 = v.xn1, .att = v.att, .x2 = v.x2, .xn2 = v.xn2,
                           .gate = v.gate, .up = v.up, .h = v.h, .out = *x_out};
    StepCtx ctx = {t, b, a, &v, dropout, seed};
    LlamaLayerSteps steps = {&ctx, attend_packed, adapter_packed, NULL};
    llama_layer_forward(&t->m->cfg, l, &p, &bufs, &steps);
}

// Where the backward puts a projection's weight gradient: the full-gradient
// buffer, a zeroed scratch for the callback, or nowhere.
static Tensor *weight_grad_target(LlamaTrain *t, int l, const Tensor *full, const Tensor *w, Tensor *scratch) {
    if (t->has_grads) return (Tensor *)full;
    if (!t->opt.on_weight_grad || !t->grad_layers[l]) return NULL;
    *scratch = view2(&t->wgrad, w->shape[0], w->shape[1]);
    tensor_zero(scratch);
    return scratch;
}

static void weight_grad_done(LlamaTrain *t, int l, LoraTarget proj, const Tensor *w, const Tensor *g) {
    if (g && !t->has_grads) t->opt.on_weight_grad(t->opt.grad_ctx, l, proj, w, g);
}

// Backward of out = x @ w^T for projection proj: dx += ..., and the weight gradient where it goes.
static void proj_backward(LlamaTrain *t, int l, LoraTarget proj, Tensor *dx, const Tensor *dout, const Tensor *x,
                          const Tensor *w, const Tensor *full_grad) {
    Tensor scratch;
    Tensor *dw = weight_grad_target(t, l, full_grad, w, &scratch);
    op_matmul_backward(dx, dw, dout, x, w, 1.0f);
    weight_grad_done(t, l, proj, w, dw);
}

// dres holds dL/d(layer output) on entry and dL/d(layer input) on return.
static void layer_backward(LlamaTrain *t, const TrainBatch *b, int l, uint64_t seed) {
    const LlamaConfig *c = &t->m->cfg;
    LlamaLayerPlan plan = llama_layer_plan(t->m, &t->view, l);
    const LlamaLayer *ly = plan.w;
    LlamaLayerView w = plan.wv, wv = w;
    LayerActs *a = &t->acts[l];
    ActViews v = act_views(t, l, &w, b->n_tokens);
    int64_t N = b->n_tokens, D = c->dim;
    bool full = t->has_grads;
    LlamaLayerView gv = {0};
    LlamaLayer *g = full ? &t->grads.layers[l] : NULL;
    if (full) gv = layer_view(t, l, g);
    Tensor dres = view2(&t->dres, N, D), dxn = view2(&t->dxn, N, D);
    Tensor dh = view2(&t->dh, N, w.ffn), dgate = view2(&t->dgate, N, w.ffn), dup = view2(&t->dup, N, w.ffn);
    Tensor datt = view2(&t->datt, N, w.qd), dq = view2(&t->dq, N, w.qd);
    Tensor dk = view2(&t->dk, N, w.kvd), dv = view2(&t->dv, N, w.kvd);
    // MLP block: x_out = x2 + down(swiglu(gate(xn2), up(xn2))); a skipped block passes dres through
    if (plan.ffn) {
        tensor_zero(&dh);
        proj_backward(t, l, LORA_DOWN, &dh, &dres, &v.h, &wv.w_down, full ? &gv.w_down : NULL);
        lora_backward(t, l, LORA_DOWN, a, &v.h, &dres, &dh, seed);
        tensor_zero(&dgate);
        tensor_zero(&dup);
        op_swiglu_backward(&dgate, &dup, &dh, &v.gate, &v.up);
        tensor_zero(&dxn);
        proj_backward(t, l, LORA_GATE, &dxn, &dgate, &v.xn2, &wv.w_gate, full ? &gv.w_gate : NULL);
        lora_backward(t, l, LORA_GATE, a, &v.xn2, &dgate, &dxn, seed);
        proj_backward(t, l, LORA_UP, &dxn, &dup, &v.xn2, &wv.w_up, full ? &gv.w_up : NULL);
        lora_backward(t, l, LORA_UP, a, &v.xn2, &dup, &dxn, seed);
        op_rmsnorm_backward(&dres, full ? &g->mlp_norm : NULL, &dxn, &v.x2, &ly->mlp_norm, c->rms_eps);
    }
    if (!plan.attn) return;
    // attention block: x2 = x + o(attention(rope(q(xn1)), rope(k(xn1)), v(xn1)))
    tensor_zero(&datt);
    proj_backward(t, l, LORA_O, &datt, &dres, &v.att, &wv.wo, full ? &gv.wo : NULL);
    lora_backward(t, l, LORA_O, a, &v.att, &dres, &datt, seed);
    tensor_zero(&dq);
    tensor_zero(&dk);
    tensor_zero(&dv);
    VarlenShape shape = varlen_shape(t, b, &w);
    op_attention_varlen_backward(&dq, &dk, &dv, &datt, &v.q, &v.k, &v.v, &v.att, &v.lse, &shape);
    op_rope_backward(&dq, t->pos, t->m->inv_freq, w.nq, c->head_dim);
    op_rope_backward(&dk, t->pos, t->m->inv_freq, w.kv, c->head_dim);
    tensor_zero(&dxn);
    proj_backward(t, l, LORA_Q, &dxn, &dq, &v.xn1, &wv.wq, full ? &gv.wq : NULL);
    lora_backward(t, l, LORA_Q, a, &v.xn1, &dq, &dxn, seed);
    proj_backward(t, l, LORA_K, &dxn, &dk, &v.xn1, &wv.wk, full ? &gv.wk : NULL);
    lora_backward(t, l, LORA_K, a, &v.xn1, &dk, &dxn, seed);
    proj_backward(t, l, LORA_V, &dxn, &dv, &v.xn1, &wv.wv, full ? &gv.wv : NULL);
    lora_backward(t, l, LORA_V, a, &v.xn1, &dv, &dxn, seed);
    op_rmsnorm_backward(&dres, full ? &g->attn_norm : NULL, &dxn, &v.x, &ly->attn_norm, c->rms_eps);
}

// ---- whole model ---------------------------------------------------------------------

static void forward_layers(LlamaTrain *t, const TrainBatch *b, bool dropout, uint64_t seed) {
    const LlamaConfig *c = &t->m->cfg;
    int64_t N = b->n_tokens, D = c->dim;
    for (int s = 0; s < b->n_seq; s++)
        for (int i = b->cu[s]; i < b->cu[s + 1]; i++) t->pos[i] = i - b->cu[s];
    Tensor x0 = view2(&t->acts[0].x, N, D);
    op_embedding(&x0, &t->m->tok_embd, b->ids);
    for (int l = 0; l < c->n_layers; l++) {
        Tensor x_out = view2(l + 1 < c->n_layers ? &t->acts[l + 1].x : &t->xL, N, D);
        if (!t->blocks[l]) { // the identity
            Tensor x_in = view2(&t->acts[l].x, N, D);
            memcpy(x_out.data, x_in.data, (size_t)(N * D) * sizeof(float));
        } else {
            layer_forward(t, b, l, &x_out, dropout, seed);
        }
    }
    Tensor xL = view2(&t->xL, N, D), xf = view2(&t->xf, N, D);
    op_rmsnorm(&xf, &xL, &t->m->final_norm, c->rms_eps);
}

// The loss over the rows with a target, a chunk of rows at a time; with
// backward, leaves dL/dxf in dxn (zero on rows without a target) and
// accumulates the lm_head gradient.
static double loss_head(LlamaTrain *t, const TrainBatch *b, bool backward, float scale, int64_t *counted) {
    const LlamaConfig *c = &t->m->cfg;
    int64_t N = b->n_tokens, D = c->dim, n_rows = 0;
    for (int i = 0; i < N; i++)
        if (b->targets[i] >= 0) t->rows[n_rows++] = i;
    Tensor xf = view2(&t->xf, N, D), dxf = {0};
    if (backward) {
        dxf = view2(&t->dxn, N, D);
        tensor_zero(&dxf);
    }
    int32_t tgt[1024];
    double total = 0;
    int64_t chunk = t->opt.logits_chunk < 1024 ? t->opt.logits_chunk : 1024;
    for (int64_t r0 = 0; r0 < n_rows; r0 += chunk) {
        int64_t n = n_rows - r0 < chunk ? n_rows - r0 : chunk;
        Tensor xr = view2(&t->xrows, n, D), lg = view2(&t->logits, n, c->vocab_size);
        for (int64_t i = 0; i < n; i++) {
            int row = t->rows[r0 + i];
            memcpy(tensor_row_f32(&xr, i), tensor_row_f32(&xf, row), (size_t)D * sizeof(float));
            tgt[i] = b->targets[row];
        }
        op_matmul(&lg, &xr, &t->m->lm_head);
        total += op_cross_entropy(backward ? &lg : NULL, &lg, tgt, scale);
        if (!backward) continue;
        Tensor dr = view2(&t->drows, n, D);
        tensor_zero(&dr);
        op_matmul_backward(&dr, t->has_grads ? &t->grads.lm_head : NULL, &lg, &xr, &t->m->lm_head, 1.0f);
        for (int64_t i = 0; i < n; i++)
            memcpy(tensor_row_f32(&dxf, t->rows[r0 + i]), tensor_row_f32(&dr, i), (size_t)D * sizeof(float));
    }
    if (counted) *counted = n_rows;
    return total;
}

Status llama_train_step(LlamaTrain *t, const TrainBatch *b, float loss_scale, uint64_t dropout_seed,
                        double *loss_sum, int64_t *counted) {
    if (t->opt.eval_only) return status_fail(ST_USAGE, "training step on a trainer made for evaluation only");
    TRY(llama_train_check_batch(t, b));
    const LlamaConfig *c = &t->m->cfg;
    int64_t N = b->n_tokens, D = c->dim;
    forward_layers(t, b, true, dropout_seed);
    double loss = loss_head(t, b, true, loss_scale, counted);
    // final norm: dres = d loss / d xL
    Tensor dres = view2(&t->dres, N, D), dxf = view2(&t->dxn, N, D), xL = view2(&t->xL, N, D);
    tensor_zero(&dres);
    op_rmsnorm_backward(&dres, t->has_grads ? &t->grads.final_norm : NULL, &dxf, &xL, &t->m->final_norm, c->rms_eps);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        if (!t->blocks[l]) continue; // the identity passes the gradient through
        if (t->opt.recompute) { // rebuild the layer's activations from its saved input
            Tensor x_next = view2(l + 1 < c->n_layers ? &t->acts[l + 1].x : &t->xL, N, D);
            layer_forward(t, b, l, &x_next, true, dropout_seed);
        }
        layer_backward(t, b, l, dropout_seed);
    }
    if (t->has_grads) op_embedding_backward(&t->grads.tok_embd, &dres, b->ids);
    if (loss_sum) *loss_sum = loss;
    return ST_OK;
}

Status llama_train_eval(LlamaTrain *t, const TrainBatch *b, double *loss_sum, int64_t *counted) {
    TRY(llama_train_check_batch(t, b));
    forward_layers(t, b, false, 0);
    double loss = loss_head(t, b, false, 1.0f, counted);
    if (loss_sum) *loss_sum = loss;
    return ST_OK;
}
