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

// THE ONE PLACE that says which architectures have a forward: ST_OK for BERT,
// ST_UNSUPPORTED ("MobileBERT forward not built yet") for MobileBERT. Every
// entry point that needs weights or a forward (alloc, load, sessions,
// training) goes through it.
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

// Seeds: one per (layer, site); the embeddings use layer -1, the classifier input layer L.
static inline uint64_t encoder_drop_seed(uint64_t step_seed, int layer, int site) {
    return rng_mix(step_seed, (uint64_t)(layer + 1) * 8 + (uint64_t)site);
}

#endif
