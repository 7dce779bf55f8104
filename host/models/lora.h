// lora.h: low-rank adapters on a model's linear modules (for LLaMA: its seven
// projections).
//
// y = W x + scale * B (A dropout(x)),  scale = alpha / rank, never merged into W
// while training. A is [rank, in] and B [out, rank] (peft's lora_A / lora_B
// layouts); in/out are the projection's widths in the model's view, so an
// elastic level's adapter is shaped for its prefix of heads and FFN channels.
// All parameters of a set live in one allocation (params), their gradients in
// another (grads), which is what the optimizer and the all-reduce see.
//
// Which modules can be adapted is a per-model table (LoraTargetTable): names,
// peft module paths and each layer's shapes. LLaMA's table is lora_llama_targets
// (q_proj ... down_proj, indexed by LoraTarget); another model family (an
// encoder's query/key/value/dense) declares its own and calls lora_init_table.
#ifndef ELASTILM_LORA_H
#define ELASTILM_LORA_H

#include <stdint.h>

#include "models/llama.h"
#include "runtime/tensor.h"

typedef enum { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_N_TARGETS } LoraTarget;

// "q_proj", "k_proj", ... (Hugging Face module names)
extern const char *const lora_target_names[LORA_N_TARGETS];

#define LORA_MAX_TARGETS 32 // targets per layer of any table (a target mask is an unsigned)

// The modules of one model family that adapters can be attached to.
typedef struct LoraTargetTable {
    const char *model;                 // "LLaMA": for messages
    int n;                             // targets per layer, at most LORA_MAX_TARGETS
    const char *const *names;          // [n] Hugging Face module names ("q_proj"): peft's target_modules, HDF5 names
    const char *const *short_names;    // [n] short forms for target lists ("q"); may equal names
    const char *const *module_paths;   // [n] peft module path with %d for the layer ("model.layers.%d.self_attn.q_proj")
    const char *peft_task_type;        // adapter_config.json's task_type ("CAUSAL_LM")
    // [out, in] of target t in layer `layer` of the model described by ctx (in = 0: no adapter there)
    void (*shape)(const void *ctx, int layer, int t, int *out, int *in);
} LoraTargetTable;

// LLaMA's seven projections, in LoraTarget order; shape ctx: a LlamaShapeCtx.
extern const LoraTargetTable lora_llama_targets;
typedef struct {
    const LlamaConfig *c;
    const LlamaWidth *widths; // [L] or NULL = the full model
} LlamaShapeCtx;

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
    const LoraTargetTable *tt; // what the targets are (&lora_llama_targets for lora_init)
    int n_targets;       // tt->n
    int n_layers;        // L
    LoraAdapter *ad;     // [L * n_targets], index l * n_targets + target
    Tensor params;       // [n_params] f32: every A and B, layer by layer, target by target
    Tensor grads;        // [n_params] f32
    int64_t n_params;
} LoraSet;

// Parses "q,k,v,o,gate,up,down" (also "q_proj,..." and "all") into a target mask.
Status lora_parse_targets(const char *list, unsigned *targets);
// "q,k,v,o,gate,up,down" for a mask; buf of at least 64 bytes.
const char *lora_targets_string(unsigned targets, char *buf, size_t n);
// The same for any table (short names, full names, "all"; the string uses short names).
Status lora_parse_targets_in(const LoraTargetTable *tt, const char *list, unsigned *targets);
const char *lora_targets_string_in(const LoraTargetTable *tt, unsigned targets, char *buf, size_t n);

// Allocates a set for model config c in the view widths (NULL = the full
// model) and initialises it as peft does: A ~ U(-1/sqrt(in), 1/sqrt(in))
// (kaiming_uniform with a = sqrt(5)), B = 0, from the given seed.
Status lora_init(LoraSet *s, const LlamaConfig *c, const LlamaWidth *widths, const LoraConfig *cfg, uint64_t seed);
// The same for any table: n_layers layers, shapes from tt->shape(shape_ctx, ...).
// The layout and the initialisation are lora_init's (lora_init is this with
// lora_llama_targets).
Status lora_init_table(LoraSet *s, const LoraTargetTable *tt, const void *shape_ctx, int n_layers,
                       const LoraConfig *cfg, uint64_t seed);
void lora_free(LoraSet *s);

// t: a LoraTarget for LLaMA sets, an index into s->tt otherwise.
static inline LoraAdapter *lora_adapter(const LoraSet *s, int layer, int t) {
    return &s->ad[layer * s->n_targets + t];
}
static inline float lora_scale(const LoraSet *s) { return s->cfg.alpha / (float)s->cfg.rank; }

// Moves the adapters (for inference) to dev: the parameters go into one device
// allocation and every A and B points into it; the gradients are released.
// A no-op when they are there already.
Status lora_to_device(LoraSet *s, Device dev);

// The adapted projection's [out, in] shape in a view: e.g. q is [nq*hd, D].
void lora_target_shape(const LlamaConfig *c, const LlamaWidth *w, LoraTarget t, int *out, int *in);

#endif
