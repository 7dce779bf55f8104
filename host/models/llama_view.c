// Views of a model: per-layer prefix widths, sub-blocks, substitute weights
// and the adapters on top; and the one layer step every forward shares.
#include "llama.h"
#include "llama_layer.h"
#include "lora.h"
#include "ops/ops.h"

LlamaLayerView llama_layer_view(const LlamaConfig *c, const LlamaLayer *ly, const LlamaWidth *w) {
    LlamaLayerView v;
    v.kv = w ? w->n_kv : c->n_kv_heads;
    v.ffn = w ? w->ffn : c->ffn_dim;
    v.nq = v.kv * (c->n_heads / c->n_kv_heads);
    v.qd = (int64_t)v.nq * c->head_dim;
    v.kvd = (int64_t)v.kv * c->head_dim;
    v.wq = tensor_rows(&ly->wq, 0, v.qd);
    v.wk = tensor_rows(&ly->wk, 0, v.kvd);
    v.wv = tensor_rows(&ly->wv, 0, v.kvd);
    v.wo = tensor_cols(&ly->wo, 0, v.qd);
    v.w_gate = tensor_rows(&ly->w_gate, 0, v.ffn);
    v.w_up = tensor_rows(&ly->w_up, 0, v.ffn);
    v.w_down = tensor_cols(&ly->w_down, 0, v.ffn);
    return v;
}

Status llama_view_check(const LlamaConfig *c, const LlamaWidth *widths, const struct LoraSet *lora) {
    for (int l = 0; widths && l < c->n_layers; l++)
        if (widths[l].n_kv < 1 || widths[l].n_kv > c->n_kv_heads || widths[l].ffn < 1 || widths[l].ffn > c->ffn_dim)
            return status_fail(ST_USAGE, "layer %d: view widths (%d KV heads, %d FFN channels) outside 1..%d, 1..%d", l,
                               widths[l].n_kv, widths[l].ffn, c->n_kv_heads, c->ffn_dim);
    if (!lora) return ST_OK;
    if (lora->n_layers != c->n_layers)
        return status_fail(ST_USAGE, "the LoRA set has %d layers, the model %d", lora->n_layers, c->n_layers);
    for (int l = 0; l < c->n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            const LoraAdapter *a = lora_adapter(lora, l, t);
            int out, in;
            lora_target_shape(c, widths ? &widths[l] : NULL, t, &out, &in);
            if (a->in && (a->in != in || a->out != out))
                return status_fail(ST_USAGE, "layer %d %s: the adapter is [%d, %d], the view needs [%d, %d]", l,
                                   lora_target_names[t], a->out, a->in, out, in);
        }
    return ST_OK;
}

