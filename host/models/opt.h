// opt.h: the OPT decoder family (Meta's Open Pre-trained Transformers) as
// Hugging Face transformers' models/opt/modeling_opt.py implements it:
// learned positions (table row = position + 2, positions counting only the
// real tokens of each sequence), LayerNorm with biases, pre-LN (opt-125m,
// 1.3b, ...) or post-LN (opt-350m), ReLU (or exact GELU) FFN, biases on every
// projection, optional project_in / project_out around the layers when
// word_embed_proj_dim != hidden_size, tied lm_head.
//
// The API follows llama.h: a model is loaded once from a Hugging Face
// directory (config.json + model.safetensors or a sharded index) into fp32
// CPU tensors ([out, in] PyTorch layout); running it needs an OptSession (KV
// cache + scratch) for n_seq sequences. LogitsMode and the logits contract are
// llama.h's.
#ifndef ELASTILM_OPT_H
#define ELASTILM_OPT_H

#include <stdbool.h>
#include <stdint.h>

#include "models/llama.h" // LogitsMode
#include "ops/ops.h"      // Activation
#include "runtime/tensor.h"

typedef struct {
    int vocab_size;        // V
    int dim;               // hidden_size D
    int ffn_dim;           // ffn_dim F
    int n_layers;          // num_hidden_layers L
    int n_heads;           // num_attention_heads H
    int head_dim;          // hd = D / H
    int max_position;      // max_position_embeddings P (the table has P + 2 rows)
    int embed_dim;         // word_embed_proj_dim E (D when absent)
    bool pre_norm;         // do_layer_norm_before (false: opt-350m's post-LN)
    bool final_norm;       // decoder.final_layer_norm exists: pre_norm && !_remove_final_layer_norm
    bool bias;             // enable_bias: q/k/v/out_proj and fc1/fc2 have biases
    bool ln_affine;        // layer_norm_elementwise_affine (false: weight 1, bias 0)
    bool tie_embeddings;   // lm_head shares embed_tokens
    Activation act;        // activation_function: "relu" -> ACT_RELU, "gelu" -> ACT_GELU (exact)
    float ln_eps;          // 1e-5 (torch.nn.LayerNorm's default; OPT's config has no field)
    int bos_token_id, eos_token_id, pad_token_id; // -1 when absent
} OptConfig;

typedef struct {
    Tensor ln1_w, ln1_b;   // [D] self_attn_layer_norm
    Tensor wq, bq;         // [D, D], [D] q_proj
    Tensor wk, bk;         // [D, D], [D] k_proj
    Tensor wv, bv;         // [D, D], [D] v_proj
    Tensor wo, bo;         // [D, D], [D] out_proj
    Tensor ln2_w, ln2_b;   // [D] final_layer_norm (of the layer)
    Tensor w1, b1;         // [F, D], [F] fc1
    Tensor w2, b2;         // [D, F], [D] fc2
} OptLayer;                // biases: zero-sized (data NULL) when !cfg.bias

typedef struct OptStorage OptStorage; // mapped files and owned buffers

typedef struct {
    OptConfig cfg;
    Tensor tok_embd;       // [V, E] embed_tokens
    Tensor pos_embd;       // [P + 2, D] embed_positions
    Tensor project_in;     // [D, E] when E != D (no bias), else empty
    Tensor project_out;    // [E, D] when E != D (no bias), else empty
    OptLayer *layers;      // [L]
    Tensor final_w, final_b; // [D] decoder.final_layer_norm when cfg.final_norm, else empty
    Tensor lm_head;        // [V, E]; the same memory as tok_embd when tied
    char source_dtype[16]; // dtype(s) of the stored weights, e.g. "f32", "bf16+f32"
    OptStorage *storage;
    Device dev;            // where the weights are (opt_to_device); the CPU after loading
} OptModel;

