// ops.h: the operations the models are written against.
//
// Model code calls these and never branches on the device: each op looks at
// its output tensor's device and runs the CPU implementation (ops_cpu.c:
// fp32, OpenBLAS sgemm, OpenMP) or the CUDA one (cuda/, when built).
// Shapes are checked with assertions: a mismatch here is a bug in the caller,
// never a user error (user input is validated before it reaches an op).
//
// Conventions: activations are 2-d [rows, features] with rows = tokens; any
// 2-d operand may be a strided view (row stride >= columns), which is how a
// prefix of heads or FFN channels is used without a copy. The small arrays an
// op reads beside its tensors (token ids, positions, rotary frequencies, key
// masks) live on the device of the op's output: host memory for the CPU,
// device memory for CUDA, so that a model uploads them once per forward and
// every layer's ops read the same copy.
#ifndef ELASTILM_OPS_H
#define ELASTILM_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/tensor.h"

// out[n, :] = table[ids[n], :]                  out [N, D], table [V, D]; ids in [0, V),
// or negative for a row of zeros (MobileBERT's trigram edges)
// (on the CPU table may be bf16 or q8_0: its rows are widened to f32)
void op_embedding(Tensor *out, const Tensor *table, const int32_t *ids);

// out[n, :] = x[n, :] / sqrt(mean(x[n, :]^2) + eps) * w     x, out [N, D], w [D]
void op_rmsnorm(Tensor *out, const Tensor *x, const Tensor *w, float eps);

// out = x @ w^T      x [M, K], w [N, K] (a PyTorch Linear weight), out [M, N]
// On the CPU, w may be f32, bf16 or q8_0 (low-bit weights: ops_cpu_lowbit.c;
// a q8_0 w may be a view of a column prefix that ends inside a block); on a
// device, f32, bf16 or f16. x and out are f32 on the CPU.
void op_matmul(Tensor *out, const Tensor *x, const Tensor *w);

// Rotary embedding in place, Hugging Face "rotate_half" layout: within each
// head of size head_dim, element i pairs with i + head_dim/2.
// x [N, n_heads * head_dim]; pos [N]; inv_freq [head_dim / 2].
void op_rope(Tensor *x, const int32_t *pos, const float *inv_freq, int n_heads, int head_dim);

// Causal attention of T new queries per sequence over a key/value cache.
//   q    [n_seq * T, n_heads * head_dim]           (queries of the new tokens)
//   k, v [n_seq * cap, n_kv_heads * head_dim]      (cache; sequence s owns rows [s*cap, (s+1)*cap))
//   kmask[n_seq * cap]                             (1 = real token, 0 = padding)
//   out  [n_seq * T, n_heads * head_dim]
// Query t of sequence s sits at cache index n_past + t and sees the keys
// j <= n_past + t with kmask[j] = 1. Query head h reads kv head h / (n_heads / n_kv_heads).
// A query that sees no key (a padding position) gets zeros.
typedef struct {
    int n_seq, T, n_past, cap;
    int n_heads, n_kv_heads, head_dim;
} AttentionShape;
// A prefix of keys that every sequence shares, read from another cache
// instead of each sequence's own rows (shared-prompt scoring without copies).
typedef struct {
    const Tensor *k, *v;   // [rows, n_kv_heads * head_dim]
    const int32_t *mask;   // [rows]
    int64_t row0;          // the prefix's first row in k, v, mask
    int n;                 // keys [0, n) of every sequence come from here
} SharedKV;
// shared may be NULL; with it, sequence s's own rows of k, v and kmask start at
// key n: row s*cap + i holds key n + i.
void op_attention(Tensor *out, const Tensor *q, const Tensor *k, const Tensor *v, const int32_t *kmask,
                  const AttentionShape *s, const SharedKV *shared);

// dst = src element by element: the same shape (up to TENSOR_MAX_DIMS dims, any
// strides) and device; src f32, dst f32 (or bf16/f16, rounded to nearest even).
// How new keys and values land in each sequence's rows of a cache.
void op_copy(Tensor *dst, const Tensor *src);

// out = silu(gate) * up                          all [N, F]
void op_swiglu(Tensor *out, const Tensor *gate, const Tensor *up);

// out = a + b                                    all [N, D]; out may alias a or b
void op_add(Tensor *out, const Tensor *a, const Tensor *b);

// out[n, :] = x[n, :] - logsumexp(x[n, :])       x, out [N, V]; out may alias x
void op_log_softmax(Tensor *out, const Tensor *x);

// ---- encoders (BERT, MobileBERT) ------------------------------------------

// out[n, :] = (x[n, :] - mean) / sqrt(var + eps) * w + b   (biased variance, as
// torch.nn.LayerNorm)                            x, out [N, D], w, b [D]; out may alias x
void op_layernorm(Tensor *out, const Tensor *x, const Tensor *w, const Tensor *b, float eps);

