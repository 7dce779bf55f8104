// The element-wise and row-wise CUDA ops of ops_cuda.h: one kernel and one
// launcher per op, all on the current device's default stream. Activations are
// f32 with a row stride; index arrays are device pointers (ops.h).
//
// Parallelisation:
//   embedding_kernel        grid N rows, 256 threads striding over the columns (zeros for a negative id).
//
// The encoders' ops (layernorm, scale_shift, bias_add, activations, varlen attention) are in encoder.cu.
//   rmsnorm_kernel          grid N rows, <= 256 threads: sum of squares (double, as the CPU) by a
//                           block reduction, then the scaled row.
//   rope_kernel             grid N rows, block (x: pair index j < head_dim/2, y: heads); cos/sin
//                           of pos * inv_freq in double, one per (row, j), reused over the heads.
//   swiglu_kernel, add_kernel  grid-stride over the N*F elements (rows from the flat index).
//   log_softmax_kernel      grid N rows, 256 or 1024 threads: max and sum(exp) (double, as the CPU)
//                           by block reductions, then x - logsumexp.
//   gather_logprob_kernel   the same reductions, one value per row, copied back to the host.
//   gather_f32_kernel       grid-stride over the elements of an n-d strided tensor -> contiguous f32.
//   zero_kernel             grid-stride over an n-d strided tensor (only when memset cannot do it).
//
// Attention has its own file (attention.cu), the matmuls theirs (matmul.cu).
#include <math.h>
#include <string.h>

#include "common.cuh"

// ---- embedding -----------------------------------------------------------------

template <typename T>
__global__ void embedding_kernel(Strided2d out, const T *table, int64_t ld_table, int64_t n_rows, const int32_t *ids) {
    int64_t r = blockIdx.x;
    const int32_t id = ids[r];
    if (id >= n_rows) __trap(); // a caller's bug (llama_forward checks ids): fail loudly, read nothing
    float *dst = out.p + r * out.ld;
    if (id < 0) { // a row of zeros (ops.h)
        for (int64_t c = threadIdx.x; c < out.cols; c += blockDim.x) dst[c] = 0.0f;
        return;
    }
    const T *src = table + (int64_t)id * ld_table;
    for (int64_t c = threadIdx.x; c < out.cols; c += blockDim.x) dst[c] = load_f32(src, c);
}

extern "C" void cuda_embedding(Tensor *out, const Tensor *table, const int32_t *ids) {
    use_device(out);
    Strided2d o = strided2d(out);
    REQUIRE(table->ndim == 2 && table->dev.kind == DEV_CUDA && table->shape[1] == o.cols);
    REQUIRE(table->shape[1] <= 1 || table->stride[1] == 1);
    if (o.rows == 0 || o.cols == 0) return;
    const int32_t *d_ids = ids; // on the device (ops.h); an id past the table traps the kernel, a negative one gives zeros
    int threads = threads_for(o.cols, 256);
    int64_t ld = table->stride[0], V = table->shape[0];
    switch (table->dtype) {
    case DT_F32: embedding_kernel<float><<<(unsigned)o.rows, threads>>>(o, (const float *)table->data, ld, V, d_ids); break;
    case DT_F16: embedding_kernel<__half><<<(unsigned)o.rows, threads>>>(o, (const __half *)table->data, ld, V, d_ids); break;
    case DT_BF16:
        embedding_kernel<__nv_bfloat16><<<(unsigned)o.rows, threads>>>(o, (const __nv_bfloat16 *)table->data, ld, V, d_ids);
        break;
    default: REQUIRE(!"embedding table must be f32, f16 or bf16");
    }
    CUDA_CHECK_LAUNCH();
}

// ---- rmsnorm -------------------------------------------------------------------------

__global__ void rmsnorm_kernel(Out2d out, Strided2d x, const float *w, float eps) {
    int64_t r = blockIdx.x;
    const float *xr = x.p + r * x.ld;
    double ss = 0.0; // in double like the CPU: the scale then rounds to the same float
    for (int64_t c = threadIdx.x; c < x.cols; c += blockDim.x) ss += (double)xr[c] * xr[c];
    ss = block_reduce(ss, SumOp(), 0.0);
    float scale = (float)(1.0 / sqrt(ss / (double)x.cols + (double)eps));
    for (int64_t c = threadIdx.x; c < x.cols; c += blockDim.x) put(out, r, c, (xr[c] * scale) * w[c]);
}

