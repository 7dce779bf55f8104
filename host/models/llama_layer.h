// llama_layer.h: one decoder layer under a view, written once for every
// forward that walks the layers (the KV-cache inference forward and the
// training forward). What differs between them is passed in: how attention
// is computed (a KV cache, or packed sequences with saved activations) and how
// adapters are applied (with or without dropout).
#ifndef ELASTILM_LLAMA_LAYER_H
#define ELASTILM_LLAMA_LAYER_H

#include <stdbool.h>

#include "llama.h"
#include "lora.h"

// What layer l runs in a view.
typedef struct {
    const LlamaLayer *w; // the weights it uses (the model's own or the view's substitute)
    LlamaLayerView wv;   // those weights in the view's widths
    bool attn, ffn;      // the sub-blocks that run
    const FfnPredictor *pred; // contextual sparsity: the FFN runs the pred_k neurons it scores highest; NULL = dense
    int pred_k;
} LlamaLayerPlan;

// v may be NULL (the full model).
LlamaLayerPlan llama_layer_plan(const LlamaModel *m, const LlamaView *v, int l);

// The tensors of one layer step, [N, ...] each. x2 may be x and out may be x2
// (the same memory: the residual stream is then updated in place); h may be gate.
typedef struct {
    Tensor x;         // [N, D] layer input
    Tensor xn1;       // [N, D] attention RMSNorm output
    Tensor att;       // [N, nq*hd] attention output before o_proj
    Tensor x2;        // [N, D] residual stream after the attention block
    Tensor xn2;       // [N, D] FFN RMSNorm output
    Tensor gate, up;  // [N, F'] projections
    Tensor h;         // [N, F'] silu(gate) * up
    Tensor out;       // [N, D] layer output
    Tensor pred_h;    // [N, R] sparse FFN (plan.pred): the predictor's hidden layer
    Tensor pred_s;    // [N, F] its neuron scores
    Tensor pred_idx;  // [N, k] i32: the kept neurons
} LlamaLayerBufs;

typedef struct {
    void *ctx;
    // att from xn: the q/k/v projections with their adapters, RoPE and attention.
    void (*attend)(void *ctx, int l, const LlamaLayerPlan *p, const Tensor *xn, Tensor *att);
    // out += the adapter of (l, t) applied to in, when the view has one (NULL: no adapters).
    void (*adapter)(void *ctx, int l, LoraTarget t, const Tensor *in, Tensor *out);
    // Sees the FFN input and the gate projection (with its adapter) before the activation (NULL: nothing).
    void (*ffn_probe)(void *ctx, int l, const Tensor *xn, const Tensor *gate);
} LlamaLayerSteps;

// out = x + attention block (if it runs) + FFN block (if it runs).
void llama_layer_forward(const LlamaConfig *c, int l, const LlamaLayerPlan *p, const LlamaLayerBufs *b,
                         const LlamaLayerSteps *s);

#endif
