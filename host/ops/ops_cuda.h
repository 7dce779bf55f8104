// ops_cuda.h: the CUDA implementations behind ops.h (cuda/*.cu), built when
// nvcc is found (ELASTILM_CUDA). The contract is ops.h's, with these choices:
//  - activations (out, x, q, k, v, logits, ...) are f32 in device memory and
//    may be strided views (row stride >= columns), exactly as on the CPU, with
//    one exception: what a matmul reads next may be 16-bit. rmsnorm's, swiglu's,
//    attention's (varlen too), layernorm's, scale_shift's and activation's out
//    may be bf16 or f16 (rounded to nearest even), and
//    matmul's x may be bf16/f16 when w has that dtype (used as it is) or is f32
//    (widened first). The model writes them in the weights' dtype, so each is
//    rounded once where it is written instead of before every matmul;
//  - weights (matmul's w, the embedding table) are bf16, f16 or f32 device
//    tensors; matmuls run on cuBLASLt with fp32 accumulation, the activation
//    operand in the weight's dtype (written so, or converted first; bf16 x
//    bf16 -> f32);
//  - norm weights (and layernorm's, scale_shift's and bias_add's w, b) are f32
//    device tensors;
//  - everything else computes in fp32, except the prefill attention on the
//    tensor cores (cuda_attention_kernel_for below), whose operands are TF32:
//    ~1e-3 relative against the fp32 CPU, below the bf16 weights' own error;
//  - the small arrays beside the tensors (token ids, positions, key masks,
//    rotary frequencies, varlen attention's cu) are device pointers (ops.h):
//    the model uploads them once per forward; only cuda_gather_logprob takes
//    and returns host arrays;
//  - every call is on the current device's default stream, ordered with the
//    others; errors of the CUDA runtime abort with a message (a failing
//    kernel launch is a bug, not a user error).
#ifndef ELASTILM_OPS_CUDA_H
#define ELASTILM_OPS_CUDA_H

#include "ops.h"

#ifdef __cplusplus
extern "C" {
#endif

void cuda_embedding(Tensor *out, const Tensor *table, const int32_t *ids);
void cuda_rmsnorm(Tensor *out, const Tensor *x, const Tensor *w, float eps);
void cuda_matmul(Tensor *out, const Tensor *x, const Tensor *w);
void cuda_matmul_add(Tensor *out, const Tensor *x, const Tensor *w, float alpha);
void cuda_rope(Tensor *x, const int32_t *pos, const float *inv_freq, int n_heads, int head_dim);
void cuda_attention(Tensor *out, const Tensor *q, const Tensor *k, const Tensor *v, const int32_t *kmask,
                    const AttentionShape *s, const SharedKV *shared);
// Which attention kernel cuda_attention runs (attention.cu): the tensor-core
// flash kernel (TF32 operands, fp32 accumulation; head_dim 16, 32, 64, 80, 96 or
// 128 on sm_80+) when a (sequence, kv head) has at least 64 query rows, else the
// CUDA-core kernel (fp32; decode, short prompts, other head sizes). The
// environment variable ELASTILM_CUDA_ATTENTION=simt|mma, or cuda_attention_force
// (tests, benchmarks; AUTO hands the choice back), overrides it where the head
// size allows. Without an override, a shape with >= 64 rows goes to the tensor
// cores when its blocks fill the GPU or n_past < 4 T (a prompt); the others
// keep the CUDA-core kernel's key splits.
typedef enum { CUDA_ATTENTION_AUTO = 0, CUDA_ATTENTION_SIMT, CUDA_ATTENTION_MMA } CudaAttentionKernel;
void cuda_attention_force(CudaAttentionKernel k);
CudaAttentionKernel cuda_attention_kernel_for(const AttentionShape *s);
void cuda_copy(Tensor *dst, const Tensor *src);
void cuda_swiglu(Tensor *out, const Tensor *gate, const Tensor *up);
void cuda_add(Tensor *out, const Tensor *a, const Tensor *b);
void cuda_log_softmax(Tensor *out, const Tensor *x);

// Encoders (encoder.cu): the forwards of ops.h's "encoders" section, and the
// varlen attention's forward (causal or bidirectional; lse may be NULL, else an
// f32 device tensor [n_heads, N]; s->cu a device array). Everything in fp32, the
// attention on the CUDA cores (the same arithmetic as cuda_attention's SIMT kernel).
void cuda_layernorm(Tensor *out, const Tensor *x, const Tensor *w, const Tensor *b, float eps);
void cuda_scale_shift(Tensor *out, const Tensor *x, const Tensor *w, const Tensor *b);
void cuda_bias_add(Tensor *x, const Tensor *b);
void cuda_activation(Tensor *out, const Tensor *x, Activation act);
void cuda_attention_varlen(Tensor *out, Tensor *lse, const Tensor *q, const Tensor *k, const Tensor *v,
                           const VarlenShape *s);
// log p(target) of each row: out[r] = logits[r, targets[r]] - logsumexp(logits[r, :]);
// out is a host array [rows]; targets a host array (negative = skip, out[r] = 0).
void cuda_gather_logprob(float *out, const Tensor *logits, const int32_t *targets);

// Sum over rows with targets[r] >= 0 of -log p(targets[r]) (op_cross_entropy's
// loss without dlogits), in double; targets a host array.
double cuda_cross_entropy_sum(const Tensor *logits, const int32_t *targets);

// Contextual sparsity (sparse_ffn.cu): ops.h's op_topk_rows and op_ffn_sparse.
//  - cuda_topk_rows: one block per row, an exact radix select on the scores'
//    order-preserving 32-bit keys (4 passes of 8 bits over the row in global
//    memory), then a compaction in index order; no limit on F beyond int32, the
//    same selection as the CPU bit for bit (ties to the lower index, NaN = -inf).
//  - cuda_ffn_sparse: phase 1 one warp per (row, selected neuron): both dot
//    products over D in fp32, h = silu(g) * u into a workspace [N, k]; phase 2
//    one thread per (row, column, slice of the k neurons), a fixed order of
//    summation; with several slices (decode, to fill the GPU) a phase 3 adds the
//    slices' partial sums in order. Deterministic (no atomics). x f32, bf16 or
//    f16 with weights of any one of f32, bf16, f16 (the three of one dtype);
//    an index outside [0, F) traps the kernel. For decode and short steps: the weight rows are read
//    once per (row, neuron), with no reuse across rows as a GEMM has.
void cuda_topk_rows(Tensor *idx, const Tensor *scores);
void cuda_ffn_sparse(Tensor *out, const Tensor *x, const Tensor *w_gate, const Tensor *w_up, const Tensor *w_down_t,
                     const Tensor *idx);

// Copies a device tensor (any strides) to the host, converting to f32.
void cuda_copy_to_host_f32(float *dst, const Tensor *src);
// Sets a device tensor to zero.
void cuda_zero(Tensor *t);

// Device scratch shared by the ops (index copies, converted operands); grows on
// demand and is kept for the process. Returns device memory of at least bytes.
void *cuda_workspace(int slot, size_t bytes);

#ifdef __cplusplus
}
#endif

#endif
