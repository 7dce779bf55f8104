// The decoder forward pass over a KV cache, written once against ops.h.
#include <stdlib.h>
#include <string.h>

#include "llama.h"
#include "decoder_io.h"
#include "llama_layer.h"
#include "lora.h"
#include "ops/ops.h"
#include "runtime/device.h"

static void scratch_free(LlamaScratch *sc) {
    Tensor *ts[] = {&sc->x,    &sc->xn,     &sc->q,      &sc->att,    &sc->k_new,  &sc->v_new,
                    &sc->gate, &sc->up,     &sc->act,    &sc->last,   &sc->lora_u, &sc->logits,
                    &sc->pred_h, &sc->pred_s, &sc->pred_idx};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) tensor_free(ts[i]);
}

// Grows the scratch to hold n rows (tokens).
static Status scratch_reserve(LlamaSession *s, const LlamaConfig *c, int n) {
    if (n <= s->scratch_tokens) return ST_OK;
    LlamaScratch *sc = &s->s;
    scratch_free(sc);
    s->scratch_tokens = 0; // until every buffer below exists again
    int64_t D = c->dim, QD = (int64_t)c->n_heads * c->head_dim;
    TRY(tensor_alloc_2d(&sc->x, DT_F32, s->dev, n, D));
    TRY(tensor_alloc_2d(&sc->xn, s->act_dtype, s->dev, n, D));
    TRY(tensor_alloc_2d(&sc->q, DT_F32, s->dev, n, QD));
    TRY(tensor_alloc_2d(&sc->att, s->act_dtype, s->dev, n, QD));
    TRY(tensor_alloc_2d(&sc->k_new, DT_F32, s->dev, n, (int64_t)c->n_kv_heads * c->head_dim));
    TRY(tensor_alloc_2d(&sc->v_new, DT_F32, s->dev, n, (int64_t)c->n_kv_heads * c->head_dim));
    TRY(tensor_alloc_2d(&sc->gate, DT_F32, s->dev, n, c->ffn_dim));
    TRY(tensor_alloc_2d(&sc->up, DT_F32, s->dev, n, c->ffn_dim));
    TRY(tensor_alloc_2d(&sc->last, s->act_dtype, s->dev, s->n_seq, D));
    if (s->act_dtype != DT_F32) TRY(tensor_alloc_2d(&sc->act, s->act_dtype, s->dev, n, c->ffn_dim));
    if (s->view && s->view->lora && s->view->lora->cfg.rank > s->lora_rank) s->lora_rank = s->view->lora->cfg.rank;
    if (s->lora_rank > 0) TRY(tensor_alloc_1d(&sc->lora_u, DT_F32, s->dev, (int64_t)n * s->lora_rank));
    if (s->pred_k > 0) {
        TRY(tensor_alloc_2d(&sc->pred_h, DT_F32, s->dev, n, s->pred_rank));
        TRY(tensor_alloc_2d(&sc->pred_s, DT_F32, s->dev, n, c->ffn_dim));
        TRY(tensor_alloc_2d(&sc->pred_idx, DT_I32, s->dev, n, s->pred_k));
    }
    s->scratch_tokens = n;
    return ST_OK;
}

static DecoderCache cache_of(LlamaSession *s) {
    return (DecoderCache){&s->k, &s->v, &s->mask, &s->pos, &s->mask_dev, &s->idx_dev};
}

Status llama_session_init(LlamaSession *s, const LlamaModel *m, int n_seq, int cap, Device dev) {
    memset(s, 0, sizeof *s);
    TRY(decoder_session_check(dev, m->dev, n_seq, cap, "llama_to_device"));
    const LlamaConfig *c = &m->cfg;
    s->n_seq = n_seq;
    s->cap = cap;
    s->dev = dev;
    // What matmuls read (normalised inputs, attention and SwiGLU outputs) in the weights' dtype on a
    // device: written once in 16 bits instead of in f32 and converted before every matmul.
    s->act_dtype = dev.kind == DEV_CPU ? DT_F32 : m->layers[0].wq.dtype;
    s->n_layers = c->n_layers;
    DecoderCache kv = cache_of(s);
    Status st = decoder_cache_alloc(&kv, c->n_layers, n_seq, cap, (int64_t)c->n_kv_heads * c->head_dim, dev);
    if (st != ST_OK) llama_session_free(s);
    return st;
}

void llama_session_free(LlamaSession *s) {
    DecoderCache kv = cache_of(s);
    decoder_cache_free(&kv, s->n_layers);
    scratch_free(&s->s);
    memset(s, 0, sizeof *s);
}

void llama_session_reset(LlamaSession *s) {
    s->n_past = 0;
    s->base = NULL;
    s->base_n = 0;
}

