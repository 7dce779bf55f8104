// llama.h: the LLaMA-family decoder (LLaMA-1/2 MHA, Llama-3 GQA with rope
// scaling, SmolLM2 with tied embeddings, any head_dim).
//
// A model is loaded once from a Hugging Face directory or a GGUF file into
// the same structure; weights are PyTorch-layout [out, in] fp32 on the CPU
// (for inference, llama_convert_weights can make the matrices bf16 or q8_0).
// Running it needs a LlamaSession (KV cache + scratch) for n_seq sequences.
#ifndef ELASTILM_LLAMA_H
#define ELASTILM_LLAMA_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/tensor.h"

typedef enum {
    ROPE_DEFAULT = 0,
    ROPE_LINEAR,
    ROPE_LLAMA3,
    ROPE_FREQ_FACTORS, // GGUF: per-frequency divisors from the rope_freqs tensor
} RopeType;

typedef struct {
    RopeType type;
    float factor;               // linear and llama3
    float low_freq_factor;      // llama3
    float high_freq_factor;     // llama3
    int original_max_position;  // llama3: original_max_position_embeddings
} RopeScaling;

typedef struct {
    int vocab_size;     // V
    int dim;            // hidden_size D
    int ffn_dim;        // intermediate_size F
    int n_layers;       // L
    int n_heads;        // H (query heads)
    int n_kv_heads;     // KV heads (H for MHA; H / group for GQA)
    int head_dim;       // hd (D / H unless the config says otherwise)
    int max_position;   // max_position_embeddings
    float rms_eps;
    float rope_theta;
    RopeScaling rope_scaling;
    bool tie_embeddings; // lm_head shares the token embedding
    int bos_token_id, eos_token_id; // -1 when unknown
} LlamaConfig;

struct LlamaLayer {
    Tensor attn_norm; // [D]
    Tensor wq;        // [H*hd, D]
    Tensor wk;        // [KV*hd, D]
    Tensor wv;        // [KV*hd, D]
    Tensor wo;        // [D, H*hd]
    Tensor mlp_norm;  // [D]
    Tensor w_gate;    // [F, D]
    Tensor w_up;      // [F, D]
    Tensor w_down;    // [D, F]
};

// The active units of one layer when a model runs as a prefix view (an
// elastic level after reordering): the first n_kv KV groups (with their
// n_kv * H/KV query heads) and the first ffn FFN channels. A full layer is
// {KV, F}. Anchor layers stay full.
typedef struct {
    int n_kv;  // active KV heads (= active query heads for MHA)
    int ffn;   // active FFN channels
} LlamaWidth;

// The sub-blocks of a layer that run in a view (LlamaView.blocks): a skipped
// sub-block leaves the residual stream as it is (its contribution is zero, as
// in the artifact's patched transformers); a layer with neither is the identity.
enum { LAYER_ATTN = 1, LAYER_FFN = 2, LAYER_ALL = LAYER_ATTN | LAYER_FFN };

typedef struct LlamaLayer LlamaLayer;

// Contextual sparsity (Deja Vu) for the FFN of one layer: a small predictor
// scores the F neurons from the FFN input (the post-attention RMSNorm output),
// per token, and only the k with the highest scores run: their gate and up
// rows and down columns (op_ffn_sparse). The predictor is
// Linear(D -> R) + ReLU + Linear(R -> F); a sigmoid would not change the top k.
typedef struct {
    Tensor w1;        // [R, D]
    Tensor b1;        // [R]
    Tensor w2;        // [F, R]
    Tensor b2;        // [F]
    Tensor w_down_t;  // [F, D] the layer's down projection transposed: a kept neuron's down weights are one row
} FfnPredictor;

typedef struct {
    int k;                      // neurons kept per token in every sparse layer (1..F)
    const FfnPredictor *layers; // [L]; a layer whose w1 holds no data runs its FFN dense
} FfnSparsity;

