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

#endif