// out[n, :] = x[n, :] * w + b  (MobileBERT's NoNorm; b may be NULL)   x, out [N, D], w, b [D]
void op_scale_shift(Tensor *out, const Tensor *x, const Tensor *w, const Tensor *b);

// x[n, :] += b                                   x [N, D] (any row stride), b [D]
void op_bias_add(Tensor *x, const Tensor *b);

typedef enum {
    ACT_GELU = 0, // exact: x * 0.5 * (1 + erf(x / sqrt(2)))  (transformers' "gelu")
    ACT_RELU,
    ACT_TANH,     // BERT's pooler
} Activation;
// out = act(x) element by element                x, out [N, F]; out may alias x
void op_activation(Tensor *out, const Tensor *x, Activation act);

// ---- contextual sparsity (Deja Vu FFN) ------------------------------------
//
// A small predictor scores every FFN neuron of a layer for each token; only the
// k best-scored neurons of a token run (Deja Vu, Liu et al. 2023). The CPU
// implementation is ops_cpu_sparse.c, the CUDA one cuda/sparse_ffn.cu.

// idx[n, :] = the indices of the k largest scores[n, :], written in ASCENDING
// index order (so that op_ffn_sparse reads weight rows in memory order). Ties go
// to the lower index, a NaN counts as -inf and -0 equals +0, so that every
// backend selects the same set.     scores [N, F] f32 (any row stride),
// idx [N, k] i32 (any row stride) on the same device, 1 <= k <= F
void op_topk_rows(Tensor *idx, const Tensor *scores);

// The SwiGLU FFN over a subset of its neurons, added into out:
//   out[n, :] += sum over j in idx[n, :] of silu(x[n] . w_gate[j]) * (x[n] . w_up[j]) * w_down_t[j, :]
//   x [N, D]; w_gate, w_up [F, D] (PyTorch Linear layout); w_down_t [F, D], the
//   down projection TRANSPOSED (row j = column j of down_proj.weight [D, F]),
//   so a neuron's down weights are one contiguous row; idx [N, k] i32 in [0, F)
//   (k may be 0; an index listed twice counts twice); out [N, D] f32.
// Every operand may be a strided view (a row prefix of the weights: an elastic
// level). On the CPU x and the weights are f32; on a device the weights are
// f32, bf16 or f16 and x f32, bf16 or f16 (as op_matmul's activations there),
// with fp32 accumulation. With k = F (idx = 0..F-1) this is the dense FFN
// x @ w_gate^T, x @ w_up^T, swiglu, then out += h @ w_down.
void op_ffn_sparse(Tensor *out, const Tensor *x, const Tensor *w_gate, const Tensor *w_up, const Tensor *w_down_t,
                   const Tensor *idx);

// ---- training ------------------------------------------------------------
//
// Backward ops ACCUMULATE into the gradients of their inputs (dx += ...), as
// llm.c does, so that a residual stream's gradient collects its branches; the
// caller zeroes gradient buffers. Three exceptions assign instead: rope's
// backward (in place on the gradient), cross-entropy's dlogits (it may alias
// the logits) and dropout (the same op forward and backward). Any gradient pointer documented "may be
// NULL" is simply not formed (e.g. no weight gradient when only LoRA trains).

// out += alpha * x @ w^T      (same shapes and weight dtypes as op_matmul; a LoRA
// update, and the residual add of the o and down projections)
void op_matmul_add(Tensor *out, const Tensor *x, const Tensor *w, float alpha);

// Backward of out = alpha * x @ w^T (f32 w):
//   dx += alpha * dout @ w        dx [M, K] (may be NULL)
//   dw += alpha * dout^T @ x      dw [N, K] (may be NULL)
void op_matmul_backward(Tensor *dx, Tensor *dw, const Tensor *dout, const Tensor *x, const Tensor *w, float alpha);

// dtable[ids[n], :] += dout[n, :]                dtable [V, D], dout [N, D]; negative ids are skipped
void op_embedding_backward(Tensor *dtable, const Tensor *dout, const int32_t *ids);

// Backward of op_rmsnorm (x is the forward input): dx [N, D] += ..., dw [D] += ... (may be NULL).
void op_rmsnorm_backward(Tensor *dx, Tensor *dw, const Tensor *dout, const Tensor *x, const Tensor *w, float eps);

// Backward of op_rope, in place on the gradient (the inverse rotation):
// dx [N, n_heads * head_dim]; pos and inv_freq as in the forward.
void op_rope_backward(Tensor *dx, const int32_t *pos, const float *inv_freq, int n_heads, int head_dim);

// Backward of op_swiglu (out = silu(gate) * up): dgate, dup [N, F] += ...
void op_swiglu_backward(Tensor *dgate, Tensor *dup, const Tensor *dout, const Tensor *gate, const Tensor *up);