extern "C" void cuda_rmsnorm(Tensor *out, const Tensor *x, const Tensor *w, float eps) {
    use_device(out);
    Out2d o = out2d(out);
    Strided2d xv = strided2d(x);
    REQUIRE(same_shape(o, xv));
    REQUIRE(w->dtype == DT_F32 && w->dev.kind == DEV_CUDA && w->shape[0] == xv.cols);
    REQUIRE(w->ndim == 1 || (w->ndim == 2 && w->shape[1] == 1));
    if (xv.rows == 0 || xv.cols == 0) return;
    rmsnorm_kernel<<<(unsigned)xv.rows, threads_for(xv.cols, 256)>>>(o, xv, (const float *)w->data, eps);
    CUDA_CHECK_LAUNCH();
}

// ---- rope ----------------------------------------------------------------------------

__global__ void rope_kernel(Strided2d x, const int32_t *pos, const float *inv_freq, int n_heads, int head_dim) {
    int64_t r = blockIdx.x;
    int half = head_dim / 2;
    float *row = x.p + r * x.ld;
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        // The angle, cos and sin in double as the CPU does (positions reach 10^5).
        double sd, cd;
        sincos((double)pos[r] * (double)inv_freq[j], &sd, &cd);
        float c = (float)cd, s = (float)sd;
        for (int h = threadIdx.y; h < n_heads; h += blockDim.y) {
            float *xh = row + (int64_t)h * head_dim;
            float a = xh[j], b = xh[j + half];
            // no fused multiply-add, so that the result rounds exactly as the CPU's
            xh[j] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
            xh[j + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
        }
    }
}

extern "C" void cuda_rope(Tensor *x, const int32_t *pos, const float *inv_freq, int n_heads, int head_dim) {
    use_device(x);
    Strided2d xv = strided2d(x);
    REQUIRE(n_heads >= 0 && head_dim > 0 && head_dim % 2 == 0 && xv.cols == (int64_t)n_heads * head_dim);
    if (xv.rows == 0 || n_heads == 0) return;
    const int32_t *d_pos = pos;
    const float *d_freq = inv_freq;
    int bx = head_dim / 2 < 128 ? head_dim / 2 : 128, by = 256 / bx;
    if (by > n_heads) by = n_heads;
    if (by < 1) by = 1;
    rope_kernel<<<(unsigned)xv.rows, dim3(bx, by)>>>(xv, d_pos, d_freq, n_heads, head_dim);
    CUDA_CHECK_LAUNCH();
}

// ---- elementwise -----------------------------------------------------------------------

__global__ void swiglu_kernel(Out2d out, Strided2d gate, Strided2d up) {
    const int64_t n = out.rows * out.cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / out.cols, c = i - r * out.cols;
        float g = gate.p[r * gate.ld + c];
        put(out, r, c, g / (1.0f + expf(-g)) * up.p[r * up.ld + c]);
    }
}

extern "C" void cuda_swiglu(Tensor *out, const Tensor *gate, const Tensor *up) {
    use_device(out);
    Out2d o = out2d(out);
    Strided2d g = strided2d(gate), u = strided2d(up);
    REQUIRE(same_shape(o, g) && same_shape(o, u));
    const int64_t n = o.rows * o.cols;
    if (n == 0) return;
    swiglu_kernel<<<grid_for(n, 256), 256>>>(o, g, u);
    CUDA_CHECK_LAUNCH();
}

// out may alias a or b: each element is read and written by the same thread.
__global__ void add_kernel(Strided2d out, Strided2d a, Strided2d b) {
    const int64_t n = out.rows * out.cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / out.cols, c = i - r * out.cols;
        out.p[r * out.ld + c] = a.p[r * a.ld + c] + b.p[r * b.ld + c];
    }
}

extern "C" void cuda_add(Tensor *out, const Tensor *a, const Tensor *b) {
    use_device(out);
    Strided2d o = strided2d(out), av = strided2d(a), bv = strided2d(b);
    REQUIRE(same_shape(o, av) && same_shape(o, bv));
    const int64_t n = o.rows * o.cols;
    if (n == 0) return;
    add_kernel<<<grid_for(n, 256), 256>>>(o, av, bv);
    CUDA_CHECK_LAUNCH();
}

// ---- log-softmax -------------------------------------------------------------------------

// max and sum(exp(x - max)) of a row, as the CPU: exp and the sum in double.
__device__ void row_max_sumexp(const float *xr, int64_t cols, float *mx_out, double *sum_out) {
    float mx = -INFINITY;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) mx = fmaxf(mx, xr[c]);
    mx = block_reduce(mx, MaxOp(), -INFINITY);
    double sum = 0.0;
    for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) sum += exp((double)(xr[c] - mx));
    *sum_out = block_reduce(sum, SumOp(), 0.0);
    *mx_out = mx;
}

