// OPT sessions and the decoder forward over a KV cache, written once against
// ops.h (the device is the tensors' business, as in llama_forward.c).
#include <stdlib.h>
#include <string.h>

#include "decoder_io.h"
#include "opt.h"
#include "ops/ops.h"
#include "runtime/device.h"

static void scratch_free(OptScratch *sc) {
    Tensor *ts[] = {&sc->x, &sc->xn, &sc->q, &sc->att, &sc->k_new, &sc->v_new, &sc->h,
                    &sc->act, &sc->emb, &sc->proj, &sc->last, &sc->logits};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) tensor_free(ts[i]);
}

// Grows the scratch to hold n rows (tokens).
static Status scratch_reserve(OptSession *s, const OptConfig *c, int n) {
    if (n <= s->scratch_tokens) return ST_OK;
    OptScratch *sc = &s->s;
    scratch_free(sc);
    s->scratch_tokens = 0; // until every buffer below exists again
    int64_t D = c->dim, F = c->ffn_dim, E = c->embed_dim;
    TRY(tensor_alloc_2d(&sc->x, DT_F32, s->dev, n, D));
    TRY(tensor_alloc_2d(&sc->xn, s->act_dtype, s->dev, n, D));
    TRY(tensor_alloc_2d(&sc->q, DT_F32, s->dev, n, D));
    TRY(tensor_alloc_2d(&sc->att, s->act_dtype, s->dev, n, D));
    TRY(tensor_alloc_2d(&sc->k_new, DT_F32, s->dev, n, D));
    TRY(tensor_alloc_2d(&sc->v_new, DT_F32, s->dev, n, D));
    TRY(tensor_alloc_2d(&sc->h, DT_F32, s->dev, n, F));
    if (s->act_dtype != DT_F32) TRY(tensor_alloc_2d(&sc->act, s->act_dtype, s->dev, n, F));
    TRY(tensor_alloc_2d(&sc->emb, DT_F32, s->dev, n, E > D ? E : D));
    if (E != D) TRY(tensor_alloc_2d(&sc->proj, DT_F32, s->dev, n, E));
    TRY(tensor_alloc_2d(&sc->last, s->act_dtype, s->dev, s->n_seq, D));
    s->scratch_tokens = n;
    return ST_OK;
}

static DecoderCache cache_of(OptSession *s) {
    return (DecoderCache){&s->k, &s->v, &s->mask, &s->pos, &s->mask_dev, &s->idx_dev};
}

Status opt_session_init(OptSession *s, const OptModel *m, int n_seq, int cap, Device dev) {
    memset(s, 0, sizeof *s);
    TRY(decoder_session_check(dev, m->dev, n_seq, cap, "opt_to_device"));
    const OptConfig *c = &m->cfg;
    s->n_seq = n_seq;
    s->cap = cap;
    s->dev = dev;
    s->act_dtype = dev.kind == DEV_CPU ? DT_F32 : m->layers[0].wq.dtype;
    s->n_layers = c->n_layers;
    DecoderCache kv = cache_of(s);
    Status st = decoder_cache_alloc(&kv, c->n_layers, n_seq, cap, c->dim, dev);
    if (st == ST_OK && !(s->n_real = calloc((size_t)n_seq, sizeof *s->n_real)))
        st = status_fail(ST_OOM, "out of memory for the KV cache");
    if (st != ST_OK) opt_session_free(s);
    return st;
}

void opt_session_free(OptSession *s) {
    DecoderCache kv = cache_of(s);
    decoder_cache_free(&kv, s->n_layers);
    free(s->n_real);
    scratch_free(&s->s);
    memset(s, 0, sizeof *s);
}

void opt_session_reset(OptSession *s) {
    s->n_past = 0;
    s->base = NULL;
    s->base_n = 0;
    for (int b = 0; b < s->n_seq; b++) s->n_real[b] = 0;
}

static int count_real(const int32_t *mask, int n) {
    int r = 0;
    for (int i = 0; i < n; i++) r += mask[i] != 0;
    return r;
}

// Real tokens of every sequence among the n_past cached ones: the shared prefix's, then its own.
static void recount(OptSession *s) {
    int shared = s->base ? count_real(s->base->mask, s->base_n) : 0;
    for (int b = 0; b < s->n_seq; b++)
        s->n_real[b] = shared + count_real(s->mask + (int64_t)b * s->cap, s->n_past - s->base_n);
}

void opt_session_truncate(OptSession *s, int n) {
    if (n >= 0 && n < s->n_past) s->n_past = n;
    if (s->base_n > s->n_past) { // a cut inside the shared prefix: its first n_past tokens stay shared
        s->base_n = s->n_past;
        if (s->base_n == 0) s->base = NULL;
    }
    recount(s);
}