// Loads a Hugging Face directory. Tensor names under "model.decoder.",
// "decoder." or no prefix (lm_head.weight at the top, optional when tied).
// On failure nothing is left allocated and the status message names the file
// and the tensor or key at fault (ST_FORMAT for a bad file, ST_UNSUPPORTED for
// a well-formed config this code does not run, ST_IO for a missing file).
Status opt_load(OptModel *m, const char *dir);
void opt_free(OptModel *m);
// Moves the weights to dev as llama_to_device does: the matrices (embeddings,
// projections, lm_head) in weight_dtype (bf16, f16 or f32), LayerNorm
// parameters and biases in f32. The CPU copies are released. A no-op for the CPU.
Status opt_to_device(OptModel *m, Device dev, DType weight_dtype);
int64_t opt_param_count(const OptModel *m);

// ---- running ---------------------------------------------------------------

typedef struct {
    Tensor x;              // [N, D] residual stream (f32)
    Tensor xn;             // [N, D] LayerNorm output that a matmul reads (act_dtype)
    Tensor q, att;         // [N, D] queries (f32), attention output (act_dtype)
    Tensor k_new, v_new;   // [N, D] the new tokens' keys and values before they go into the cache
    Tensor h;              // [N, F] fc1 output (f32)
    Tensor act;            // [N, F] act(h) when activations are 16-bit (else in place in h)
    Tensor emb;            // [N, max(E, D)] token embeddings (before project_in), then position embeddings
    Tensor proj;           // [N, E] project_out output (when E != D)
    Tensor last;           // [n_seq, D] final LayerNorm of each sequence's last token (act_dtype)
    Tensor logits;         // device sessions: logits formed here before the copy to a host tensor
} OptScratch;

typedef struct OptSession {
    int n_seq;             // sequences in the batch
    int cap;               // KV capacity per sequence (tokens; beyond base_n when attached)
    int n_past;            // tokens already in the cache (the same for every sequence, base included)
    int n_layers;          // entries in k and v
    Tensor *k, *v;         // [L] each [n_seq*cap, D]
    int32_t *mask;         // [n_seq*cap] 1 = real token, 0 = padding (own rows, after base_n)
    int32_t *n_real;       // [n_seq] real tokens among the n_past cached ones (base included):
                           // the next real token's position (HF: cumsum(mask) - 1)
    int32_t *pos;          // [n_seq*cap] this forward's position-table rows (its first n_seq*T)
    Tensor mask_dev;       // device sessions: mask mirrored on the device [n_seq*cap] i32
    Tensor idx_dev;        // device sessions: this forward's ids, then position rows [2*n_seq*cap] i32
    OptScratch s;
    int scratch_tokens;    // rows the scratch holds
    const struct OptSession *base; // shared prefix (opt_session_attach), or NULL
    int base_n;            // its length in tokens
    Device dev;
    DType act_dtype;       // xn, att, act, last: f32 on the CPU, the weights' dtype on a device
} OptSession;

Status opt_session_init(OptSession *s, const OptModel *m, int n_seq, int cap, Device dev);
void opt_session_free(OptSession *s);
void opt_session_reset(OptSession *s);
// Keeps only the first n cached tokens (n <= n_past); later ones are
// overwritten. Positions continue from the real tokens among the kept ones. A
// cut inside a shared prefix keeps its first n tokens shared.
void opt_session_truncate(OptSession *s, int n);
// Makes the first n cached tokens of base (a one-sequence session of the same
// model) the first n tokens of every sequence of dst without copying, as
// llama_session_attach: base must stay unchanged while dst is used; dst's
// n_past becomes n, dst->cap counts only dst's own tokens after them, and
// every sequence's positions continue from the real tokens of that prefix.
Status opt_session_attach(OptSession *dst, const OptSession *base, int n);

// Appends T tokens per sequence and computes their logits (llama_forward's
// contract). ids [n_seq*T] sequence-major; mask [n_seq*T] or NULL (all real).
// Positions are Hugging Face's for the whole sequence (cache included): a
// real token reads table row 2 + (real tokens before it), a pad (mask 0) row 1.
// Fails (ST_USAGE) when a real token's position reaches max_position_embeddings.
Status opt_forward(const OptModel *m, OptSession *s, const int32_t *ids, const int32_t *mask, int T, LogitsMode mode,
                   Tensor *logits);

#endif
