// MobileBERT's forward over ops.h, as transformers' modeling_mobilebert.py
// computes it: the trigram embeddings, the layer step (bottlenecks, attention,
// stacked FFNs, NoNorm or LayerNorm) shared by inference (bert.c's session) and
// training (encoder_train.c), and the layer's backward.
#include <stdlib.h>
#include <string.h>

#include "encoder_internal.h"
#include "ops/ops.h"

static void linear(Tensor *out, const Tensor *x, const Linear *w) {
    op_matmul(out, x, &w->w);
    op_bias_add(out, &w->b);
}

static Tensor *gp(Tensor *t) { return t && t->data ? t : NULL; }

void mobilebert_norm(const EncoderConfig *c, Tensor *out, const Tensor *x, const Norm *n, float eps) {
    if (c->no_norm) op_scale_shift(out, x, &n->w, &n->b);
    else op_layernorm(out, x, &n->w, &n->b, eps);
}

void mobilebert_norm_backward(const EncoderConfig *c, Tensor *dx, Norm *g, const Tensor *dout, const Tensor *x,
                              const Norm *w, float eps) {
    if (c->no_norm) op_scale_shift_backward(dx, gp(&g->w), gp(&g->b), dout, x, &w->w);
    else op_layernorm_backward(dx, gp(&g->w), gp(&g->b), dout, x, &w->w, eps);
}

void mobilebert_trigram_ids(const int32_t *ids, const int32_t *cu, int n_seq, int32_t *next, int32_t *prev) {
    for (int s = 0; s < n_seq; s++)
        for (int i = cu[s]; i < cu[s + 1]; i++) {
            next[i] = i + 1 < cu[s + 1] ? ids[i + 1] : -1;
            prev[i] = i > cu[s] ? ids[i - 1] : -1;
        }
}

void mobilebert_embed(const Encoder *m, const int32_t *ids, const int32_t *next, const int32_t *prev,
                      const int32_t *pos, const int32_t *types, Tensor *x3, Tensor *esum, Tensor *tmp, Tensor *x) {
    const EncoderConfig *c = &m->cfg;
    int64_t E = c->embedding_size;
    if (c->trigram) { // torch.cat([E(t+1) (0 at the end), E(t), E(t-1) (0 at the start)], dim=2)
        Tensor part = tensor_cols(x3, 0, E);
        op_embedding(&part, &m->word_embd, next);
        part = tensor_cols(x3, E, E);
        op_embedding(&part, &m->word_embd, ids);
        part = tensor_cols(x3, 2 * E, E);
        op_embedding(&part, &m->word_embd, prev);
    } else {
        op_embedding(x3, &m->word_embd, ids);
    }
    if (mobilebert_projects(c)) linear(esum, x3, &m->embd_proj);
    else op_copy(esum, x3); // embedding_transformation exists but is not applied
    op_embedding(tmp, &m->pos_embd, pos);
    op_add(esum, esum, tmp);
    op_embedding(tmp, &m->type_embd, types);
    op_add(esum, esum, tmp);
    mobilebert_norm(c, x, esum, &m->embd_ln, MB_DEFAULT_LN_EPS);
}

// The tensors feeding Q/K and V, and the attention block's residual.
typedef struct {
    const Tensor *qk, *v, *res;
} Inputs;

static Inputs inputs_of(const EncoderConfig *c, const MobileBertLayerBufs *b) {
    if (!c->use_bottleneck) return (Inputs){&b->x, &b->x, &b->x};
    if (c->use_bottleneck_attention) return (Inputs){&b->li, &b->li, &b->li};
    if (c->kq_shared_bottleneck) return (Inputs){&b->s, &b->x, &b->li};
    return (Inputs){&b->x, &b->x, &b->li};
}

// Stage j's weights: ffn.j for j < n - 1, then intermediate/output.
static void stage(const MobileBertLayer *w, int j, int n, const Linear **inter, const Linear **out, const Norm **ln) {
    if (j < n - 1) {
        *inter = &w->ffn_inter[j], *out = &w->ffn_out[j], *ln = &w->ffn_ln[j];
    } else {
        *inter = &w->inter, *out = &w->out, *ln = &w->out_ln;
    }
}

static float stage_eps(const EncoderConfig *c, int j) { return j < c->n_ffn - 1 ? c->ln_eps : MB_DEFAULT_LN_EPS; }