// How a session runs the model: per layer, the active units (an elastic level),
// the sub-blocks that run (dropped layers, attention or FFN blocks) and the
// weights it uses (its own, or e.g. a merged layer); the LoRA adapters on top
// (shaped for those widths; an adapter on a skipped sub-block is not used). A
// view only points at memory: switching views copies and allocates nothing.
struct LoraSet;
typedef struct {
    const LlamaWidth *widths;         // [L]; NULL = every unit
    const struct LoraSet *lora;       // NULL = no adapters
    const uint8_t *blocks;            // [L] LAYER_ATTN | LAYER_FFN bits; NULL = every sub-block runs
    const LlamaLayer *const *weights; // [L] weights layer l uses, shaped, typed and placed like the
                                      // model's layers; NULL (or a NULL entry) = the model's own
    const FfnSparsity *sparse;        // contextual sparsity of the FFNs; NULL = dense. A sparse layer runs
                                      // its whole FFN width with its own weights and no FFN adapters
} LlamaView;

typedef enum { FORMAT_HF = 0, FORMAT_GGUF } ModelFormat;

// Layer weights in a view: rows of q/k/v/gate/up and columns of o/down, all
// prefixes of the (reordered) full weights, with the widths they imply.
typedef struct {
    int nq, kv, ffn;    // active query heads, KV heads, FFN channels
    int64_t qd, kvd;    // nq * head_dim, kv * head_dim
    Tensor wq, wk, wv, wo, w_gate, w_up, w_down;
} LlamaLayerView;

typedef struct LlamaStorage LlamaStorage; // mapped files and owned buffers

typedef struct {
    LlamaConfig cfg;
    Tensor tok_embd;      // [V, D] (its dtype is the matrices' dtype: llama_weights_dtype)
    LlamaLayer *layers;   // [L]
    Tensor final_norm;    // [D]
    Tensor lm_head;       // [V, D]; the same memory as tok_embd when tied
    float *inv_freq;      // [hd/2] rotary frequencies, scaling applied
    Tensor inv_freq_dev;  // the same on the model's device when that is not the CPU (f32)
    ModelFormat format;
    char source_dtype[16];// dtype(s) of the stored weights, e.g. "bf16", "q4_1+q8_0+f32"
    char tokenizer_kind[64]; // what the checkpoint carries, "" if none
    LlamaStorage *storage;
    Device dev;           // where the weights are (llama_to_device); the CPU after loading
} LlamaModel;

// Loads from a Hugging Face directory (config.json + model.safetensors or a
// sharded index) or a .gguf file. On failure nothing is left allocated and the
// status message names the file and the tensor or key at fault.
Status llama_load(LlamaModel *m, const char *path);
void llama_free(LlamaModel *m);
// Moves the weights to dev: matrices (embedding, projections, lm_head) in
// weight_dtype (bf16 for bf16/f32 checkpoints, f16 for f16 ones), norms in f32.
// The CPU copies are released. A no-op for the CPU.
Status llama_to_device(LlamaModel *m, Device dev, DType weight_dtype);
// CPU weight formats for inference. llama_convert_weights converts the
// matrices of an f32 CPU model (the token embedding, the 7 projections of
// every layer, lm_head) once to dt: DT_BF16 (round to nearest even) or DT_Q8_0
// (blocks of 32 int8 with an f16 scale, runtime/q8.h); DT_F32 is a no-op.
// Norms stay f32. The embedding lookup widens rows of the converted table, so
// no f32 copy is kept (a tied head and embedding share one table). Convert
// after reordering (artifact_apply): views of an elastic level then take row
// and column prefixes of the converted matrices, and LoRA adapters stay f32 on
// top. Training, reordering, export and llama_to_device need f32 weights and
// refuse a converted model (llama_require_f32). On failure some matrices may
// already be converted: free the model.
Status llama_convert_weights(LlamaModel *m, DType dt);
DType llama_weights_dtype(const LlamaModel *m);        // DT_F32, DT_BF16 or DT_Q8_0 on the CPU
const char *llama_weights_name(DType dt);              // "f32", "bf16", "q8"
Status llama_weights_parse(const char *name, DType *dt); // the inverse; ST_USAGE for anything else
// ST_UNSUPPORTED, naming what, unless the model's CPU weights are f32.
Status llama_require_f32(const LlamaModel *m, const char *what);
// Bytes the weights take in memory in their format (matrices and norms).
size_t llama_weights_bytes(const LlamaModel *m);
// Puts an extra layer (f32 on the CPU, e.g. a merged layer a view substitutes)
// in the model's matrix format and on its device, as llama_convert_weights
// and llama_to_device put the model's own: its 7 projection matrices are
// replaced by converted copies; its norms must already be where the model's
// are (typically views of a model layer's norms).
Status llama_layer_like_model(const LlamaModel *m, LlamaLayer *ly);
// The same for one extra f32 CPU tensor t (e.g. a contextual-sparsity
// predictor): a matrix goes to the matrices' format, a vector (a bias) stays
// f32; both go to the model's device. t is replaced (its memory freed, also
// when it was a view that did not own it: then nothing is freed).
Status llama_tensor_like_model(const LlamaModel *m, Tensor *t, bool matrix);
// A model of config c with random weights on the CPU (benchmarks and tests).
Status llama_init_random(LlamaModel *m, const LlamaConfig *c, uint64_t seed);
// Writes the model (as it is in memory, e.g. reordered) as a Hugging Face
// directory: config.json + model.safetensors in fp32.
Status llama_export_hf(const LlamaModel *m, const char *dir);
// The same with only the layers keep[0..n_keep) (ascending indices in
// 0..L-1, at least one): kept layer keep[i] becomes layer i and config.json
// says num_hidden_layers = n_keep. The whole model when keep is NULL.
Status llama_export_hf_layers(const LlamaModel *m, const int *keep, int n_keep, const char *dir);
int64_t llama_param_count(const LlamaModel *m);