// out may alias x: the last pass reads and writes each element in the same thread,
// after the reductions' barriers.
__global__ void log_softmax_kernel(Strided2d out, Strided2d x) {
    const int64_t r = blockIdx.x;
    const float *xr = x.p + r * x.ld;
    float *orow = out.p + r * out.ld;
    float mx;
    double sum;
    row_max_sumexp(xr, x.cols, &mx, &sum);
    const float lse = mx + (float)log(sum);
    for (int64_t c = threadIdx.x; c < x.cols; c += blockDim.x) orow[c] = xr[c] - lse;
}

static int softmax_threads(int64_t cols) { return cols >= 8192 ? 1024 : threads_for(cols, 256); }

extern "C" void cuda_log_softmax(Tensor *out, const Tensor *x) {
    use_device(out);
    Strided2d o = strided2d(out), xv = strided2d(x);
    REQUIRE(same_shape(o, xv));
    if (xv.rows == 0 || xv.cols == 0) return;
    log_softmax_kernel<<<(unsigned)xv.rows, softmax_threads(xv.cols)>>>(o, xv);
    CUDA_CHECK_LAUNCH();
}

__global__ void gather_logprob_kernel(float *res, Strided2d x, const int32_t *targets) {
    const int64_t r = blockIdx.x;
    const int32_t id = targets[r];
    if (id < 0) { // block-uniform, before any barrier
        if (threadIdx.x == 0) res[r] = 0.0f;
        return;
    }
    const float *xr = x.p + r * x.ld;
    float mx;
    double sum;
    row_max_sumexp(xr, x.cols, &mx, &sum);
    if (threadIdx.x == 0) res[r] = (float)((double)(xr[id] - mx) - log(sum));
}

extern "C" void cuda_gather_logprob(float *out, const Tensor *logits, const int32_t *targets) {
    use_device(logits);
    Strided2d xv = strided2d(logits);
    if (xv.rows == 0) return;
    for (int64_t r = 0; r < xv.rows; r++) REQUIRE(targets[r] < xv.cols);
    const int32_t *d_targets = to_workspace(WS_IDS, targets, xv.rows);
    float *d_res = (float *)cuda_workspace(WS_RESULT, (size_t)xv.rows * sizeof(float));
    gather_logprob_kernel<<<(unsigned)xv.rows, softmax_threads(xv.cols)>>>(d_res, xv, d_targets);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpy(out, d_res, (size_t)xv.rows * sizeof(float), cudaMemcpyDeviceToHost));
}

extern "C" double cuda_cross_entropy_sum(const Tensor *logits, const int32_t *targets) {
    use_device(logits);
    const int64_t rows = logits->shape[0];
    float *lp = (float *)malloc((size_t)(rows > 0 ? rows : 1) * sizeof *lp);
    REQUIRE(lp);
    cuda_gather_logprob(lp, logits, targets);
    double sum = 0.0;
    for (int64_t r = 0; r < rows; r++)
        if (targets[r] >= 0) sum -= lp[r];
    free(lp);
    return sum;
}

// ---- copies and zeroing -----------------------------------------------------------------

// An n-d strided tensor for the element-wise kernels, by value: its dimensions
// right-aligned in TENSOR_MAX_DIMS, the leading ones padded with size 1.
typedef struct {
    void *p;
    int64_t shape[TENSOR_MAX_DIMS], stride[TENSOR_MAX_DIMS];
} TensorDesc;

static TensorDesc tensor_desc(const Tensor *t) {
    REQUIRE(t->ndim >= 1 && t->ndim <= TENSOR_MAX_DIMS && t->dev.kind == DEV_CUDA);
    TensorDesc d;
    d.p = t->data;
    const int pad = TENSOR_MAX_DIMS - t->ndim;
    for (int i = 0; i < TENSOR_MAX_DIMS; i++) {
        d.shape[i] = i < pad ? 1 : t->shape[i - pad];
        d.stride[i] = i < pad ? 0 : t->stride[i - pad];
    }
    return d;
}

static int64_t numel(const Tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static bool contiguous(const Tensor *t) {
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != expect) return false;
        expect *= t->shape[i];
    }
    return true;
}