void mobilebert_layer_forward(const EncoderConfig *c, const MobileBertLayer *w, int l, const MobileBertLayerBufs *b,
                              const BertLayerSteps *s) {
    int n = c->n_ffn;
    if (c->use_bottleneck) {
        linear((Tensor *)&b->li_pre, &b->x, &w->bn_input);
        mobilebert_norm(c, (Tensor *)&b->li, &b->li_pre, &w->bn_input_ln, c->ln_eps);
        if (c->kq_shared_bottleneck && !c->use_bottleneck_attention) {
            linear((Tensor *)&b->s_pre, &b->x, &w->bn_attention);
            mobilebert_norm(c, (Tensor *)&b->s, &b->s_pre, &w->bn_attention_ln, c->ln_eps);
        }
    }
    Inputs in = inputs_of(c, b);
    // attention: a[0] = norm(dropout(o(attention(q, k, v))) + residual); dropout only without use_bottleneck
    linear((Tensor *)&b->q, in.qk, &w->q);
    linear((Tensor *)&b->k, in.qk, &w->k);
    linear((Tensor *)&b->v, in.v, &w->v);
    s->attend(s->ctx, l, &b->q, &b->k, &b->v, (Tensor *)&b->att);
    linear((Tensor *)&b->ares, &b->att, &w->o);
    if (s->dropout && !c->use_bottleneck) s->dropout(s->ctx, l, BERT_DROP_ATTN_OUT, (Tensor *)&b->ares);
    op_add((Tensor *)&b->ares, &b->ares, in.res);
    mobilebert_norm(c, (Tensor *)&b->a[0], &b->ares, &w->attn_ln, c->ln_eps);
    // the FFN stages: a[j + 1] = norm(out(act(inter(a[j]))) + a[j]) (the last one's output is the
    // layer's without use_bottleneck, with dropout before its residual)
    for (int j = 0; j < n; j++) {
        const Linear *inter, *out;
        const Norm *ln;
        stage(w, j, n, &inter, &out, &ln);
        bool last = j == n - 1;
        linear((Tensor *)&b->hpre[j], &b->a[j], inter);
        op_activation((Tensor *)&b->h[j], &b->hpre[j], c->act);
        linear((Tensor *)&b->fres[j], &b->h[j], out);
        if (last && s->dropout && !c->use_bottleneck) s->dropout(s->ctx, l, BERT_DROP_FFN_OUT, (Tensor *)&b->fres[j]);
        op_add((Tensor *)&b->fres[j], &b->fres[j], &b->a[j]);
        const Tensor *dst = last && !c->use_bottleneck ? &b->out : &b->a[j + 1];
        mobilebert_norm(c, (Tensor *)dst, &b->fres[j], ln, stage_eps(c, j));
    }
    if (c->use_bottleneck) { // output.bottleneck: out = norm(dropout(dense(a[n])) + x)
        linear((Tensor *)&b->obres, &b->a[n], &w->out_bn);
        if (s->dropout) s->dropout(s->ctx, l, BERT_DROP_FFN_OUT, (Tensor *)&b->obres);
        op_add((Tensor *)&b->obres, &b->obres, &b->x);
        mobilebert_norm(c, (Tensor *)&b->out, &b->obres, &w->out_bn_ln, c->ln_eps);
    }
}

// dL/d(input) of a linear layer's weight and bias: bias, weight (each when it has data), dx (may be NULL).
static void linear_backward(Tensor *dx, Linear *g, const Tensor *dout, const Tensor *x, const Linear *w) {
    if (gp(&g->b)) op_bias_backward(&g->b, dout);
    if (dx || gp(&g->w)) op_matmul_backward(dx, gp(&g->w), dout, x, &w->w, 1.0f);
}

// d, or its copy in buf (the same shape) with the dropout mask of (l, site) applied.
static const Tensor *drop_grad(const BertLayerSteps *s, int l, int site, const Tensor *d, const Tensor *buf) {
    if (!s || !s->dropout) return d;
    op_copy((Tensor *)buf, d);
    s->dropout(s->ctx, l, site, (Tensor *)buf);
    return buf;
}

// Stage j's gradient tensors.
static void gstage(MobileBertLayer *g, int j, int n, Linear **inter, Linear **out, Norm **ln) {
    if (j < n - 1) {
        *inter = &g->ffn_inter[j], *out = &g->ffn_out[j], *ln = &g->ffn_ln[j];
    } else {
        *inter = &g->inter, *out = &g->out, *ln = &g->out_ln;
    }
}

