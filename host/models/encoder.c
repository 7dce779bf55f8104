// The encoder's weight table (Hugging Face names), allocation, random
// initialisation, heads, device placement.
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder_internal.h"
#include "runtime/device.h"
#include "runtime/rng.h"

static const Device CPU = {DEV_CPU, 0};

Status encoder_arch_check(const EncoderConfig *c) {
    switch (c->arch) {
    case ENC_BERT: return ST_OK;
    case ENC_MOBILEBERT: return ST_OK;
    }
    return status_fail(ST_UNSUPPORTED, "unknown encoder architecture %d", (int)c->arch);
}

Status encoder_config_check(const EncoderConfig *c, const char *path) {
    if (c->vocab_size <= 0 || c->dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->ffn_dim <= 0 ||
        c->max_position <= 0 || c->type_vocab <= 0)
        return status_fail(ST_FORMAT, "%s: vocab_size, hidden_size, num_hidden_layers, num_attention_heads, "
                                      "intermediate_size, max_position_embeddings and type_vocab_size must be positive",
                           path);
    if (c->n_layers > 1024 || c->dim > (1 << 16) || c->ffn_dim > (1 << 18))
        return status_fail(ST_FORMAT, "%s: implausible sizes (layers %d, hidden %d, intermediate %d)", path,
                           c->n_layers, c->dim, c->ffn_dim);
    if (c->arch == ENC_BERT && (c->dim % c->n_heads != 0 || c->head_dim * c->n_heads != c->dim))
        return status_fail(ST_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path, c->dim,
                           c->n_heads);
    if (c->arch == ENC_MOBILEBERT) {
        int I = c->inner;
        if (c->embedding_size <= 0 || c->embedding_size > (1 << 16) || I <= 0 || I > (1 << 16))
            return status_fail(ST_FORMAT, "%s: embedding_size and true_hidden_size / intra_bottleneck_size must be "
                                          "positive (%d, %d)", path, c->embedding_size, I);
        if (c->n_ffn < 1 || c->n_ffn > MB_MAX_FFN)
            return status_fail(ST_FORMAT, "%s: num_feedforward_networks must be 1..%d, not %d", path, MB_MAX_FFN,
                               c->n_ffn);
        if (I % c->n_heads != 0 || c->head_dim * c->n_heads != I)
            return status_fail(ST_FORMAT, "%s: true_hidden_size %d is not a multiple of num_attention_heads %d", path,
                               I, c->n_heads);
        if (!c->use_bottleneck && I != c->dim)
            return status_fail(ST_FORMAT, "%s: without use_bottleneck, true_hidden_size (%d) must equal hidden_size (%d)",
                               path, I, c->dim);
        if (c->use_bottleneck && !c->use_bottleneck_attention && !c->kq_shared_bottleneck && I != c->dim)
            return status_fail(ST_FORMAT, "%s: with neither key_query_shared_bottleneck nor use_bottleneck_attention, "
                                          "query and key read the hidden_size-wide input: true_hidden_size (%d) must "
                                          "equal hidden_size (%d)", path, I, c->dim);
    }
    if (c->head != HEAD_NONE && (c->num_labels <= 0 || c->num_labels > (1 << 20)))
        return status_fail(ST_FORMAT, "%s: a classification head needs 1 or more labels (num_labels %d)", path,
                           c->num_labels);
    if (c->act != ACT_GELU && c->act != ACT_RELU)
        return status_fail(ST_UNSUPPORTED, "%s: hidden_act must be gelu or relu", path);
    if (c->n_groups) {
        if (c->head != HEAD_SEQUENCE || c->n_groups < 1 || c->n_groups > ENC_MAX_GROUPS)
            return status_fail(ST_FORMAT, "%s: label groups (elastilm_label_groups) need a sequence head and 1..%d "
                                          "groups", path, ENC_MAX_GROUPS);
        int sum = 0;
        for (int g = 0; g < c->n_groups; g++) {
            if (c->group_size[g] < 1)
                return status_fail(ST_FORMAT, "%s: label group %d has %d labels", path, g, c->group_size[g]);
            sum += c->group_size[g];
        }
        if (sum != c->num_labels)
            return status_fail(ST_FORMAT, "%s: the label groups hold %d labels, the head has %d", path, sum,
                               c->num_labels);
    }
    return ST_OK;
}

// One weight with the shape it has.
typedef struct {
    EncoderParam p;
    int ndim;
    int64_t shape[2];
} Spec;