// Causal self-attention over packed sequences of different lengths (training;
// no padding, no cache). Sequence s owns rows [cu[s], cu[s+1]) of q, k, v and
// out; a query sees the keys of its own sequence at or before it. Query head h
// reads kv head h / (n_heads / n_kv_heads) (Hugging Face's repeat_kv).
//   q, out [N, n_heads * head_dim]; k, v [N, n_kv_heads * head_dim]
//   lse    [n_heads, N] f32: log-sum-exp of each query's scaled scores, for the
//          backward (may be NULL when no backward follows)
// q, k, v may be strided views (a prefix of heads). Scale 1/sqrt(head_dim).
// With bidirectional set (encoders), a query sees every key of its sequence.
typedef struct {
    const int32_t *cu; // [n_seq + 1] cumulative sequence starts; cu[0] = 0, cu[n_seq] = N
    int n_seq;
    int n_heads, n_kv_heads, head_dim;
    bool bidirectional;
} VarlenShape;
void op_attention_varlen(Tensor *out, Tensor *lse, const Tensor *q, const Tensor *k, const Tensor *v,
                         const VarlenShape *s);
// Its backward from the forward's out and lse (scores are recomputed):
// dq [N, H*hd], dk, dv [N, KV*hd] += ...
void op_attention_varlen_backward(Tensor *dq, Tensor *dk, Tensor *dv, const Tensor *dout, const Tensor *q,
                                  const Tensor *k, const Tensor *v, const Tensor *out, const Tensor *lse,
                                  const VarlenShape *s);

// Inverted dropout with a counter-based mask, so that the same (seed, row,
// column) drops the same element on every backend and on every rank:
// out[n, j] = keep(seed, n, j) ? x[n, j] / (1 - p) : 0, keep with probability 1 - p.
// out may alias x. The backward is the same op on the gradient with the same seed.
// n is the row within the tensor given: callers that split rows over ranks or
// calls fold the split into the seed. The exact keep test and scaling (x * (1/(1-p)),
// as torch) are in dropout_hash.h, which a CUDA kernel must reproduce bit for bit.
void op_dropout(Tensor *out, const Tensor *x, float p, uint64_t seed);

// Cross-entropy of each row's logits against its target, ignoring rows whose
// target is negative (Hugging Face's -100). Returns the SUM of the losses over
// the rows that count (in double). When dlogits is not NULL it receives
// scale * (softmax(logits) - onehot(target)) for counted rows and 0 for ignored
// ones; dlogits may alias logits (the logits are then consumed).
//   logits, dlogits [N, V]; targets [N]
// On CUDA only the loss (dlogits NULL) exists; targets is then a host array, as
// the result is a host value.
double op_cross_entropy(Tensor *dlogits, const Tensor *logits, const int32_t *targets, float scale);

// Backward of op_layernorm (x is the forward input): dx [N, D] += ..., dw, db [D] += ... (may be NULL).
void op_layernorm_backward(Tensor *dx, Tensor *dw, Tensor *db, const Tensor *dout, const Tensor *x,
                           const Tensor *w, float eps);
// Backward of op_scale_shift: dx += dout * w; dw += sum_n dout * x; db += sum_n dout (each may be NULL).
void op_scale_shift_backward(Tensor *dx, Tensor *dw, Tensor *db, const Tensor *dout, const Tensor *x,
                             const Tensor *w);
// Backward of op_bias_add: db [D] += sum over rows of dout [N, D].
void op_bias_backward(Tensor *db, const Tensor *dout);
// Backward of op_activation (x is the forward input): dx [N, F] += dout * act'(x).
void op_activation_backward(Tensor *dx, const Tensor *dout, const Tensor *x, Activation act);

// Sum of squares of all elements (in double), for gradient-norm clipping.
double op_sumsq(const Tensor *x);
// x *= alpha (in place)
void op_scale(Tensor *x, float alpha);

// One AdamW step on 1-d parameters p with gradient g and moments m, v (all [n] f32),
// (contiguous), exactly as torch.optim.AdamW: p *= 1 - lr*wd; m = b1 m + (1-b1) g (as torch's lerp);
// v = b2 v + (1-b2) g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
    int64_t t; // 1-based step number (bias correction)
} AdamWStep;
void op_adamw(Tensor *p, const Tensor *g, Tensor *m, Tensor *v, const AdamWStep *h);

// Copies a 2-d f32 tensor (any device, any row stride) into a contiguous host array.
void op_copy_to_host(float *dst, const Tensor *src);

// Whether ops can run on tensors of this device kind in this build.
bool ops_backend_available(DeviceKind kind);

// The number of CPU threads the ops use (OpenMP and OpenBLAS). 0 = the default:
// the CPUs other processes leave free, or $ELASTILM_THREADS (runtime/threads.h).
void ops_set_threads(int n);
int ops_get_threads(void);

#endif