void llama_session_truncate(LlamaSession *s, int n) {
    if (n >= 0 && n < s->n_past) s->n_past = n;
    if (s->base_n > s->n_past) { // the shared part is cut too: it is no longer shared
        s->base = NULL;
        s->base_n = 0;
    }
}

Status llama_session_attach(LlamaSession *dst, const LlamaSession *base, int n) {
    if (n > base->n_past || base->n_layers != dst->n_layers || base->dev.kind != dst->dev.kind ||
        base->dev.index != dst->dev.index || base->n_seq != 1)
        return status_fail(ST_USAGE, "session attach: base holds %d tokens of one sequence, %d asked", base->n_past, n);
    dst->base = n > 0 ? base : NULL;
    dst->base_n = n;
    dst->n_past = n;
    return ST_OK;
}
Status llama_session_set_view(LlamaSession *s, const LlamaModel *m, const LlamaView *v) {
    if (v && v->lora && (v->lora->params.dev.kind != s->dev.kind || v->lora->params.dev.index != s->dev.index))
        return status_fail(ST_USAGE, "view: the LoRA adapters must be on the session's device (lora_to_device)");
    TRY(llama_view_validate(m, v));
    int rank_new = v && v->lora ? v->lora->cfg.rank : 0;
    s->view = v;
    if (rank_new > s->lora_rank) s->scratch_tokens = 0; // the first adapter of a larger rank: the scratch regrows once
    if (v && v->sparse) { // predictor buffers as wide as the widest predictor and k seen so far
        int R = 0;
        for (int l = 0; l < m->cfg.n_layers; l++)
            if (v->sparse->layers[l].w1.data && v->sparse->layers[l].w1.shape[0] > R) R = (int)v->sparse->layers[l].w1.shape[0];
        if (R > s->pred_rank || v->sparse->k > s->pred_k) {
            if (R > s->pred_rank) s->pred_rank = R;
            if (v->sparse->k > s->pred_k) s->pred_k = v->sparse->k;
            s->scratch_tokens = 0;
        }
    }
    return ST_OK;
}

// out += scale * B (A x) for the view's adapter of (layer, target), if any.
static void apply_lora(const LlamaSession *s, int l, LoraTarget t, const Tensor *x, Tensor *out) {
    if (!s->view || !s->view->lora) return;
    const LoraAdapter *a = lora_adapter(s->view->lora, l, t);
    if (!a->in) return;
    Tensor u = tensor_wrap(s->s.lora_u.data, DT_F32, s->dev, 2, (int64_t[]){x->shape[0], s->view->lora->cfg.rank});
    op_matmul(&u, x, &a->A);
    op_matmul_add(out, &u, &a->B, lora_scale(s->view->lora));
}

// The arrays the ops read beside the tensors, where they run (ops.h): the
// session's host arrays on the CPU, their device copies (uploaded once per
// forward by upload_index) otherwise.
typedef struct {
    const int32_t *ids, *pos; // [N] this forward's token ids and positions
    const int32_t *mask;      // [n_seq*cap] the session's key mask
    const float *freq;        // [hd/2] rotary frequencies
} OpIndex;

static const int32_t *session_mask(const LlamaSession *s) {
    return s->dev.kind == DEV_CPU ? s->mask : (const int32_t *)s->mask_dev.data;
}

// K and V of the new tokens of every sequence in one projection each, then
// into each sequence's cache rows [s*cap + n_past - base_n, ... + T).
static void project_kv(const LlamaModel *m, LlamaSession *s, int l, const LlamaLayerView *w, const Tensor *xn, int T,
                       const OpIndex *ix) {
    const LlamaConfig *c = &m->cfg;
    int64_t N = (int64_t)s->n_seq * T;
    Tensor kn = tensor_rows(&s->s.k_new, 0, N), vn = tensor_rows(&s->s.v_new, 0, N);
    kn = tensor_cols(&kn, 0, w->kvd), vn = tensor_cols(&vn, 0, w->kvd);
    op_matmul(&kn, xn, &w->wk);
    apply_lora(s, l, LORA_K, xn, &kn);
    op_rope(&kn, ix->pos, ix->freq, w->kv, c->head_dim);
    op_matmul(&vn, xn, &w->wv);
    apply_lora(s, l, LORA_V, xn, &vn);
    decoder_store_kv(&s->k[l], &kn, s->n_seq, T, s->cap, s->n_past - s->base_n);
    decoder_store_kv(&s->v[l], &vn, s->n_seq, T, s->cap, s->n_past - s->base_n);
}

// The layer step's context: this forward's session, length and index arrays.
typedef struct {
    const LlamaModel *m;
    LlamaSession *s;
    int T;
    const OpIndex *ix;
} StepCtx;