// Layer weights ly (or anything shaped like them, e.g. gradients) seen with
// widths w (NULL = the whole layer). No copies.
LlamaLayerView llama_layer_view(const LlamaConfig *c, const LlamaLayer *ly, const LlamaWidth *w);
// Widths within the model's and adapters shaped for them (either may be NULL).
Status llama_view_check(const LlamaConfig *c, const LlamaWidth *widths, const struct LoraSet *lora);
// The whole view against the model: widths and adapters as above, block bits
// within LAYER_ALL, substitute weights shaped, typed and placed like the model's.
Status llama_view_validate(const LlamaModel *m, const LlamaView *v);

// Rotary inverse frequencies for a config (HF semantics): theta^(-2i/hd),
// then the config's rope scaling. out has head_dim/2 entries.
void llama_rope_inv_freq(const LlamaConfig *c, float *out);

// ---- running ---------------------------------------------------------------

typedef struct {
    Tensor x, xn;          // [N, D] residual stream (f32), normalised input (act_dtype)
    Tensor q, att;         // [N, H*hd] queries (f32), attention output (act_dtype)
    Tensor k_new, v_new;   // [N, KV*hd] the new tokens' keys and values before they go into the cache
    Tensor gate, up;       // [N, F]
    Tensor act;            // [N, F] silu(gate) * up when activations are 16-bit (else written into gate)
    Tensor last;           // [n_seq, D] final hidden state of each sequence's last token
    Tensor lora_u;         // [N * r] adapter intermediate A x (grown when a view has adapters)
    Tensor pred_h;         // [N, R] contextual sparsity: the predictor's hidden layer (f32)
    Tensor pred_s;         // [N, F] its neuron scores (f32)
    Tensor pred_idx;       // [N, k] the kept neurons of each token (i32)
    Tensor logits;         // device sessions: logits formed here before the copy to a host tensor
} LlamaScratch;