// The offset (in elements) of flat index i of the tensor, innermost dimension last.
__device__ __forceinline__ int64_t desc_offset(const TensorDesc &d, int64_t i) {
    int64_t off = 0;
#pragma unroll
    for (int k = TENSOR_MAX_DIMS - 1; k >= 0; k--) {
        int64_t c = i % d.shape[k];
        i /= d.shape[k];
        off += c * d.stride[k];
    }
    return off;
}

template <typename T>
__global__ void gather_f32_kernel(float *dst, TensorDesc src, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = load_f32((const T *)src.p, desc_offset(src, i));
}

extern "C" void cuda_copy_to_host_f32(float *dst, const Tensor *src) {
    use_device(src);
    TensorDesc d = tensor_desc(src);
    const int64_t n = numel(src);
    if (n == 0) return;
    if (src->dtype == DT_F32 && contiguous(src)) {
        CUDA_CHECK(cudaMemcpy(dst, src->data, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost));
        return;
    }
    if (src->dtype == DT_F32 && src->ndim == 2 && src->stride[1] == 1 && src->stride[0] >= src->shape[1]) {
        size_t row = (size_t)src->shape[1] * sizeof(float);
        CUDA_CHECK(cudaMemcpy2D(dst, row, src->data, (size_t)src->stride[0] * sizeof(float), row,
                                (size_t)src->shape[0], cudaMemcpyDeviceToHost));
        return;
    }
    float *staging = (float *)cuda_workspace(WS_STAGING, (size_t)n * sizeof(float));
    switch (src->dtype) {
    case DT_F32: gather_f32_kernel<float><<<grid_for(n, 256), 256>>>(staging, d, n); break;
    case DT_F16: gather_f32_kernel<__half><<<grid_for(n, 256), 256>>>(staging, d, n); break;
    case DT_BF16: gather_f32_kernel<__nv_bfloat16><<<grid_for(n, 256), 256>>>(staging, d, n); break;
    case DT_I32: gather_f32_kernel<int32_t><<<grid_for(n, 256), 256>>>(staging, d, n); break;
    default: REQUIRE(!"unknown dtype");
    }
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpy(dst, staging, (size_t)n * sizeof(float), cudaMemcpyDeviceToHost));
}

// dst = src over an n-d index space (both TensorDesc, the same shape), f32 -> T.
template <typename T>
__global__ void copy_kernel(TensorDesc dst, TensorDesc src, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        store_from_f32((T *)dst.p + desc_offset(dst, i), ((const float *)src.p)[desc_offset(src, i)]);
}

extern "C" void cuda_copy(Tensor *dst, const Tensor *src) {
    use_device(dst);
    REQUIRE(dst->ndim == src->ndim && src->dtype == DT_F32 && src->dev.index == dst->dev.index);
    for (int i = 0; i < src->ndim; i++) REQUIRE(dst->shape[i] == src->shape[i]);
    TensorDesc d = tensor_desc(dst), sd = tensor_desc(src);
    const int64_t n = numel(src);
    if (n == 0) return;
    switch (dst->dtype) {
    case DT_F32: copy_kernel<float><<<grid_for(n, 256), 256>>>(d, sd, n); break;
    case DT_F16: copy_kernel<__half><<<grid_for(n, 256), 256>>>(d, sd, n); break;
    case DT_BF16: copy_kernel<__nv_bfloat16><<<grid_for(n, 256), 256>>>(d, sd, n); break;
    default: REQUIRE(!"copy: the destination must be f32, f16 or bf16");
    }
    CUDA_CHECK_LAUNCH();
}

template <typename T>
__global__ void zero_kernel(TensorDesc t, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        ((T *)t.p)[desc_offset(t, i)] = T(0);
}

extern "C" void cuda_zero(Tensor *t) {
    use_device(t);
    TensorDesc d = tensor_desc(t);
    const int64_t n = numel(t);
    const size_t es = dtype_bytes(t->dtype);
    if (n == 0) return;
    if (contiguous(t)) {
        CUDA_CHECK(cudaMemset(t->data, 0, (size_t)n * es));
    } else if (t->ndim == 2 && t->stride[1] == 1 && t->stride[0] >= t->shape[1]) {
        CUDA_CHECK(cudaMemset2D(t->data, (size_t)t->stride[0] * es, 0, (size_t)t->shape[1] * es, (size_t)t->shape[0]));
    } else {
        if (es == 2) zero_kernel<uint16_t><<<grid_for(n, 256), 256>>>(d, n);
        else zero_kernel<uint32_t><<<grid_for(n, 256), 256>>>(d, n);
        CUDA_CHECK_LAUNCH();
    }
}
