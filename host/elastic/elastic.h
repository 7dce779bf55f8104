// elastic.h: turning one model into nested sub-models (ElastiLM's model half).
//
//   calibration text -> calib batch (n x seq tokens)
//   anchors:     per layer, the LM loss with only that layer skipped; the
//                `keep` layers whose removal hurts most stay whole
//   importance:  first-order Taylor, sum |W * dL/dW| per unit over every weight
//                coupled to it (KV group or MHA head; FFN channel), reduced
//                while the backward forms each gradient
//   permutation: each non-anchor layer's units in descending importance
//   levels:      level r keeps a prefix of units per non-anchor layer (the
//                artifact's LLM-Pruner rule), so every level is a prefix of the
//                same reordered weights
//
// Units: KV group g = KV head g (rows [g*hd, (g+1)*hd) of W_k, W_v) with the
// query heads that share it under Hugging Face's repeat_kv (h / (H/KV) == g:
// rows [g*grp*hd, (g+1)*grp*hd) of W_q and those columns of W_o); for MHA a
// group is one head. FFN channel j = row j of W_gate and W_up, column j of W_down.
#ifndef ELASTILM_ELASTIC_H
#define ELASTILM_ELASTIC_H

#include <stdbool.h>
#include <stdint.h>

#include "models/llama.h"
#include "text/tokenizer.h"

// ---- calibration ---------------------------------------------------------------

// The artifact's sampler (LLMPruner/LLMPruner/datasets/example_samples.py) on a plain-text file (documents
// separated by blank lines): draw a document at random, tokenize it (special
// tokens added), accept it if it has at least seq tokens and was not drawn
// before, then take a random window of seq tokens. ids: [n * seq], malloc'd.
Status calib_sample(const char *path, const Tokenizer *tok, int n, int seq, uint64_t seed, int32_t **ids);

// Mean next-token loss of the batch [n x seq] (labels = inputs), running the
// sub-blocks in blocks ([L] LAYER_ATTN | LAYER_FFN bits, LlamaView.blocks; NULL = all).
Status calib_loss(const LlamaModel *m, const int32_t *ids, int n, int seq, const uint8_t *blocks, double *loss);

// ---- anchors -------------------------------------------------------------------

// skip_loss[l] = the loss with only layer l skipped; anchors = the `keep`
// layers with the largest skip_loss (ties: the later layer in ascending order
// is the anchor, as the artifact's stable sort makes it).
// order: [L] layers in ascending skip_loss. anchor: [L] 0/1.
Status anchors_select(const LlamaModel *m, const int32_t *ids, int n, int seq, int keep, double *base_loss,
                      double *skip_loss, int *order, uint8_t *anchor);

// ---- importance ----------------------------------------------------------------

typedef struct {
    int n_layers, n_kv, ffn;
    double *attn;   // [L * n_kv] unit scores (0 for anchor layers)
    double *mlp;    // [L * ffn] channel scores (0 for anchor layers)
} Importance;

// One forward/backward of the calibration loss; only non-anchor layers are scored.
Status importance_compute(const LlamaModel *m, const int32_t *ids, int n, int seq, const uint8_t *anchor,
                          Importance *imp);
void importance_free(Importance *imp);

// ---- layer statistics (the layer baselines' importance) ------------------------

// How a cosine between two [N, D] activations is taken: the mean over the N
// tokens of per-token cosines (ShortGPT's and LLM-Drop's papers), or one
// cosine of the two flattened batches (the ElastiLM artifact).
typedef enum { COS_PER_TOKEN = 0, COS_FLAT } CosMode;

// On the calibration batch [n x seq], per layer l with input x, attention
// output A = o(attention(norm1 x)), h = x + A and FFN output F = down(...(norm2 h)):
//   bi[l]   = 1 - cos(x, layer output)                     (ShortGPT's Block Influence)
//   attn[l] = per token: 1 - cos(x, x + A)  (LLM-Drop); flat: 1 - cos(norm1 x, A) (the artifact)
//   ffn[l]  = per token: 1 - cos(h, h + F)  (LLM-Drop); flat: 1 - cos(norm2 h, F)
// Cosines are formed in double from the fp32 activations. Each array is [L].
Status layer_stats(const LlamaModel *m, const int32_t *ids, int n, int seq, CosMode mode, double *bi, double *attn,
                   double *ffn);

// Indices 0..n-1 in ascending order of v (stable: ties keep the lower index first).
void order_ascending(const double *v, int n, int *out);

// ---- permutation and levels ------------------------------------------------------

typedef struct {
    int n_layers, n_kv, ffn;
    int32_t *attn;  // [L * n_kv] position i of layer l holds original unit attn[l*n_kv + i]
    int32_t *mlp;   // [L * ffn]
} Permutation;

// Descending importance (stable: equal scores keep the original order);
// anchor layers keep the identity.
Status permutation_from_importance(const Importance *imp, const uint8_t *anchor, Permutation *p);
// A seeded random order for the non-anchor layers (the "random" control).
Status permutation_random(int n_layers, int n_kv, int ffn, const uint8_t *anchor, uint64_t seed, Permutation *p);
void permutation_free(Permutation *p);

// Reorders the model's weights in place (non-anchor layers; copies weights it
// does not own). Whole head_dim blocks move, so RoPE pairs stay intact; the
// function of the model is unchanged.
Status permutation_apply(LlamaModel *m, const Permutation *p);

// Level table: the artifact's rule (--pruning_ratio per level in its LLMPruner scripts) for pruning ratio p:
// units kept = n_kv - floor((C - int(C (1-p))) / hd) with C = n_kv * hd;
// FFN channels kept = int(F (1-p)); anchors keep everything.
typedef struct {
    double level;   // nominal fraction, 0.2 ... 1.0
    double ratio;   // pruning ratio of the non-anchor layers
} LevelSpec;
// The artifact's grid: 0.2..0.9 with ratios 0.9, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125 (and 1.0 -> 0).
int levels_default(LevelSpec *out, int cap);
// Parses "0.2,0.5,1" (ratios by the artifact's table for its levels, else min(0.9, 1.25 (1 - r))).
Status levels_parse(const char *text, LevelSpec *out, int cap, int *n);
void level_widths(const LlamaConfig *c, const uint8_t *anchor, double ratio, LlamaWidth *out);

#endif