// Queries, the new keys and values into the cache, attention over the cache
// (and a shared prefix).
static void attend_cached(void *ctx, int l, const LlamaLayerPlan *p, const Tensor *xn, Tensor *att) {
    StepCtx *x = ctx;
    LlamaSession *s = x->s;
    const LlamaConfig *c = &x->m->cfg;
    const LlamaLayerView *w = &p->wv;
    Tensor q = tensor_rows(&s->s.q, 0, xn->shape[0]);
    q = tensor_cols(&q, 0, w->qd);
    op_matmul(&q, xn, &w->wq);
    apply_lora(s, l, LORA_Q, xn, &q);
    op_rope(&q, x->ix->pos, x->ix->freq, w->nq, c->head_dim);
    project_kv(x->m, s, l, w, xn, x->T, x->ix);
    AttentionShape shape = {.n_seq = s->n_seq, .T = x->T, .n_past = s->n_past, .cap = s->cap,
                            .n_heads = w->nq, .n_kv_heads = w->kv, .head_dim = c->head_dim};
    Tensor k = tensor_cols(&s->k[l], 0, w->kvd), v = tensor_cols(&s->v[l], 0, w->kvd);
    SharedKV shared = {0};
    Tensor bk, bv;
    if (s->base) {
        bk = tensor_cols(&s->base->k[l], 0, w->kvd), bv = tensor_cols(&s->base->v[l], 0, w->kvd);
        shared = (SharedKV){&bk, &bv, session_mask(s->base), 0, s->base_n};
    }
    op_attention(att, &q, &k, &v, x->ix->mask, &shape, s->base ? &shared : NULL);
}

static void adapter_cached(void *ctx, int l, LoraTarget t, const Tensor *in, Tensor *out) {
    apply_lora(((StepCtx *)ctx)->s, l, t, in, out);
}

static void probe_cached(void *ctx, int l, const Tensor *xn, const Tensor *gate) {
    LlamaSession *s = ((StepCtx *)ctx)->s;
    s->ffn_probe(s->probe_ctx, l, xn, gate);
}

// One layer in the session's view; the residual stream sc->x is updated in place.
static void layer_forward(const LlamaModel *m, LlamaSession *s, int l, int T, const OpIndex *ix) {
    LlamaScratch *sc = &s->s;
    LlamaLayerPlan p = llama_layer_plan(m, s->view, l);
    int64_t N = (int64_t)s->n_seq * T;
    LlamaLayerBufs b;
    b.x = b.x2 = b.out = tensor_rows(&sc->x, 0, N);
    b.xn1 = b.xn2 = tensor_rows(&sc->xn, 0, N);
    b.att = tensor_rows(&sc->att, 0, N), b.att = tensor_cols(&b.att, 0, p.wv.qd);
    b.gate = tensor_rows(&sc->gate, 0, N), b.gate = tensor_cols(&b.gate, 0, p.wv.ffn);
    b.up = tensor_rows(&sc->up, 0, N), b.up = tensor_cols(&b.up, 0, p.wv.ffn);
    b.h = b.gate; // f32 activations: in place
    if (s->act_dtype != DT_F32) b.h = tensor_rows(&sc->act, 0, N), b.h = tensor_cols(&b.h, 0, p.wv.ffn);
    if (p.pred) {
        b.pred_h = tensor_rows(&sc->pred_h, 0, N), b.pred_h = tensor_cols(&b.pred_h, 0, p.pred->w1.shape[0]);
        b.pred_s = tensor_rows(&sc->pred_s, 0, N);
        b.pred_idx = tensor_rows(&sc->pred_idx, 0, N), b.pred_idx = tensor_cols(&b.pred_idx, 0, p.pred_k);
    }
    StepCtx ctx = {m, s, T, ix};
    LlamaLayerSteps steps = {&ctx, attend_cached, adapter_cached, s->ffn_probe ? probe_cached : NULL};
    llama_layer_forward(&m->cfg, l, &p, &b, &steps);
}

// This forward's index arrays where the ops read them (the ids, positions and
// the new tokens' mask entries uploaded once on a device).
static Status upload_index(const LlamaModel *m, LlamaSession *s, const int32_t *ids, int T, OpIndex *ix) {
    TRY(decoder_upload_index(s->dev, ids, s->pos, s->mask, s->n_seq, T, s->cap, s->n_past - s->base_n, &s->idx_dev,
                             &s->mask_dev, &ix->ids, &ix->pos, &ix->mask));
    ix->freq = s->dev.kind == DEV_CPU ? m->inv_freq : m->inv_freq_dev.data;
    return ST_OK;
}