void mobilebert_layer_backward(const EncoderConfig *c, const MobileBertLayer *w, MobileBertLayer *g, int l,
                               const MobileBertLayerBufs *b, const MobileBertGradBufs *d, const VarlenShape *shape,
                               const Tensor *lse, bool need_dx, const BertLayerSteps *s) {
    int n = c->n_ffn;
    Tensor *dx = need_dx ? (Tensor *)&d->dx : NULL;
    Tensor *bufs[2] = {(Tensor *)&d->da, (Tensor *)&d->db};
    int nb = 0;
    const Tensor *cur; // dL/d a[j + 1] (or the layer output)
    tensor_zero((Tensor *)&d->dx);
    if (c->use_bottleneck) {
        // out = norm(obres), obres = dropout(out_bn(a[n])) + x
        mobilebert_norm_backward(c, (Tensor *)&d->dx, &g->out_bn_ln, &d->dres, &b->obres, &w->out_bn_ln, c->ln_eps);
        const Tensor *dob = drop_grad(s, l, BERT_DROP_FFN_OUT, &d->dx, &d->dtmp);
        Tensor *da = bufs[nb++ & 1];
        tensor_zero(da);
        linear_backward(da, &g->out_bn, dob, &b->a[n], &w->out_bn);
        cur = da;
    } else {
        cur = &d->dres;
    }
    for (int j = n - 1; j >= 0; j--) {
        const Linear *inter, *out;
        const Norm *ln;
        stage(w, j, n, &inter, &out, &ln);
        Linear *ginter, *gout;
        Norm *gln;
        gstage(g, j, n, &ginter, &gout, &gln);
        Tensor *dfres = bufs[nb++ & 1];
        tensor_zero(dfres);
        mobilebert_norm_backward(c, dfres, gln, cur, &b->fres[j], ln, stage_eps(c, j));
        const Tensor *dfo = dfres;
        if (j == n - 1 && !c->use_bottleneck) dfo = drop_grad(s, l, BERT_DROP_FFN_OUT, dfres, &d->dtmp);
        op_activation((Tensor *)&d->h, &b->hpre[j], c->act); // recomputed
        tensor_zero((Tensor *)&d->dh);
        linear_backward((Tensor *)&d->dh, gout, dfo, &d->h, out);
        tensor_zero((Tensor *)&d->dhp);
        op_activation_backward((Tensor *)&d->dhp, &d->dh, &b->hpre[j], c->act);
        linear_backward(dfres, ginter, &d->dhp, &b->a[j], inter); // dfres = dL/d a[j] now
        cur = dfres;
    }
    // attention block: a[0] = norm(ares), ares = dropout(o(att)) + residual
    Tensor *dares = (Tensor *)&d->dli; // then the gradient of li (its residual share first)
    tensor_zero(dares);
    mobilebert_norm_backward(c, dares, &g->attn_ln, cur, &b->ares, &w->attn_ln, c->ln_eps);
    const Tensor *dao = c->use_bottleneck ? dares : drop_grad(s, l, BERT_DROP_ATTN_OUT, dares, &d->dtmp);
    tensor_zero((Tensor *)&d->datt);
    linear_backward((Tensor *)&d->datt, &g->o, dao, &b->att, &w->o);
    tensor_zero((Tensor *)&d->dq);
    tensor_zero((Tensor *)&d->dk);
    tensor_zero((Tensor *)&d->dv);
    op_attention_varlen_backward((Tensor *)&d->dq, (Tensor *)&d->dk, (Tensor *)&d->dv, &d->datt, &b->q, &b->k,
                                 &b->v, &b->att, lse, shape);
    // route the gradients of the Q/K input, the V input and the residual
    Tensor *dli = (Tensor *)&d->dli, *ds = (Tensor *)&d->ds;
    Tensor *dqk, *dv, *dresid;
    Inputs in = inputs_of(c, b);
    if (!c->use_bottleneck) {
        dqk = dv = dresid = dx;
    } else if (c->use_bottleneck_attention) {
        dqk = dv = dresid = dli;
    } else if (c->kq_shared_bottleneck) {
        tensor_zero(ds);
        dqk = ds, dv = dx, dresid = dli;
    } else {
        dqk = dv = dx, dresid = dli;
    }
    // dares is already in dli (the residual's share); without bottleneck it goes to dx
    if (dresid == dx && dx) op_add(dx, dx, dares);
    linear_backward(dqk, &g->q, &d->dq, in.qk, &w->q);
    linear_backward(dqk, &g->k, &d->dk, in.qk, &w->k);
    linear_backward(dv, &g->v, &d->dv, in.v, &w->v);
    if (c->use_bottleneck) {
        if (c->kq_shared_bottleneck && !c->use_bottleneck_attention) {
            Tensor *dspre = (Tensor *)&d->datt;
            tensor_zero(dspre);
            mobilebert_norm_backward(c, dspre, &g->bn_attention_ln, ds, &b->s_pre, &w->bn_attention_ln, c->ln_eps);
            linear_backward(dx, &g->bn_attention, dspre, &b->x, &w->bn_attention);
        }
        Tensor *dlipre = (Tensor *)&d->dq;
        tensor_zero(dlipre);
        mobilebert_norm_backward(c, dlipre, &g->bn_input_ln, dli, &b->li_pre, &w->bn_input_ln, c->ln_eps);
        linear_backward(dx, &g->bn_input, dlipre, &b->x, &w->bn_input);
    }
    if (need_dx) op_copy((Tensor *)&d->dres, &d->dx);
}
