// ops_cpu.h: the CPU implementations behind ops.h: fp32, and matmuls and
// embedding lookups on bf16 / q8_0 weights (ops_cpu_lowbit.c); the encoder
// ops in ops_cpu_encoder.c, the training ops in ops_cpu_grad.c.
#ifndef ELASTILM_OPS_CPU_H
#define ELASTILM_OPS_CPU_H

#include "ops.h"

void cpu_embedding(Tensor *out, const Tensor *table, const int32_t *ids);
void cpu_rmsnorm(Tensor *out, const Tensor *x, const Tensor *w, float eps);
void cpu_matmul(Tensor *out, const Tensor *x, const Tensor *w);
void cpu_rope(Tensor *x, const int32_t *pos, const float *inv_freq, int n_heads, int head_dim);
void cpu_attention(Tensor *out, const Tensor *q, const Tensor *k, const Tensor *v, const int32_t *kmask,
                   const AttentionShape *s, const SharedKV *shared);
void cpu_swiglu(Tensor *out, const Tensor *gate, const Tensor *up);
void cpu_add(Tensor *out, const Tensor *a, const Tensor *b);
void cpu_log_softmax(Tensor *out, const Tensor *x);

// Encoders (ops_cpu_encoder.c), forward and backward.
void cpu_layernorm(Tensor *out, const Tensor *x, const Tensor *w, const Tensor *b, float eps);
void cpu_scale_shift(Tensor *out, const Tensor *x, const Tensor *w, const Tensor *b);
void cpu_bias_add(Tensor *x, const Tensor *b);
void cpu_activation(Tensor *out, const Tensor *x, Activation act);
void cpu_layernorm_backward(Tensor *dx, Tensor *dw, Tensor *db, const Tensor *dout, const Tensor *x, const Tensor *w,
                            float eps);
void cpu_scale_shift_backward(Tensor *dx, Tensor *dw, Tensor *db, const Tensor *dout, const Tensor *x,
                              const Tensor *w);
void cpu_bias_backward(Tensor *db, const Tensor *dout);
void cpu_activation_backward(Tensor *dx, const Tensor *dout, const Tensor *x, Activation act);

// Low-bit weights (ops_cpu_lowbit.c): out = alpha x w^T + beta out (beta = 0
// does not read out) for w in bf16 or q8_0, x and out f32; rows of table in
// bf16 or q8_0 widened to f32. cpu_matmul, cpu_matmul_add and cpu_embedding
// come here for such weights.
void cpu_matmul_lowbit(Tensor *out, const Tensor *x, const Tensor *w, float alpha, float beta);
void cpu_embedding_lowbit(Tensor *out, const Tensor *table, const int32_t *ids);

// The instruction sets of the low-bit decode kernels. The kernels use the
// best one the CPU has (AVX-512: BF16 for bf16 weights, VNNI for q8_0) up to
// a cap: ELASTILM_CPU_ISA=scalar|avx2|avx512 when first used, or
// cpu_lowbit_set_isa (tests, not thread-safe against running ops).
typedef enum { CPU_ISA_SCALAR = 0, CPU_ISA_AVX2, CPU_ISA_AVX512 } CpuIsa;
const char *cpu_isa_name(CpuIsa isa);
bool cpu_lowbit_isa_available(CpuIsa isa, DType w_dtype); // w_dtype: DT_BF16 or DT_Q8_0
void cpu_lowbit_set_isa(CpuIsa cap);
CpuIsa cpu_lowbit_isa(DType w_dtype); // the one in use for such weights

// Training (ops_cpu_grad.c).
void cpu_matmul_add(Tensor *out, const Tensor *x, const Tensor *w, float alpha);
void cpu_matmul_backward(Tensor *dx, Tensor *dw, const Tensor *dout, const Tensor *x, const Tensor *w, float alpha);
void cpu_embedding_backward(Tensor *dtable, const Tensor *dout, const int32_t *ids);
void cpu_rmsnorm_backward(Tensor *dx, Tensor *dw, const Tensor *dout, const Tensor *x, const Tensor *w, float eps);
void cpu_rope_backward(Tensor *dx, const int32_t *pos, const float *inv_freq, int n_heads, int head_dim);
void cpu_swiglu_backward(Tensor *dgate, Tensor *dup, const Tensor *dout, const Tensor *gate, const Tensor *up);
void cpu_attention_varlen(Tensor *out, Tensor *lse, const Tensor *q, const Tensor *k, const Tensor *v,
                          const VarlenShape *s);
void cpu_attention_varlen_backward(Tensor *dq, Tensor *dk, Tensor *dv, const Tensor *dout, const Tensor *q,
                                   const Tensor *k, const Tensor *v, const Tensor *out, const Tensor *lse,
                                   const VarlenShape *s);
void cpu_dropout(Tensor *out, const Tensor *x, float p, uint64_t seed);
double cpu_cross_entropy(Tensor *dlogits, const Tensor *logits, const int32_t *targets, float scale);
double cpu_sumsq(const Tensor *x);
void cpu_scale(Tensor *x, float alpha);
void cpu_adamw(Tensor *p, const Tensor *g, Tensor *m, Tensor *v, const AdamWStep *h);

// contextual sparsity (ops_cpu_sparse.c)
void cpu_topk_rows(Tensor *idx, const Tensor *scores);
void cpu_ffn_sparse(Tensor *out, const Tensor *x, const Tensor *w_gate, const Tensor *w_up, const Tensor *w_down_t,
                    const Tensor *idx);

#endif
