// lora.h: low-rank adapters on the seven LLaMA projections.
//
// y = W x + scale * B (A dropout(x)),  scale = alpha / rank, never merged into W
// while training. A is [rank, in] and B [out, rank] (peft's lora_A / lora_B
// layouts); in/out are the projection's widths in the model's view, so an
// elastic level's adapter is shaped for its prefix of heads and FFN channels.
// All parameters of a set live in one allocation (params), their gradients in
// another (grads), which is what the optimizer and the all-reduce see.
#ifndef ELASTILM_LORA_H
#define ELASTILM_LORA_H

#include <stdint.h>

#include "models/llama.h"
#include "runtime/tensor.h"

typedef enum { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_N_TARGETS } LoraTarget;

// "q_proj", "k_proj", ... (Hugging Face module names)
extern const char *const lora_target_names[LORA_N_TARGETS];

typedef struct {
    int rank;         // r
    float alpha;      // scale = alpha / r
    float dropout;    // on the adapter's input, in [0, 1)
    unsigned targets; // bit (1u << LoraTarget) per adapted projection
} LoraConfig;

typedef struct {
    int in, out;      // the adapted projection's input / output widths; 0 when not adapted
    Tensor A, B;      // [r, in], [out, r]: views into LoraSet.params
    Tensor gA, gB;    // the same in LoraSet.grads
} LoraAdapter;

typedef struct LoraSet {
    LoraConfig cfg;
    int n_layers;        // L
    LoraAdapter *ad;     // [L * LORA_N_TARGETS], index l * LORA_N_TARGETS + target
    Tensor params;       // [n_params] f32: every A and B, layer by layer, target by target
    Tensor grads;        // [n_params] f32
    int64_t n_params;
} LoraSet;

// Parses "q,k,v,o,gate,up,down" (also "q_proj,..." and "all") into a target mask.
Status lora_parse_targets(const char *list, unsigned *targets);
// "q,k,v,o,gate,up,down" for a mask; buf of at least 64 bytes.
const char *lora_targets_string(unsigned targets, char *buf, size_t n);

// Allocates a set for model config c in the view widths (NULL = the full
// model) and initialises it as peft does: A ~ U(-1/sqrt(in), 1/sqrt(in))
// (kaiming_uniform with a = sqrt(5)), B = 0, from the given seed.
Status lora_init(LoraSet *s, const LlamaConfig *c, const LlamaWidth *widths, const LoraConfig *cfg, uint64_t seed);
void lora_free(LoraSet *s);

static inline LoraAdapter *lora_adapter(const LoraSet *s, int layer, LoraTarget t) {
    return &s->ad[layer * LORA_N_TARGETS + t];
}
static inline float lora_scale(const LoraSet *s) { return s->cfg.alpha / (float)s->cfg.rank; }

// Moves the adapters (for inference) to dev: the parameters go into one device
// allocation and every A and B points into it; the gradients are released.
// A no-op when they are there already.
Status lora_to_device(LoraSet *s, Device dev);

// The adapted projection's [out, in] shape in a view: e.g. q is [nq*hd, D].
void lora_target_shape(const LlamaConfig *c, const LlamaWidth *w, LoraTarget t, int *out, int *in);

#endif
