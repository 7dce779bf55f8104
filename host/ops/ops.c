// Device dispatch for ops.h: an op runs where its output tensor lives. The
// CUDA backend (cuda/, ops_cuda.h) is compiled in when nvcc is found
// (ELASTILM_CUDA) and implements the inference ops (the encoders' and the
// varlen attention's forwards among them); the training ops are
// CPU-only for now, so reaching one of them with a CUDA tensor is a bug.
#include "ops.h"

#include <assert.h>
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops_cpu.h"
#include "runtime/device.h"
#include "runtime/threads.h"
#ifdef ELASTILM_CUDA
#include "ops_cuda.h"
#define ON_CUDA(t, call) do { if ((t)->dev.kind == DEV_CUDA) { call; return; } } while (0)
#else
#define ON_CUDA(t, call) do { } while (0)
#endif

#define CPU_ONLY(t) assert((t)->dev.kind == DEV_CPU && (t)->dtype == DT_F32)

void op_embedding(Tensor *out, const Tensor *table, const int32_t *ids) {
    ON_CUDA(out, cuda_embedding(out, table, ids));
    CPU_ONLY(out);
    cpu_embedding(out, table, ids);
}
void op_rmsnorm(Tensor *out, const Tensor *x, const Tensor *w, float eps) {
    ON_CUDA(out, cuda_rmsnorm(out, x, w, eps));
    CPU_ONLY(out);
    cpu_rmsnorm(out, x, w, eps);
}
void op_matmul(Tensor *out, const Tensor *x, const Tensor *w) {
    ON_CUDA(out, cuda_matmul(out, x, w));
    CPU_ONLY(out);
    cpu_matmul(out, x, w);
}
void op_rope(Tensor *x, const int32_t *pos, const float *inv_freq, int n_heads, int head_dim) {
    ON_CUDA(x, cuda_rope(x, pos, inv_freq, n_heads, head_dim));
    CPU_ONLY(x);
    cpu_rope(x, pos, inv_freq, n_heads, head_dim);
}
void op_attention(Tensor *out, const Tensor *q, const Tensor *k, const Tensor *v, const int32_t *kmask,
                  const AttentionShape *s, const SharedKV *shared) {
    ON_CUDA(out, cuda_attention(out, q, k, v, kmask, s, shared));
    CPU_ONLY(out);
    cpu_attention(out, q, k, v, kmask, s, shared);
}
void op_copy(Tensor *dst, const Tensor *src) {
    assert(dst->dev.kind == src->dev.kind && dst->dev.index == src->dev.index && src->dtype == DT_F32);
    ON_CUDA(dst, cuda_copy(dst, src));
    Status st = tensor_copy_convert(dst, src);
    assert(st == ST_OK);
    (void)st;
}
void op_swiglu(Tensor *out, const Tensor *gate, const Tensor *up) {
    ON_CUDA(out, cuda_swiglu(out, gate, up));
    CPU_ONLY(out);
    cpu_swiglu(out, gate, up);
}
void op_add(Tensor *out, const Tensor *a, const Tensor *b) {
    ON_CUDA(out, cuda_add(out, a, b));
    CPU_ONLY(out);
    cpu_add(out, a, b);
}
void op_log_softmax(Tensor *out, const Tensor *x) {
    ON_CUDA(out, cuda_log_softmax(out, x));
    CPU_ONLY(out);
    cpu_log_softmax(out, x);
}

// ---- encoders ----

void op_layernorm(Tensor *out, const Tensor *x, const Tensor *w, const Tensor *b, float eps) {
    ON_CUDA(out, cuda_layernorm(out, x, w, b, eps));
    CPU_ONLY(out);
    cpu_layernorm(out, x, w, b, eps);
}
void op_scale_shift(Tensor *out, const Tensor *x, const Tensor *w, const Tensor *b) {
    ON_CUDA(out, cuda_scale_shift(out, x, w, b));
    CPU_ONLY(out);
    cpu_scale_shift(out, x, w, b);
}
void op_bias_add(Tensor *x, const Tensor *b) {
    ON_CUDA(x, cuda_bias_add(x, b));
    CPU_ONLY(x);
    cpu_bias_add(x, b);
}
void op_activation(Tensor *out, const Tensor *x, Activation act) {
    ON_CUDA(out, cuda_activation(out, x, act));
    CPU_ONLY(out);
    cpu_activation(out, x, act);
}

// ---- contextual sparsity (Deja Vu FFN) ----

void op_topk_rows(Tensor *idx, const Tensor *scores) {
    ON_CUDA(idx, cuda_topk_rows(idx, scores));
    assert(idx->dev.kind == DEV_CPU && idx->dtype == DT_I32);
    cpu_topk_rows(idx, scores);
}
void op_ffn_sparse(Tensor *out, const Tensor *x, const Tensor *w_gate, const Tensor *w_up, const Tensor *w_down_t,
                   const Tensor *idx) {
    ON_CUDA(out, cuda_ffn_sparse(out, x, w_gate, w_up, w_down_t, idx));
    CPU_ONLY(out);
    cpu_ffn_sparse(out, x, w_gate, w_up, w_down_t, idx);
}

// ---- training ----

