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
// prefix of heads or FFN channels is used without a copy.
#ifndef ELASTILM_OPS_H
#define ELASTILM_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/tensor.h"

// out[n, :] = table[ids[n], :]                  out [N, D], table [V, D]; ids in [0, V)
void op_embedding(Tensor *out, const Tensor *table, const int32_t *ids);

// out[n, :] = x[n, :] / sqrt(mean(x[n, :]^2) + eps) * w     x, out [N, D], w [D]
void op_rmsnorm(Tensor *out, const Tensor *x, const Tensor *w, float eps);

// out = x @ w^T      x [M, K], w [N, K] (a PyTorch Linear weight), out [M, N]
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

// out = silu(gate) * up                          all [N, F]
void op_swiglu(Tensor *out, const Tensor *gate, const Tensor *up);

// out = a + b                                    all [N, D]; out may alias a or b
void op_add(Tensor *out, const Tensor *a, const Tensor *b);

// out[n, :] = x[n, :] - logsumexp(x[n, :])       x, out [N, V]; out may alias x
void op_log_softmax(Tensor *out, const Tensor *x);

// Whether ops can run on tensors of this device kind in this build.
bool ops_backend_available(DeviceKind kind);

// The number of CPU threads the ops use (OpenMP and OpenBLAS). 0 = all cores.
void ops_set_threads(int n);
int ops_get_threads(void);

#endif