Status opt_session_attach(OptSession *dst, const OptSession *base, int n) {
    if (n < 0 || n > base->n_past || base->n_layers != dst->n_layers || base->dev.kind != dst->dev.kind ||
        base->dev.index != dst->dev.index || base->n_seq != 1 || base->base)
        return status_fail(ST_USAGE, "session attach: base holds %d tokens of one sequence (unattached), %d asked",
                           base->n_past, n);
    dst->base = n > 0 ? base : NULL;
    dst->base_n = n;
    dst->n_past = n;
    recount(dst);
    return ST_OK;
}

// The arrays the ops read beside the tensors, where they run (ops.h).
typedef struct {
    const int32_t *ids, *pos; // [N] this forward's token ids and position-table rows
    const int32_t *mask;      // [n_seq*cap] the session's key mask
} OpIndex;

// K and V of the new tokens (biases added), then into each sequence's cache
// rows [b*cap + n_past - base_n, ... + T).
static void project_kv(const OptModel *m, OptSession *s, const OptLayer *ly, int l, const Tensor *in, int T) {
    int64_t N = (int64_t)s->n_seq * T;
    Tensor kn = tensor_rows(&s->s.k_new, 0, N), vn = tensor_rows(&s->s.v_new, 0, N);
    op_matmul(&kn, in, &ly->wk);
    op_matmul(&vn, in, &ly->wv);
    if (m->cfg.bias) {
        op_bias_add(&kn, &ly->bk);
        op_bias_add(&vn, &ly->bv);
    }
    decoder_store_kv(&s->k[l], &kn, s->n_seq, T, s->cap, s->n_past - s->base_n);
    decoder_store_kv(&s->v[l], &vn, s->n_seq, T, s->cap, s->n_past - s->base_n);
}

static const int32_t *session_mask(const OptSession *s) {
    return s->dev.kind == DEV_CPU ? s->mask : (const int32_t *)s->mask_dev.data;
}

// One decoder layer; the residual stream x [N, D] is updated in place.
//   pre-LN:  x += out_proj(attn(LN1(x)));  x += fc2(act(fc1(LN2(x))))
//   post-LN: x = LN1(x + out_proj(attn(x)));  x = LN2(x + fc2(act(fc1(x))))
static void layer_forward(const OptModel *m, OptSession *s, int l, int T, const OpIndex *ix) {
    const OptConfig *c = &m->cfg;
    const OptLayer *ly = &m->layers[l];
    OptScratch *sc = &s->s;
    int64_t N = (int64_t)s->n_seq * T;
    Tensor x = tensor_rows(&sc->x, 0, N), xn = tensor_rows(&sc->xn, 0, N);
    Tensor q = tensor_rows(&sc->q, 0, N), att = tensor_rows(&sc->att, 0, N);
    Tensor h = tensor_rows(&sc->h, 0, N), act = s->act_dtype != DT_F32 ? tensor_rows(&sc->act, 0, N) : h;

    // attention (q_proj's scaling by hd^-0.5 is op_attention's 1/sqrt(hd))
    const Tensor *in = &x;
    if (c->pre_norm) {
        op_layernorm(&xn, &x, &ly->ln1_w, &ly->ln1_b, c->ln_eps);
        in = &xn;
    }
    op_matmul(&q, in, &ly->wq);
    if (c->bias) op_bias_add(&q, &ly->bq);
    project_kv(m, s, ly, l, in, T);
    AttentionShape shape = {.n_seq = s->n_seq, .T = T, .n_past = s->n_past, .cap = s->cap,
                            .n_heads = c->n_heads, .n_kv_heads = c->n_heads, .head_dim = c->head_dim};
    SharedKV shared = {0};
    if (s->base) shared = (SharedKV){&s->base->k[l], &s->base->v[l], session_mask(s->base), 0, s->base_n};
    op_attention(&att, &q, &s->k[l], &s->v[l], ix->mask, &shape, s->base ? &shared : NULL);
    op_matmul_add(&x, &att, &ly->wo, 1.0f);
    if (c->bias) op_bias_add(&x, &ly->bo);
    if (!c->pre_norm) op_layernorm(&x, &x, &ly->ln1_w, &ly->ln1_b, c->ln_eps);

    // FFN
    in = &x;
    if (c->pre_norm) {
        op_layernorm(&xn, &x, &ly->ln2_w, &ly->ln2_b, c->ln_eps);
        in = &xn;
    }
    op_matmul(&h, in, &ly->w1);
    if (c->bias) op_bias_add(&h, &ly->b1);
    op_activation(&act, &h, c->act);
    op_matmul_add(&x, &act, &ly->w2, 1.0f);
    if (c->bias) op_bias_add(&x, &ly->b2);
    if (!c->pre_norm) op_layernorm(&x, &x, &ly->ln2_w, &ly->ln2_b, c->ln_eps);
}

