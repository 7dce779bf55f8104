// Device dispatch for ops.h. Only the CPU backend exists in this build of the
// op layer; the model refuses a CUDA device before any op runs (see
// llama_session_init), so reaching here with a CUDA tensor is a bug.
#include "ops.h"

#include <assert.h>
#include <cblas.h>
#include <omp.h>

#include "ops_cpu.h"

#define CPU_ONLY(t) assert((t)->dev.kind == DEV_CPU && (t)->dtype == DT_F32)

void op_embedding(Tensor *out, const Tensor *table, const int32_t *ids) {
    CPU_ONLY(out);
    cpu_embedding(out, table, ids);
}
void op_rmsnorm(Tensor *out, const Tensor *x, const Tensor *w, float eps) {
    CPU_ONLY(out);
    cpu_rmsnorm(out, x, w, eps);
}
void op_matmul(Tensor *out, const Tensor *x, const Tensor *w) {
    CPU_ONLY(out);
    cpu_matmul(out, x, w);
}
void op_rope(Tensor *x, const int32_t *pos, const float *inv_freq, int n_heads, int head_dim) {
    CPU_ONLY(x);
    cpu_rope(x, pos, inv_freq, n_heads, head_dim);
}
void op_attention(Tensor *out, const Tensor *q, const Tensor *k, const Tensor *v, const int32_t *kmask,
                  const AttentionShape *s, const SharedKV *shared) {
    CPU_ONLY(out);
    cpu_attention(out, q, k, v, kmask, s, shared);
}
void op_swiglu(Tensor *out, const Tensor *gate, const Tensor *up) {
    CPU_ONLY(out);
    cpu_swiglu(out, gate, up);
}
void op_add(Tensor *out, const Tensor *a, const Tensor *b) {
    CPU_ONLY(out);
    cpu_add(out, a, b);
}
void op_log_softmax(Tensor *out, const Tensor *x) {
    CPU_ONLY(out);
    cpu_log_softmax(out, x);
}

// ---- training ----

void op_matmul_add(Tensor *out, const Tensor *x, const Tensor *w, float alpha) {
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
    CPU_ONLY(logits);
    return cpu_cross_entropy(dlogits, logits, targets, scale);
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

bool ops_backend_available(DeviceKind kind) { return kind == DEV_CPU; }

static int g_threads = 0;

void ops_set_threads(int n) {
    g_threads = n > 0 ? n : omp_get_num_procs();
    omp_set_num_threads(g_threads);
    openblas_set_num_threads(g_threads);
}

int ops_get_threads(void) { return g_threads > 0 ? g_threads : omp_get_max_threads(); }