Status llama_forward(const LlamaModel *m, LlamaSession *s, const int32_t *ids, const int32_t *mask, int T,
                     LogitsMode mode, Tensor *logits) {
    TRY(decoder_check_io(m->cfg.vocab_size, s->n_seq, T, s->n_past - s->base_n, s->cap, ids, mask, mode, logits,
                         s->dev));
    const LlamaConfig *c = &m->cfg;
    int64_t N = (int64_t)s->n_seq * T;
    TRY(scratch_reserve(s, c, (int)N));
    for (int b = 0; b < s->n_seq; b++)
        for (int t = 0; t < T; t++) {
            s->mask[(int64_t)b * s->cap + s->n_past - s->base_n + t] = mask ? mask[(int64_t)b * T + t] : 1;
            s->pos[(int64_t)b * T + t] = s->n_past + t;
        }
    OpIndex ix;
    TRY(upload_index(m, s, ids, T, &ix));
    LlamaScratch *sc = &s->s;
    Tensor x = tensor_rows(&sc->x, 0, N);
    op_embedding(&x, &m->tok_embd, ix.ids);
    for (int l = 0; l < c->n_layers; l++) layer_forward(m, s, l, T, &ix);
    // Logits wanted on the host from a device session are formed on the device, then copied.
    Tensor out;
    bool copy_back;
    TRY(decoder_logits_begin(s->dev, mode, logits, c->vocab_size, &sc->logits, &out, &copy_back));
    if (mode == LOGITS_ALL) {
        Tensor xn = tensor_rows(&sc->xn, 0, N);
        op_rmsnorm(&xn, &x, &m->final_norm, c->rms_eps);
        op_matmul(&out, &xn, &m->lm_head);
    } else if (mode == LOGITS_LAST) {
        // The last new token of every sequence: rows T-1, 2T-1, ... as one strided view.
        Tensor last_x = tensor_rows(&x, T - 1, s->n_seq);
        last_x.stride[0] = (int64_t)T * x.stride[0];
        op_rmsnorm(&sc->last, &last_x, &m->final_norm, c->rms_eps);
        op_matmul(&out, &sc->last, &m->lm_head);
    }
    decoder_logits_done(logits, &out, copy_back);
    s->n_past += T;
    return ST_OK;
}

Status llama_token_logprobs(const Tensor *logits, const int32_t *ids, int n_seq, int T, float *lp) {
    int64_t V = logits->shape[1];
    Tensor row_lp;
    TRY(tensor_alloc_2d(&row_lp, DT_F32, logits->dev, 1, V));
    for (int b = 0; b < n_seq; b++)
        for (int t = 0; t + 1 < T; t++) {
            Tensor row = tensor_rows(logits, (int64_t)b * T + t, 1);
            op_log_softmax(&row_lp, &row);
            lp[(int64_t)b * (T - 1) + t] = ((float *)row_lp.data)[ids[(int64_t)b * T + t + 1]];
        }
    tensor_free(&row_lp);
    return ST_OK;
}

static void argmax_rows(const Tensor *logits, int32_t *out) {
    for (int64_t r = 0; r < logits->shape[0]; r++) {
        const float *row = tensor_row_f32(logits, r);
        int32_t best = 0;
        for (int64_t j = 1; j < logits->shape[1]; j++)
            if (row[j] > row[best]) best = (int32_t)j;
        out[r] = best;
    }
}

Status llama_generate_greedy(const LlamaModel *m, const LlamaView *view, const int32_t *ids, const int32_t *mask,
                             int n_seq, int T, int n_steps, Device dev, int32_t *out) {
    if (n_steps <= 0) return ST_OK;
    LlamaSession s;
    TRY(llama_session_init(&s, m, n_seq, T + n_steps, dev));
    Tensor logits = {0};
    Status st = llama_session_set_view(&s, m, view);
    if (st == ST_OK) st = tensor_alloc_2d(&logits, DT_F32, (Device){DEV_CPU, 0}, n_seq, m->cfg.vocab_size);
    int32_t *next = malloc((size_t)n_seq * sizeof *next);
    if (st == ST_OK && !next) st = status_fail(ST_OOM, "out of memory");
    if (st == ST_OK) st = llama_forward(m, &s, ids, mask, T, LOGITS_LAST, &logits);
    for (int step = 0; st == ST_OK && step < n_steps; step++) {
        argmax_rows(&logits, next);
        for (int b = 0; b < n_seq; b++) out[(int64_t)b * n_steps + step] = next[b];
        if (step + 1 < n_steps) st = llama_forward(m, &s, next, NULL, 1, LOGITS_LAST, &logits);
    }
    free(next);
    tensor_free(&logits);
    llama_session_free(&s);
    return st;
}