void op_matmul_add(Tensor *out, const Tensor *x, const Tensor *w, float alpha) {
    ON_CUDA(out, cuda_matmul_add(out, x, w, alpha));
    CPU_ONLY(out);
    cpu_matmul_add(out, x, w, alpha);
}
void op_matmul_backward(Tensor *dx, Tensor *dw, const Tensor *dout, const Tensor *x, const Tensor *w, float alpha) {
    CPU_ONLY(dout);
    cpu_matmul_backward(dx, dw, dout, x, w, alpha);
}
void op_embedding_backward(Tensor *dtable, const Tensor *dout, const int32_t *ids) {
    CPU_ONLY(dtable);
    cpu_embedding_backward(dtable, dout, ids);
}
void op_rmsnorm_backward(Tensor *dx, Tensor *dw, const Tensor *dout, const Tensor *x, const Tensor *w, float eps) {
    CPU_ONLY(dx);
    cpu_rmsnorm_backward(dx, dw, dout, x, w, eps);
}
void op_rope_backward(Tensor *dx, const int32_t *pos, const float *inv_freq, int n_heads, int head_dim) {
    CPU_ONLY(dx);
    cpu_rope_backward(dx, pos, inv_freq, n_heads, head_dim);
}
void op_swiglu_backward(Tensor *dgate, Tensor *dup, const Tensor *dout, const Tensor *gate, const Tensor *up) {
    CPU_ONLY(dgate);
    cpu_swiglu_backward(dgate, dup, dout, gate, up);
}
void op_attention_varlen(Tensor *out, Tensor *lse, const Tensor *q, const Tensor *k, const Tensor *v,
                         const VarlenShape *s) {
    ON_CUDA(out, cuda_attention_varlen(out, lse, q, k, v, s));
    CPU_ONLY(out);
    cpu_attention_varlen(out, lse, q, k, v, s);
}
void op_attention_varlen_backward(Tensor *dq, Tensor *dk, Tensor *dv, const Tensor *dout, const Tensor *q,
                                  const Tensor *k, const Tensor *v, const Tensor *out, const Tensor *lse,
                                  const VarlenShape *s) {
    CPU_ONLY(dq);
    cpu_attention_varlen_backward(dq, dk, dv, dout, q, k, v, out, lse, s);
}
void op_dropout(Tensor *out, const Tensor *x, float p, uint64_t seed) {
    CPU_ONLY(out);
    cpu_dropout(out, x, p, seed);
}
double op_cross_entropy(Tensor *dlogits, const Tensor *logits, const int32_t *targets, float scale) {
#ifdef ELASTILM_CUDA
    if (logits->dev.kind == DEV_CUDA) {
        if (dlogits) { // the loss only: no CUDA backward yet (a caller's bug, checked in every build)
            fprintf(stderr, "elastilm: op_cross_entropy: no dlogits on CUDA\n");
            abort();
        }
        return cuda_cross_entropy_sum(logits, targets); // the sum, as the CPU's (scale is dlogits')
    }
#endif
    CPU_ONLY(logits);
    return cpu_cross_entropy(dlogits, logits, targets, scale);
}
void op_layernorm_backward(Tensor *dx, Tensor *dw, Tensor *db, const Tensor *dout, const Tensor *x,
                           const Tensor *w, float eps) {
    CPU_ONLY(dout);
    cpu_layernorm_backward(dx, dw, db, dout, x, w, eps);
}
void op_scale_shift_backward(Tensor *dx, Tensor *dw, Tensor *db, const Tensor *dout, const Tensor *x,
                             const Tensor *w) {
    CPU_ONLY(dout);
    cpu_scale_shift_backward(dx, dw, db, dout, x, w);
}
void op_bias_backward(Tensor *db, const Tensor *dout) {
    CPU_ONLY(dout);
    cpu_bias_backward(db, dout);
}
void op_activation_backward(Tensor *dx, const Tensor *dout, const Tensor *x, Activation act) {
    CPU_ONLY(dx);
    cpu_activation_backward(dx, dout, x, act);
}
double op_sumsq(const Tensor *x) {
    CPU_ONLY(x);
    return cpu_sumsq(x);
}
void op_scale(Tensor *x, float alpha) {
    CPU_ONLY(x);
    cpu_scale(x, alpha);
}
void op_adamw(Tensor *p, const Tensor *g, Tensor *m, Tensor *v, const AdamWStep *h) {
    CPU_ONLY(p);
    cpu_adamw(p, g, m, v, h);
}

void op_copy_to_host(float *dst, const Tensor *src) {
    ON_CUDA(src, cuda_copy_to_host_f32(dst, src));
    CPU_ONLY(src);
    for (int64_t r = 0; r < src->shape[0]; r++)
        memcpy(dst + r * src->shape[1], tensor_row_f32(src, r), (size_t)src->shape[1] * sizeof(float));
}

bool ops_backend_available(DeviceKind kind) {
#ifdef ELASTILM_CUDA
    if (kind == DEV_CUDA) return device_count() > 0;
#endif
    return kind == DEV_CPU;
}

static int g_threads = 0;

// n <= 0: threads_default(), the CPUs not kept busy by other processes (with
// libgomp's spinning tamed by the re-exec in runtime/threads.c), so that a
// shared machine slows a run down instead of stalling it.
void ops_set_threads(int n) {
    g_threads = n > 0 ? n : threads_default();
    omp_set_num_threads(g_threads);
    openblas_set_num_threads(g_threads);
}

int ops_get_threads(void) { return g_threads > 0 ? g_threads : omp_get_max_threads(); }
