// encoder_internal.h: what the encoder's files share (not for other layers).
#ifndef ELASTILM_ENCODER_INTERNAL_H
#define ELASTILM_ENCODER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "encoder.h"
#include "runtime/rng.h"

// Where the weights live: up to a few owned buffers (the body, a replaced
// head, a device copy) that the tensors of Encoder view.
#define ENC_MAX_BUFS 4
struct EncoderStorage {
    Tensor bufs[ENC_MAX_BUFS];
    int n_bufs;
};

// THE ONE PLACE that says which architectures have a forward (BERT and
// MobileBERT both do). Every entry point that needs weights or a forward
// (alloc, load, sessions, training) goes through it.
Status encoder_arch_check(const EncoderConfig *c);

// Consistency of a config (positive sizes, H * head_dim = D, ...); path names the source.
Status encoder_config_check(const EncoderConfig *c, const char *path);

// ---- BERT: one layer step shared by inference (bert.c) and training (encoder_train.c)

// The tensors of one layer step, [N, ...] each (contiguous or row views).
// Aliasing allowed for inference: ares may be ao, fres may be fo, h may be hpre,
// out may be x. Training keeps them apart (they are the saved activations).
typedef struct {
    Tensor x;             // [N, D] layer input
    Tensor q, k, v;       // [N, D]
    Tensor att;           // [N, D] attention output (before attention.output.dense)
    Tensor ao;            // [N, D] attention.output.dense(att) (+ dropout)
    Tensor ares;          // [N, D] x + ao: the attention LayerNorm's input
    Tensor x1;            // [N, D] attention.output.LayerNorm(ares)
    Tensor hpre;          // [N, F] intermediate.dense(x1)
    Tensor h;             // [N, F] act(hpre)
    Tensor fo;            // [N, D] output.dense(h) (+ dropout)
    Tensor fres;          // [N, D] x1 + fo: the output LayerNorm's input
    Tensor out;           // [N, D] output.LayerNorm(fres)
} BertLayerBufs;

// Dropout sites of a layer (each gets its own seed).
enum { BERT_DROP_ATTN_OUT = 0, BERT_DROP_FFN_OUT = 1, BERT_DROP_SITES = 2 };

typedef struct {
    void *ctx;
    // att from q, k, v: bidirectional attention within each sequence.
    void (*attend)(void *ctx, int l, const Tensor *q, const Tensor *k, const Tensor *v, Tensor *att);
    // x = dropout(x) at one site of layer l (NULL: no dropout).
    void (*dropout)(void *ctx, int l, int site, Tensor *x);
} BertLayerSteps;

void bert_layer_forward(const EncoderConfig *c, const BertLayer *w, int l, const BertLayerBufs *b,
                        const BertLayerSteps *s);

// esum = word[ids] + pos[pos] + type[types]; x = LayerNorm(esum). tmp is [N, D] scratch.
void bert_embed(const Encoder *m, const int32_t *ids, const int32_t *pos, const int32_t *types, Tensor *esum,
                Tensor *tmp, Tensor *x);

// ---- MobileBERT: one layer step shared by inference (bert.c) and training (encoder_train.c)

#define MB_MAX_FFN 16        // num_feedforward_networks 1..MB_MAX_FFN
#define MB_DEFAULT_LN_EPS 1e-5f // embeddings.LayerNorm and output.LayerNorm are built without eps
                                // (torch's default) when normalization_type is layer_norm

