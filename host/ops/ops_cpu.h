// ops_cpu.h: the fp32 CPU implementations behind ops.h.
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

#endif