typedef struct {
    Spec *out;
    int n;
} Walk;

static void add(Walk *w, Tensor *t, int layer, int64_t rows, int64_t cols, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void add(Walk *w, Tensor *t, int layer, int64_t rows, int64_t cols, const char *fmt, ...) {
    if (w->out) {
        Spec *s = &w->out[w->n];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(s->p.name, sizeof s->p.name, fmt, ap);
        va_end(ap);
        s->p.t = t;
        s->p.layer = layer;
        s->ndim = cols ? 2 : 1;
        s->shape[0] = rows;
        s->shape[1] = cols;
    }
    w->n++;
}

static void add_linear(Walk *w, Linear *lin, int layer, int64_t out, int64_t in, const char *name) {
    add(w, &lin->w, layer, out, in, "%s.weight", name);
    add(w, &lin->b, layer, out, 0, "%s.bias", name);
}

static void add_norm(Walk *w, Norm *n, int layer, int64_t d, const char *name) {
    add(w, &n->w, layer, d, 0, "%s.weight", name);
    add(w, &n->b, layer, d, 0, "%s.bias", name);
}

// MobileBERT's layer weights, in forward order (transformers' names).
static void walk_mobilebert_layer(Walk *w, const EncoderConfig *c, MobileBertLayer *ly, int l) {
    int64_t D = c->dim, F = c->ffn_dim, I = c->inner;
    char name[96];
#define N(...) (snprintf(name, sizeof name, __VA_ARGS__), name)
    if (c->use_bottleneck) {
        add_linear(w, &ly->bn_input, l, I, D, N("encoder.layer.%d.bottleneck.input.dense", l));
        add_norm(w, &ly->bn_input_ln, l, I, N("encoder.layer.%d.bottleneck.input.LayerNorm", l));
        if (c->kq_shared_bottleneck) { // (built, and unused, with use_bottleneck_attention too)
            add_linear(w, &ly->bn_attention, l, I, D, N("encoder.layer.%d.bottleneck.attention.dense", l));
            add_norm(w, &ly->bn_attention_ln, l, I, N("encoder.layer.%d.bottleneck.attention.LayerNorm", l));
        }
    }
    add_linear(w, &ly->q, l, I, I, N("encoder.layer.%d.attention.self.query", l));
    add_linear(w, &ly->k, l, I, I, N("encoder.layer.%d.attention.self.key", l));
    add_linear(w, &ly->v, l, I, c->use_bottleneck_attention ? I : D, N("encoder.layer.%d.attention.self.value", l));
    add_linear(w, &ly->o, l, I, I, N("encoder.layer.%d.attention.output.dense", l));
    add_norm(w, &ly->attn_ln, l, I, N("encoder.layer.%d.attention.output.LayerNorm", l));
    for (int j = 0; j < c->n_ffn - 1; j++) {
        add_linear(w, &ly->ffn_inter[j], l, F, I, N("encoder.layer.%d.ffn.%d.intermediate.dense", l, j));
        add_linear(w, &ly->ffn_out[j], l, I, F, N("encoder.layer.%d.ffn.%d.output.dense", l, j));
        add_norm(w, &ly->ffn_ln[j], l, I, N("encoder.layer.%d.ffn.%d.output.LayerNorm", l, j));
    }
    add_linear(w, &ly->inter, l, F, I, N("encoder.layer.%d.intermediate.dense", l));
    add_linear(w, &ly->out, l, I, F, N("encoder.layer.%d.output.dense", l));
    add_norm(w, &ly->out_ln, l, I, N("encoder.layer.%d.output.LayerNorm", l));
    if (c->use_bottleneck) {
        add_linear(w, &ly->out_bn, l, D, I, N("encoder.layer.%d.output.bottleneck.dense", l));
        add_norm(w, &ly->out_bn_ln, l, D, N("encoder.layer.%d.output.bottleneck.LayerNorm", l));
    }
#undef N
}

// The table: every weight of the model in encoder_params' order.
static int walk(Encoder *m, Spec *out) {
    const EncoderConfig *c = &m->cfg;
    Walk w = {out, 0};
    int64_t D = c->dim, F = c->ffn_dim;
    bool mb = c->arch == ENC_MOBILEBERT;
    if (c->arch != ENC_BERT && !mb) return 0;
    add(&w, &m->word_embd, -1, c->vocab_size, mb ? c->embedding_size : D, "embeddings.word_embeddings.weight");
    add(&w, &m->pos_embd, -1, c->max_position, D, "embeddings.position_embeddings.weight");
    add(&w, &m->type_embd, -1, c->type_vocab, D, "embeddings.token_type_embeddings.weight");
    if (mb) // (always built; applied with trigram_input or embedding_size != hidden_size)
        add_linear(&w, &m->embd_proj, -1, D, (c->trigram ? 3 : 1) * (int64_t)c->embedding_size,
                   "embeddings.embedding_transformation");
    add_norm(&w, &m->embd_ln, -1, D, "embeddings.LayerNorm");
    char name[96];
    for (int l = 0; l < c->n_layers && mb; l++) {
        static _Thread_local Linear d_inter[MB_MAX_FFN], d_out[MB_MAX_FFN];
        static _Thread_local Norm d_ln[MB_MAX_FFN];
        MobileBertLayer dummy = {.ffn_inter = d_inter, .ffn_out = d_out, .ffn_ln = d_ln};
        walk_mobilebert_layer(&w, c, m->mlayers ? &m->mlayers[l] : &dummy, l); // (dummy: counting only)
    }
    for (int l = 0; l < c->n_layers && !mb; l++) {
        BertLayer *ly = m->layers ? &m->layers[l] : NULL;
        BertLayer dummy;
        if (!ly) ly = &dummy; // counting only
#define N(sfx) (snprintf(name, sizeof name, "encoder.layer.%d.%s", l, sfx), name)
        add_linear(&w, &ly->q, l, D, D, N("attention.self.query"));
        add_linear(&w, &ly->k, l, D, D, N("attention.self.key"));
        add_linear(&w, &ly->v, l, D, D, N("attention.self.value"));
        add_linear(&w, &ly->o, l, D, D, N("attention.output.dense"));
        add_norm(&w, &ly->attn_ln, l, D, N("attention.output.LayerNorm"));
        add_linear(&w, &ly->inter, l, F, D, N("intermediate.dense"));
        add_linear(&w, &ly->out, l, D, F, N("output.dense"));
        add_norm(&w, &ly->out_ln, l, D, N("output.LayerNorm"));
#undef N
    }
    if (c->pooler) add_linear(&w, &m->pooler, c->n_layers, D, D, "pooler.dense");
    if (c->head != HEAD_NONE) add_linear(&w, &m->classifier, c->n_layers, c->num_labels, D, "classifier");
    return w.n;
}

int encoder_params(Encoder *m, EncoderParam *out) {
    int n = walk(m, NULL);
    if (!out) return n;
    Spec *s = malloc((size_t)(n > 0 ? n : 1) * sizeof *s);
    if (!s) return -1;
    walk(m, s);
    for (int i = 0; i < n; i++) out[i] = s[i].p;
    free(s);
    return n;
}

size_t encoder_n_params(const Encoder *m) {
    int n = encoder_params((Encoder *)m, NULL);
    EncoderParam *ps = malloc((size_t)(n > 0 ? n : 1) * sizeof *ps);
    if (!ps) return 0;
    encoder_params((Encoder *)m, ps);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (size_t)tensor_numel(ps[i].t);
    free(ps);
    return total;
}

static Status storage_add(Encoder *m, Device dev, int64_t n, Tensor **buf) {
    EncoderStorage *st = m->storage;
    if (st->n_bufs == ENC_MAX_BUFS) return status_fail(ST_USAGE, "encoder: too many weight buffers");
    TRY(tensor_alloc_1d(&st->bufs[st->n_bufs], DT_F32, dev, n > 0 ? n : 1));
    *buf = &st->bufs[st->n_bufs++];
    return ST_OK;
}

// Points the specs [first, last) at consecutive pieces of buf.
static void bind(Spec *s, int first, int last, const Tensor *buf) {
    float *p = buf->data;
    for (int i = first; i < last; i++) {
        *s[i].p.t = tensor_wrap(p, DT_F32, buf->dev, s[i].ndim, s[i].shape);
        p += s[i].shape[0] * (s[i].ndim == 2 ? s[i].shape[1] : 1);
    }
}

static int64_t spec_numel(const Spec *s, int first, int last) {
    int64_t n = 0;
    for (int i = first; i < last; i++) n += s[i].shape[0] * (s[i].ndim == 2 ? s[i].shape[1] : 1);
    return n;
}

Status encoder_alloc(Encoder *m, const EncoderConfig *c) {
    memset(m, 0, sizeof *m);
    TRY(encoder_arch_check(c));
    TRY(encoder_config_check(c, "encoder config"));
    m->cfg = *c;
    m->dev = CPU;
    m->storage = calloc(1, sizeof *m->storage);
    bool ok = m->storage != NULL;
    if (c->arch == ENC_BERT) {
        m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
        ok = ok && m->layers;
    } else {
        m->mlayers = calloc((size_t)c->n_layers, sizeof *m->mlayers);
        ok = ok && m->mlayers;
        for (int l = 0; ok && l < c->n_layers; l++) {
            size_t k = (size_t)(c->n_ffn > 1 ? c->n_ffn - 1 : 1);
            MobileBertLayer *ly = &m->mlayers[l];
            ly->ffn_inter = calloc(k, sizeof *ly->ffn_inter);
            ly->ffn_out = calloc(k, sizeof *ly->ffn_out);
            ly->ffn_ln = calloc(k, sizeof *ly->ffn_ln);
            ok = ly->ffn_inter && ly->ffn_out && ly->ffn_ln;
        }
    }
    if (!ok) {
        encoder_free(m);
        return status_fail(ST_OOM, "out of memory");
    }
    int n = walk(m, NULL);
    Spec *s = malloc((size_t)n * sizeof *s);
    Tensor *buf = NULL;
    Status st = s ? ST_OK : status_fail(ST_OOM, "out of memory");
    if (st == ST_OK) walk(m, s);
    if (st == ST_OK) st = storage_add(m, CPU, spec_numel(s, 0, n), &buf);
    if (st == ST_OK) bind(s, 0, n, buf);
    free(s);
    if (st != ST_OK) encoder_free(m);
    return st;
}

void encoder_free(Encoder *m) {
    if (m->storage) {
        for (int i = 0; i < m->storage->n_bufs; i++) tensor_free(&m->storage->bufs[i]);
        free(m->storage);
    }
    if (m->mlayers) {
        for (int l = 0; l < m->cfg.n_layers; l++) {
            free(m->mlayers[l].ffn_inter);
            free(m->mlayers[l].ffn_out);
            free(m->mlayers[l].ffn_ln);
        }
    }
    free(m->mlayers);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

static bool is_norm_name(const char *name) { return strstr(name, "LayerNorm") != NULL; }

static void init_spec(const Spec *s, float std, Rng *rng) {
    float *p = s->p.t->data;
    int64_t n = tensor_numel(s->p.t);
    bool bias = strcmp(s->p.name + strlen(s->p.name) - 5, ".bias") == 0;
    for (int64_t j = 0; j < n; j++) {
        if (is_norm_name(s->p.name)) p[j] = bias ? 0.0f : 1.0f;
        else if (bias) p[j] = 0.0f;
        else p[j] = std * rng_normal(rng);
    }
}

void encoder_init_random(Encoder *m, float std, uint64_t seed) {
    int n = walk(m, NULL);
    Spec *s = malloc((size_t)(n > 0 ? n : 1) * sizeof *s);
    if (!s || m->dev.kind != DEV_CPU) {
        free(s);
        return;
    }
    walk(m, s);
    Rng rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) init_spec(&s[i], std, &rng);
    // transformers zeroes the padding row of the word embeddings
    int pad = m->cfg.pad_token_id;
    if (pad >= 0 && pad < m->cfg.vocab_size)
        memset(tensor_row_f32(&m->word_embd, pad), 0, (size_t)m->word_embd.shape[1] * sizeof(float));
    free(s);
}

Status encoder_set_head(Encoder *m, EncoderHead head, int num_labels, uint64_t seed) {
    if (m->dev.kind != DEV_CPU) return status_fail(ST_USAGE, "encoder_set_head: give the model its head on the CPU");
    if (head == HEAD_NONE) {
        m->cfg.head = HEAD_NONE;
        m->cfg.num_labels = 0;
        m->classifier = (Linear){0};
        return ST_OK;
    }
    if (num_labels <= 0) return status_fail(ST_USAGE, "encoder_set_head: a head needs at least one label");
    EncoderConfig c = m->cfg;
    // BERT's sequence head always has a pooler (BertForSequenceClassification); give it a fresh one.
    bool new_pooler = head == HEAD_SEQUENCE && c.arch == ENC_BERT && !c.pooler;
    c.head = head;
    c.num_labels = num_labels;
    c.n_groups = 0; // a new head is one softmax until encoder_set_label_groups says otherwise
    c.pooler = c.pooler || new_pooler;
    // *ForTokenClassification has no pooler (transformers builds it with add_pooling_layer=False):
    // drop a sentence encoder's, so that training neither carries nor decays unused weights
    if (head == HEAD_TOKEN && c.pooler) {
        c.pooler = false;
        m->pooler = (Linear){0};
    }
    Encoder tmp = *m;
    tmp.cfg = c;
    int n = walk(&tmp, NULL);
    Spec *s = malloc((size_t)n * sizeof *s);
    if (!s) return status_fail(ST_OOM, "out of memory");
    walk(&tmp, s);
    int first = n - 2 - (new_pooler ? 2 : 0); // the new tensors are the table's tail
    Tensor *buf = NULL;
    Status st = storage_add(m, CPU, spec_numel(s, first, n), &buf);
    if (st == ST_OK) {
        m->cfg = c;
        for (int i = first; i < n; i++) { // the specs point into tmp: retarget them at m
            ptrdiff_t off = (char *)s[i].p.t - (char *)&tmp;
            s[i].p.t = (Tensor *)((char *)m + off);
        }
        bind(s, first, n, buf);
        Rng rng;
        rng_seed(&rng, seed);
        for (int i = first; i < n; i++) init_spec(&s[i], 0.02f, &rng);
    }
    free(s);
    return st;
}

Status encoder_set_label_groups(Encoder *m, const int *sizes, int n) {
    EncoderConfig c = m->cfg;
    c.n_groups = n;
    memset(c.group_size, 0, sizeof c.group_size);
    for (int g = 0; g < n && g < ENC_MAX_GROUPS; g++) c.group_size[g] = sizes[g];
    if (n < 0 || n > ENC_MAX_GROUPS) return status_fail(ST_USAGE, "encoder: %d label groups (0..%d)", n, ENC_MAX_GROUPS);
    TRY(encoder_config_check(&c, "label groups"));
    m->cfg = c;
    return ST_OK;
}

Status encoder_resize_vocab(Encoder *m, int new_vocab, uint64_t seed) {
    if (m->dev.kind != DEV_CPU) return status_fail(ST_USAGE, "encoder_resize_vocab: resize the model on the CPU");
    int V = m->cfg.vocab_size;
    if (new_vocab < V || new_vocab > (1 << 24))
        return status_fail(ST_USAGE, "encoder_resize_vocab: %d rows cannot replace %d", new_vocab, V);
    if (new_vocab == V) return ST_OK;
    int64_t E = m->word_embd.shape[1];
    Tensor *buf = NULL;
    TRY(storage_add(m, CPU, (int64_t)new_vocab * E, &buf));
    Tensor t = tensor_wrap(buf->data, DT_F32, CPU, 2, (int64_t[]){new_vocab, E});
    memcpy(t.data, m->word_embd.data, (size_t)V * (size_t)E * sizeof(float));
    Rng rng;
    rng_seed(&rng, seed);
    float *p = (float *)t.data + (size_t)V * (size_t)E;
    for (int64_t j = 0; j < (int64_t)(new_vocab - V) * E; j++) p[j] = 0.02f * rng_normal(&rng);
    m->word_embd = t;
    m->cfg.vocab_size = new_vocab;
    return ST_OK;
}

Status encoder_to_device(Encoder *m, Device dev) {
    if (dev.kind == m->dev.kind && dev.index == m->dev.index) return ST_OK;
    if (m->dev.kind != DEV_CPU) return status_fail(ST_USAGE, "encoder_to_device: the model must be on the CPU");
    int n = walk(m, NULL);
    Spec *s = malloc((size_t)(n > 0 ? n : 1) * sizeof *s);
    if (!s) return status_fail(ST_OOM, "out of memory");
    walk(m, s);
    Tensor dbuf;
    Status st = tensor_alloc_1d(&dbuf, DT_F32, dev, spec_numel(s, 0, n));
    float *p = dbuf.data;
    for (int i = 0; st == ST_OK && i < n; i++) {
        int64_t k = tensor_numel(s[i].p.t);
        st = device_copy_to(dev, p, s[i].p.t->data, (size_t)k * sizeof(float));
        p += k;
    }
    if (st != ST_OK) {
        tensor_free(&dbuf);
        free(s);
        return st;
    }
    EncoderStorage *sto = m->storage;
    for (int i = 0; i < sto->n_bufs; i++) tensor_free(&sto->bufs[i]);
    sto->bufs[0] = dbuf;
    sto->n_bufs = 1;
    bind(s, 0, n, &dbuf);
    m->dev = dev;
    free(s);
    return ST_OK;
}