// Which tensors feed the attention: use_bottleneck_attention: all from bottleneck.input;
// key_query_shared_bottleneck: Q, K from bottleneck.attention, V from the layer input; else
// (or without use_bottleneck) Q, K, V from the layer input.
// I = inner, F = ffn_dim, n = n_ffn; stage j < n - 1 is ffn.j, stage n - 1 is
// intermediate/output. Aliasing allowed for inference as in BertLayerBufs
// (li_pre may be li, s_pre s, all a[j] one tensor, hpre[j] = h[j], fres[j] any
// scratch but not a[j], ares may be fres, obres a scratch, out may be x).
typedef struct {
    Tensor x;                  // [N, D] layer input
    Tensor li_pre, li;         // [N, I] bottleneck.input.dense(x), its norm (use_bottleneck)
    Tensor s_pre, s;           // [N, I] bottleneck.attention (use_bottleneck, kq shared, not use_bottleneck_attention)
    Tensor q, k, v, att;       // [N, I]
    Tensor ares;               // [N, I] dropout(attention.output.dense(att)) + residual: the attention norm's input
    Tensor a[MB_MAX_FFN + 1];  // [N, I] a[0] the attention block's output; a[j + 1] stage j's (a[n] with use_bottleneck only)
    Tensor hpre[MB_MAX_FFN];   // [N, F] stage j: intermediate.dense(a[j])
    Tensor h[MB_MAX_FFN];      // [N, F] act(hpre[j])
    Tensor fres[MB_MAX_FFN];   // [N, I] output.dense(h[j]) (+ dropout) + a[j]: stage j's norm input
    Tensor obres;              // [N, D] dropout(output.bottleneck.dense(a[n])) + x (use_bottleneck)
    Tensor out;                // [N, D] the layer output
} MobileBertLayerBufs;

void mobilebert_layer_forward(const EncoderConfig *c, const MobileBertLayer *w, int l, const MobileBertLayerBufs *b,
                              const BertLayerSteps *s);

// Gradient scratch of one layer step ([N, I] unless noted).
typedef struct {
    Tensor dres;               // [N, D] in: dL/d(layer output); out: dL/d(layer input) (when need_dx)
    Tensor dx;                 // [N, D] the input gradient's accumulator
    Tensor da, db, dli, ds;    // stage gradients (ping-pong), bottleneck.input / .attention outputs
    Tensor dq, dk, dv, datt;
    Tensor dtmp;               // [N, D] a dropout's gradient (dropout sites are D wide, or I = D)
    Tensor h, dh, dhp;         // [N, F] (h: act(hpre[j]) recomputed; b->h[j] need not hold it)
} MobileBertGradBufs;

// Backward of one layer from its saved activations b (the training forward's);
// weight gradients ACCUMULATE into g's tensors that have data (frozen ones have
// none); s->dropout reapplies the forward's masks to gradients.
void mobilebert_layer_backward(const EncoderConfig *c, const MobileBertLayer *w, MobileBertLayer *g, int l,
                               const MobileBertLayerBufs *b, const MobileBertGradBufs *d, const VarlenShape *shape,
                               const Tensor *lse, bool need_dx, const BertLayerSteps *s);

// Trigram neighbours of each token within its sequence: next[i] = ids[i + 1],
// prev[i] = ids[i - 1], -1 (a zero row) past either end of the sequence.
// (transformers pads per padded row: with right padding its last real token sees
// E[PAD], not zeros; our packed sequences hold no pads, so the edge is the sequence's end.)
void mobilebert_trigram_ids(const int32_t *ids, const int32_t *cu, int n_seq, int32_t *next, int32_t *prev);

// Embeddings: x3 [N, 3E or E] = [E(t+1); E(t); E(t-1)] (trigram) or E(t);
// esum = embedding_transformation(x3) (or x3 when E = D without trigram) + pos + type;
// x = norm(esum). tmp [N, D] scratch. ids, next, prev, pos, types on the model's device.
void mobilebert_embed(const Encoder *m, const int32_t *ids, const int32_t *next, const int32_t *prev,
                      const int32_t *pos, const int32_t *types, Tensor *x3, Tensor *esum, Tensor *tmp, Tensor *x);
// Whether the embeddings run embedding_transformation (trigram_input or E != D).
static inline bool mobilebert_projects(const EncoderConfig *c) { return c->trigram || c->embedding_size != c->dim; }

// Norm of MobileBERT (NoNorm x * w + b, or LayerNorm) and its backward.
void mobilebert_norm(const EncoderConfig *c, Tensor *out, const Tensor *x, const Norm *n, float eps);
void mobilebert_norm_backward(const EncoderConfig *c, Tensor *dx, Norm *g, const Tensor *dout, const Tensor *x,
                              const Norm *w, float eps);

// Seeds: one per (layer, site); the embeddings use layer -1, the classifier input layer L.
static inline uint64_t encoder_drop_seed(uint64_t step_seed, int layer, int site) {
    return rng_mix(step_seed, (uint64_t)(layer + 1) * 8 + (uint64_t)site);
}

#endif
