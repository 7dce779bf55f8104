// llama_train.h: forward with saved activations and backward of the LLaMA
// decoder, for LoRA recovery, importance scoring and full-weight gradients.
//
// A training batch is a set of sequences packed one after another (no padding:
// attention is causal within each sequence), with a next-token target per
// position (negative = no loss there, Hugging Face's -100 after the shift).
// One call runs forward and backward of
//     loss_scale * sum over counted positions of -log p(target)
// and ACCUMULATES the gradients: into the LoRA set's grads when adapters are
// attached, and into full weight gradients when asked. The model's weights
// are never modified; without full gradients no base-weight gradient is formed.
#ifndef ELASTILM_LLAMA_TRAIN_H
#define ELASTILM_LLAMA_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "models/llama.h"
#include "models/lora.h"

typedef struct {
    const int32_t *ids;     // [N] token ids, sequences back to back
    const int32_t *targets; // [N] target of each position (the next token), < 0 = not counted
    const int32_t *cu;      // [n_seq + 1] sequence starts, cu[0] = 0, cu[n_seq] = N
    int n_seq;
    int n_tokens;           // N
} TrainBatch;

// Receives the gradient g of one projection weight w (both [out, in] in the
// view's widths; g is scratch memory, valid only during the call) as soon as
// the backward forms it. Importance scoring reduces |w * g| here, so no
// full-model gradient is ever held.
typedef void (*WeightGradFn)(void *ctx, int layer, LoraTarget proj, const Tensor *w, const Tensor *g);

typedef struct {
    bool full_grads;  // gradients of every model weight (LlamaTrain.grads)
    bool recompute;   // keep only each layer's input; recompute the layer in the backward
    int logits_chunk; // rows of logits formed at a time (0 = 256)
    WeightGradFn on_weight_grad; // projection-weight gradients to a callback (not with full_grads)
    void *grad_ctx;
    const uint8_t *grad_layers;  // [L] layers whose weight gradients the callback wants (NULL = all)
    const uint8_t *blocks;       // [L] LAYER_ATTN | LAYER_FFN bits of what runs (0 = the identity); NULL = all
    const LlamaLayer *const *weights; // [L] substitute weights per layer (LlamaView.weights); NULL = the model's
    bool eval_only;              // forward only (llama_train_eval): no backward buffers are allocated
} TrainOptions;

// Everything a layer's backward needs from its forward. Widths are the view's:
// nq = active query heads, kv = active KV heads, F' = active FFN channels.
typedef struct {
    Tensor x;                  // [N, D] input of the layer (residual stream)
    Tensor xn1;                // [N, D] attention RMSNorm output
    Tensor q;                  // [N, nq*hd] queries after RoPE
    Tensor k, v;               // [N, kv*hd] keys after RoPE, values
    Tensor att;                // [N, nq*hd] attention output (before o_proj)
    Tensor lse;                // [nq, N] attention log-sum-exp
    Tensor x2;                 // [N, D] residual after the attention block
    Tensor xn2;                // [N, D] MLP RMSNorm output
    Tensor gate, up, h;        // [N, F'] projections and silu(gate) * up
    Tensor u[LORA_N_TARGETS];  // [N, r] A . dropout(input) of each adapter
} LayerActs;

typedef struct {
    Tensor tok_embd;      // [V, D]
    LlamaLayer *layers;   // [L], the same fields as the model's
    Tensor final_norm;    // [D]
    Tensor lm_head;       // [V, D]; the same memory as tok_embd when tied
} LlamaGrads;

typedef struct {
    const LlamaModel *m;
    LlamaWidth *widths;     // [L] the view trained (full widths by default)
    LoraSet *lora;          // adapters, or NULL
    TrainOptions opt;
    int max_tokens;         // N capacity
    LayerActs *acts;        // [L]; with recompute only .x and .u are per layer
    LayerActs shared;       // recompute: the one set of the other buffers
    Tensor xL, xf;          // [N, D] last layer's output, final-norm output
    Tensor dres, dxn;       // [N, D] gradient of the residual stream / of a norm output
    Tensor dq, datt;        // [N, H*hd]
    Tensor dk, dv;          // [N, KV*hd]
    Tensor dgate, dup, dh;  // [N, F]
    Tensor du;              // [N, r]
    Tensor xd, dxd;         // [N, max(D, H*hd, F)] dropped adapter input and its gradient
    Tensor logits;          // [chunk, V]
    Tensor xrows, drows;    // [chunk, D] gathered final hidden rows with a target and their gradient
    Tensor wgrad;           // [max projection size] scratch for on_weight_grad
    int32_t *pos;           // [N] positions within each sequence
    int32_t *rows;          // [N] rows that have a target
    uint8_t *blocks;        // [L] copy of opt.blocks (LAYER_ALL by default); may be changed between calls
    LlamaView view;         // widths, lora, blocks and opt.weights: what every layer step runs
    uint8_t *grad_layers;   // [L] copy of opt.grad_layers
    bool has_grads;
    LlamaGrads grads;       // when opt.full_grads
} LlamaTrain;

// widths: [L] or NULL for the full model; lora may be NULL; max_tokens: the
// largest N a batch may have.
Status llama_train_init(LlamaTrain *t, const LlamaModel *m, const LlamaWidth *widths, LoraSet *lora,
                        const TrainOptions *opt, int max_tokens);
void llama_train_free(LlamaTrain *t);

// Checks ids, targets and sequence bounds against the model and capacity.
Status llama_train_check_batch(const LlamaTrain *t, const TrainBatch *b);

// Forward + backward. dropout_seed selects the adapters' dropout masks
// (counter-based: the same seed gives the same masks on any rank or backend).
// *loss_sum receives the unscaled sum of the counted positions' losses and
// *counted their number (either may be NULL).
Status llama_train_step(LlamaTrain *t, const TrainBatch *b, float loss_scale, uint64_t dropout_seed,
                        double *loss_sum, int64_t *counted);

// Forward only, without dropout (validation).
Status llama_train_eval(LlamaTrain *t, const TrainBatch *b, double *loss_sum, int64_t *counted);

// Zeroes the full weight gradients (the LoRA set's grads are the caller's).
void llama_train_zero_grads(LlamaTrain *t);

#endif
