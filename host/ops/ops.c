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

bool ops_backend_available(DeviceKind kind) { return kind == DEV_CPU; }

static int g_threads = 0;

void ops_set_threads(int n) {
    g_threads = n > 0 ? n : omp_get_num_procs();
    omp_set_num_threads(g_threads);
    openblas_set_num_threads(g_threads);
}

int ops_get_threads(void) { return g_threads > 0 ? g_threads : omp_get_max_threads(); }