static bool same_kind(const Tensor *a, const Tensor *b) {
    if (a->dtype != b->dtype || a->ndim != b->ndim || a->dev.kind != b->dev.kind || a->dev.index != b->dev.index)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

static bool on_device_of(const Tensor *t, const Tensor *ref) {
    return t->dev.kind == ref->dev.kind && t->dev.index == ref->dev.index;
}

// Sparse layers: predictors shaped [R, D], [R], [F, R], [F] and a transposed
// down projection [F, D], where the model's weights are and in a dtype the ops
// take; the layer's FFN whole, its own, without adapters.
static Status sparsity_validate(const LlamaModel *m, const LlamaView *v) {
    const FfnSparsity *sp = v->sparse;
    if (!sp) return ST_OK;
    const LlamaConfig *c = &m->cfg;
    if (!sp->layers) return status_fail(ST_USAGE, "sparse view: no predictors");
    if (sp->k < 1 || sp->k > c->ffn_dim)
        return status_fail(ST_USAGE, "sparse view: %d neurons kept per token, the FFN has %d", sp->k, c->ffn_dim);
    for (int l = 0; l < c->n_layers; l++) {
        const FfnPredictor *p = &sp->layers[l];
        if (!p->w1.data) continue;
        int64_t R = p->w1.ndim == 2 ? p->w1.shape[0] : -1;
        const Tensor *w = &m->layers[l].w_gate;
        bool shapes = p->w1.ndim == 2 && p->w1.shape[1] == c->dim && p->b1.ndim == 1 && p->b1.shape[0] == R &&
                      p->w2.ndim == 2 && p->w2.shape[0] == c->ffn_dim && p->w2.shape[1] == R && p->b2.ndim == 1 &&
                      p->b2.shape[0] == c->ffn_dim && p->w_down_t.ndim == 2 && p->w_down_t.shape[0] == c->ffn_dim &&
                      p->w_down_t.shape[1] == c->dim;
        if (!shapes)
            return status_fail(ST_USAGE, "layer %d: the FFN predictor is not shaped [R, %d], [R], [%d, R], [%d] with a "
                               "transposed down projection [%d, %d]", l, c->dim, c->ffn_dim, c->ffn_dim, c->ffn_dim, c->dim);
        const Tensor *all[] = {&p->w1, &p->b1, &p->w2, &p->b2, &p->w_down_t};
        for (int i = 0; i < 5; i++)
            if (!on_device_of(all[i], w))
                return status_fail(ST_USAGE, "layer %d: the FFN predictor is not on the model's device", l);
        if (w->dev.kind == DEV_CPU && (w->dtype != DT_F32 || p->w_down_t.dtype != DT_F32))
            return status_fail(ST_UNSUPPORTED, "contextual sparsity on the CPU runs f32 weights (--weights f32), not %s",
                               dtype_name(w->dtype));
        if (p->b1.dtype != DT_F32 || p->b2.dtype != DT_F32)
            return status_fail(ST_USAGE, "layer %d: the FFN predictor's biases must be f32", l);
        if (v->widths && v->widths[l].ffn != c->ffn_dim)
            return status_fail(ST_USAGE, "layer %d: a sparse FFN runs the whole width (the view keeps %d of %d)", l,
                               v->widths[l].ffn, c->ffn_dim);
        if (v->weights && v->weights[l])
            return status_fail(ST_USAGE, "layer %d: a sparse FFN runs the model's own weights, not a substitute", l);
        if (v->lora)
            for (int t = LORA_GATE; t <= LORA_DOWN; t++)
                if (lora_adapter(v->lora, l, (LoraTarget)t)->in)
                    return status_fail(ST_USAGE, "layer %d: a sparse FFN takes no %s adapter", l, lora_target_names[t]);
    }
    return ST_OK;
}

Status llama_view_validate(const LlamaModel *m, const LlamaView *v) {
    if (!v) return ST_OK;
    TRY(llama_view_check(&m->cfg, v->widths, v->lora));
    for (int l = 0; v->blocks && l < m->cfg.n_layers; l++)
        if (v->blocks[l] & ~LAYER_ALL)
            return status_fail(ST_USAGE, "layer %d: view block bits %#x (attention 1, FFN 2)", l, v->blocks[l]);
    for (int l = 0; v->weights && l < m->cfg.n_layers; l++) {
        const LlamaLayer *a = v->weights[l], *b = &m->layers[l];
        if (!a) continue;
        const Tensor *x[] = {&a->attn_norm, &a->wq, &a->wk, &a->wv, &a->wo, &a->mlp_norm, &a->w_gate, &a->w_up, &a->w_down};
        const Tensor *y[] = {&b->attn_norm, &b->wq, &b->wk, &b->wv, &b->wo, &b->mlp_norm, &b->w_gate, &b->w_up, &b->w_down};
        for (int i = 0; i < 9; i++)
            if (!same_kind(x[i], y[i]))
                return status_fail(ST_USAGE, "layer %d: the view's substitute weights differ from the model's in shape, "
                                   "dtype or device (tensor %d of the layer)", l, i);
    }
    return sparsity_validate(m, v);
}

LlamaLayerPlan llama_layer_plan(const LlamaModel *m, const LlamaView *v, int l) {
    LlamaLayerPlan p;
    p.w = v && v->weights && v->weights[l] ? v->weights[l] : &m->layers[l];
    p.wv = llama_layer_view(&m->cfg, p.w, v && v->widths ? &v->widths[l] : NULL);
    unsigned bits = v && v->blocks ? v->blocks[l] : LAYER_ALL;
    p.attn = bits & LAYER_ATTN;
    p.ffn = bits & LAYER_FFN;
    const FfnSparsity *sp = v ? v->sparse : NULL;
    p.pred = sp && sp->layers[l].w1.data ? &sp->layers[l] : NULL;
    p.pred_k = p.pred ? sp->k : 0;
    return p;
}

static void adapter(const LlamaLayerSteps *s, int l, LoraTarget t, const Tensor *in, Tensor *out) {
    if (s->adapter) s->adapter(s->ctx, l, t, in, out);
}

// dst = base + (w in, plus its adapter). In place (dst is base) the residual
// add happens inside the matmul; otherwise the branch is formed, then added.
static void residual_branch(const LlamaLayerSteps *s, int l, LoraTarget t, Tensor *dst, const Tensor *base,
                            const Tensor *in, const Tensor *w) {
    if (dst->data == base->data) {
        op_matmul_add(dst, in, w, 1.0f);
        adapter(s, l, t, in, dst);
    } else {
        op_matmul(dst, in, w);
        adapter(s, l, t, in, dst);
        op_add(dst, dst, base);
    }
}

void llama_layer_forward(const LlamaConfig *c, int l, const LlamaLayerPlan *p, const LlamaLayerBufs *b,
                         const LlamaLayerSteps *s) {
    Tensor x2 = b->x2, out = b->out;
    if (p->attn) { // x2 = x + o(attention(norm(x)))
        Tensor xn1 = b->xn1, att = b->att;
        op_rmsnorm(&xn1, &b->x, &p->w->attn_norm, c->rms_eps);
        s->attend(s->ctx, l, p, &xn1, &att);
        residual_branch(s, l, LORA_O, &x2, &b->x, &att, &p->wv.wo);
    } else if (x2.data != b->x.data) {
        op_copy(&x2, &b->x);
    }
    if (p->ffn && p->pred) { // out = x2 + the k neurons the predictor scores highest, per token
        Tensor xn2 = b->xn2, ph = b->pred_h, ps = b->pred_s, idx = b->pred_idx;
        op_rmsnorm(&xn2, &x2, &p->w->mlp_norm, c->rms_eps);
        op_matmul(&ph, &xn2, &p->pred->w1);
        op_bias_add(&ph, &p->pred->b1);
        op_activation(&ph, &ph, ACT_RELU);
        op_matmul(&ps, &ph, &p->pred->w2);
        op_bias_add(&ps, &p->pred->b2);
        op_topk_rows(&idx, &ps);
        if (out.data != x2.data) op_copy(&out, &x2);
        op_ffn_sparse(&out, &xn2, &p->wv.w_gate, &p->wv.w_up, &p->pred->w_down_t, &idx);
    } else if (p->ffn) { // out = x2 + down(silu(gate(norm(x2))) * up(norm(x2)))
        Tensor xn2 = b->xn2, gate = b->gate, up = b->up, h = b->h;
        op_rmsnorm(&xn2, &x2, &p->w->mlp_norm, c->rms_eps);
        op_matmul(&gate, &xn2, &p->wv.w_gate);
        adapter(s, l, LORA_GATE, &xn2, &gate);
        if (s->ffn_probe) s->ffn_probe(s->ctx, l, &xn2, &gate);
        op_matmul(&up, &xn2, &p->wv.w_up);
        adapter(s, l, LORA_UP, &xn2, &up);
        op_swiglu(&h, &gate, &up);
        residual_branch(s, l, LORA_DOWN, &out, &x2, &h, &p->wv.w_down);
    } else if (out.data != x2.data) {
        op_copy(&out, &x2);
    }
}