typedef struct LlamaSession {
    int n_seq;             // sequences in the batch
    int cap;               // KV capacity per sequence (tokens; beyond base_n when attached)
    int n_past;            // tokens already in the cache (the same for every sequence)
    int n_layers;          // entries in k and v
    Tensor *k, *v;         // [L] each [n_seq*cap, KV*hd]
    int32_t *mask;         // [n_seq*cap] 1 = real token, 0 = padding
    int32_t *pos;          // [n_seq*cap] this forward's positions (its first n_seq*T)
    Tensor mask_dev;       // device sessions: mask mirrored on the device [n_seq*cap] i32
    Tensor idx_dev;        // device sessions: this forward's token ids, then positions [2*n_seq*cap] i32
    LlamaScratch s;
    int scratch_tokens;    // rows the scratch holds
    const struct LlamaSession *base; // shared prefix (llama_session_attach), or NULL
    int base_n;            // its length in tokens
    Device dev;
    DType act_dtype;       // xn, att, act, last: f32 on the CPU, the weights' dtype on a device
    const LlamaView *view; // NULL = the full model; see llama_session_set_view
    int lora_rank;         // adapter rank the scratch has room for (grows, never shrinks)
    int pred_rank, pred_k; // contextual sparsity: predictor width R and kept neurons k the scratch has room for
    // Called in every layer that runs its FFN with the FFN input xn [N, D] and
    // the gate projection gate [N, F'] (before the activation), e.g. to record
    // which neurons fire (contextual-sparsity data); NULL = none. A sparse
    // layer forms no gate projection and is not reported.
    void (*ffn_probe)(void *ctx, int layer, const Tensor *xn, const Tensor *gate);
    void *probe_ctx;
} LlamaSession;

Status llama_session_init(LlamaSession *s, const LlamaModel *m, int n_seq, int cap, Device dev);
void llama_session_free(LlamaSession *s);
void llama_session_reset(LlamaSession *s);
// Keeps only the first n cached tokens (n <= n_past); later ones are overwritten.
void llama_session_truncate(LlamaSession *s, int n);
// Makes the first n cached tokens of base (a one-sequence session of the same
// model) the first n tokens of every sequence of dst, without copying: dst's
// attention reads them from base, which must stay unchanged while dst is used.
// dst's n_past becomes n; dst->cap counts only dst's own tokens after them.
// Reset clears it.
Status llama_session_attach(LlamaSession *dst, const LlamaSession *base, int n);
// Runs later forwards in view v (NULL = the full model). The view and what it
// points to must outlive its use. Cached tokens computed in another view are
// not recomputed: reset the session when the level changes between requests.
// Fails when the widths do not fit the model or the adapters do not fit the widths.
Status llama_session_set_view(LlamaSession *s, const LlamaModel *m, const LlamaView *v);

typedef enum {
    LOGITS_ALL = 0,  // logits [n_seq*T, V]: every new position
    LOGITS_LAST,     // logits [n_seq, V]: the last new position of each sequence
    LOGITS_NONE,     // only fill the cache
} LogitsMode;

// Appends T tokens per sequence and computes their logits. logits may be on
// the session's device or, for a device session, a contiguous host tensor
// (formed on the device and copied back).
//   ids  [n_seq*T] row-major (sequence-major); mask [n_seq*T] or NULL (all real).
// Left padding: give pads mask 0 (any id in range). Positions are n_past + t
// for every sequence, as Hugging Face computes them when position_ids are not
// given; rotary attention only sees position differences, so this equals
// per-sequence positions that skip the pads.
Status llama_forward(const LlamaModel *m, LlamaSession *s, const int32_t *ids, const int32_t *mask, int T,
                     LogitsMode mode, Tensor *logits);

// Per-token log-probabilities of the next token: lp[b*(T-1) + t] =
// log p(ids[b*T + t + 1] | ids[b*T .. b*T + t]) from logits [n_seq*T, V].
Status llama_token_logprobs(const Tensor *logits, const int32_t *ids, int n_seq, int T, float *lp);

// Greedy decoding of n_steps tokens for a (left-padded) batch of prompts.
// out [n_seq*n_steps]. Stops early for no one: eos is generated like any token.
// view: an elastic level / adapters to decode with (NULL = the full model).
Status llama_generate_greedy(const LlamaModel *m, const LlamaView *view, const int32_t *ids, const int32_t *mask,
                             int n_seq, int T, int n_steps, Device dev, int32_t *out);

#endif
