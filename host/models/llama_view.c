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
    return ST_OK;
}

LlamaLayerPlan llama_layer_plan(const LlamaModel *m, const LlamaView *v, int l) {
    LlamaLayerPlan p;
    p.w = v && v->weights && v->weights[l] ? v->weights[l] : &m->layers[l];
    p.wv = llama_layer_view(&m->cfg, p.w, v && v->widths ? &v->widths[l] : NULL);
    unsigned bits = v && v->blocks ? v->blocks[l] : LAYER_ALL;
    p.attn = bits & LAYER_ATTN;
    p.ffn = bits & LAYER_FFN;
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
    if (p->ffn) { // out = x2 + down(silu(gate(norm(x2))) * up(norm(x2)))
        Tensor xn2 = b->xn2, gate = b->gate, up = b->up, h = b->h;
        op_rmsnorm(&xn2, &x2, &p->w->mlp_norm, c->rms_eps);
        op_matmul(&gate, &xn2, &p->wv.w_gate);
        adapter(s, l, LORA_GATE, &xn2, &gate);
        op_matmul(&up, &xn2, &p->wv.w_up);
        adapter(s, l, LORA_UP, &xn2, &up);
        op_swiglu(&h, &gate, &up);
        residual_branch(s, l, LORA_DOWN, &out, &x2, &h, &p->wv.w_down);
    } else if (out.data != x2.data) {
        op_copy(&out, &x2);
    }
}