static Status check_inputs(const OptModel *m, const OptSession *s, const int32_t *ids, const int32_t *mask, int T,
                           LogitsMode mode, const Tensor *logits) {
    TRY(decoder_check_io(m->cfg.vocab_size, s->n_seq, T, s->n_past - s->base_n, s->cap, ids, mask, mode, logits,
                         s->dev));
    for (int b = 0; b < s->n_seq; b++) {
        int real = s->n_real[b] + (mask ? count_real(mask + (int64_t)b * T, T) : T);
        if (real > m->cfg.max_position)
            return status_fail(ST_USAGE, "forward: sequence %d would hold %d real tokens; max_position_embeddings is %d",
                               b, real, m->cfg.max_position);
    }
    return ST_OK;
}

// This forward's index arrays where the ops read them: on a device, the ids,
// the position rows and the new tokens' mask entries (T per sequence, cap apart).
static Status upload_index(OptSession *s, const int32_t *ids, int T, OpIndex *ix) {
    return decoder_upload_index(s->dev, ids, s->pos, s->mask, s->n_seq, T, s->cap, s->n_past - s->base_n, &s->idx_dev,
                                &s->mask_dev, &ix->ids, &ix->pos, &ix->mask);
}

// Rows h [R, D] (f32, any row stride) -> logits out [R, V]: the final
// LayerNorm (into norm_out) when the model has one, project_out (into proj),
// lm_head.
static void head(const OptModel *m, const Tensor *h, Tensor *norm_out, Tensor *proj, Tensor *out) {
    const OptConfig *c = &m->cfg;
    const Tensor *y = h;
    if (c->final_norm) {
        op_layernorm(norm_out, h, &m->final_w, &m->final_b, c->ln_eps);
        y = norm_out;
    }
    if (c->embed_dim != c->dim) {
        op_matmul(proj, y, &m->project_out);
        y = proj;
    }
    op_matmul(out, y, &m->lm_head);
}

Status opt_forward(const OptModel *m, OptSession *s, const int32_t *ids, const int32_t *mask, int T, LogitsMode mode,
                   Tensor *logits) {
    TRY(check_inputs(m, s, ids, mask, T, mode, logits));
    const OptConfig *c = &m->cfg;
    int64_t N = (int64_t)s->n_seq * T;
    TRY(scratch_reserve(s, c, (int)N));
    for (int b = 0; b < s->n_seq; b++) {
        int real = s->n_real[b];
        for (int t = 0; t < T; t++) {
            int32_t mk = mask ? mask[(int64_t)b * T + t] : 1;
            s->mask[(int64_t)b * s->cap + s->n_past - s->base_n + t] = mk;
            // HF: position = cumsum(mask) * mask - 1, table row = position + 2
            s->pos[(int64_t)b * T + t] = mk ? 2 + real : 1;
            real += mk;
        }
    }
    OpIndex ix;
    TRY(upload_index(s, ids, T, &ix));
    OptScratch *sc = &s->s;
    Tensor x = tensor_rows(&sc->x, 0, N), emb = tensor_rows(&sc->emb, 0, N);
    if (c->embed_dim != c->dim) {
        Tensor te = tensor_cols(&emb, 0, c->embed_dim);
        op_embedding(&te, &m->tok_embd, ix.ids);
        op_matmul(&x, &te, &m->project_in);
    } else {
        op_embedding(&x, &m->tok_embd, ix.ids);
    }
    Tensor pe = tensor_cols(&emb, 0, c->dim);
    op_embedding(&pe, &m->pos_embd, ix.pos);
    op_add(&x, &x, &pe);
    for (int l = 0; l < c->n_layers; l++) layer_forward(m, s, l, T, &ix);

    // Logits wanted on the host from a device session are formed on the device, then copied.
    Tensor out;
    bool copy_back;
    TRY(decoder_logits_begin(s->dev, mode, logits, c->vocab_size, &sc->logits, &out, &copy_back));
    if (mode == LOGITS_ALL) {
        Tensor xn = tensor_rows(&sc->xn, 0, N), proj = c->embed_dim != c->dim ? tensor_rows(&sc->proj, 0, N) : sc->proj;
        head(m, &x, &xn, &proj, &out);
    } else if (mode == LOGITS_LAST) {
        // The last new token of every sequence: rows T-1, 2T-1, ... as one strided view.
        Tensor last_x = tensor_rows(&x, T - 1, s->n_seq);
        last_x.stride[0] = (int64_t)T * x.stride[0];
        Tensor proj = c->embed_dim != c->dim ? tensor_rows(&sc->proj, 0, s->n_seq) : sc->proj;
        head(m, &last_x, &sc->last, &proj, &out);
    }
    decoder_logits_done(logits, &out, copy_back);
    for (int b = 0; b < s->n_seq; b++)
        s->n_real[b] += mask ? count_real(mask + (int64_t)b * T, T) : T;
    s->n_past += T;
    return ST_OK;
}
