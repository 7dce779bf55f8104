// common.cuh: what the CUDA op files share: the checked-call macro, dtype
// loads, strided 2-d views of Tensors, warp/block reductions and the
// workspace slots.
#ifndef ELASTILM_CUDA_COMMON_CUH
#define ELASTILM_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "ops/ops_cuda.h"
#include "runtime/device.h"
}

// A failing CUDA call is a bug (ops_cuda.h): say what and where, then abort.
#define CUDA_CHECK(call)                                                                              \
    do {                                                                                              \
        cudaError_t e_ = (call);                                                                      \
        if (e_ != cudaSuccess) {                                                                      \
            fprintf(stderr, "elastilm: CUDA error: %s: %s at %s:%d\n", #call, cudaGetErrorString(e_), \
                    __FILE__, __LINE__);                                                              \
            abort();                                                                                  \
        }                                                                                             \
    } while (0)

// After every kernel launch (launch-configuration errors surface here).
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

// A shape or argument check of an op: a mismatch is a bug in the caller (ops.h),
// checked in every build since a bad index on the device corrupts memory silently.
#define REQUIRE(cond)                                                                                  \
    do {                                                                                               \
        if (!(cond)) {                                                                                 \
            fprintf(stderr, "elastilm: CUDA op: check failed: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
            abort();                                                                                   \
        }                                                                                              \
    } while (0)

// Workspace slots (cuda_workspace): each use that may be live at the same time
// as another needs its own slot. matmul.cu holds 6 (x converted to bf16/f16)
// and 7 (the cuBLASLt workspace); the ops here take the others.
enum {
    WS_IDS = 0,      // int32 per row: gather_logprob's targets
    WS_PARTIAL = 4,  // attention: split-key partial outputs and (max, sum) pairs
    WS_RESULT = 5,   // small per-row results copied back to the host (gather_logprob)
    WS_STAGING = 8,  // copy_to_host_f32: the contiguous f32 copy
    WS_SPARSE_H = 12,    // ffn_sparse: the kept neurons' activations [N, k]
    WS_SPARSE_PART = 13, // ffn_sparse: partial sums over slices of the kept neurons
    CUDA_WORKSPACE_SLOTS = 16,
};

// Every op runs on its output tensor's device: made current at the op's entry,
// since allocations and copies on another device (device.cu) switch it.
static inline void use_device(const Tensor *t) {
    int cur = -1;
    CUDA_CHECK(cudaGetDevice(&cur));
    if (cur != t->dev.index) CUDA_CHECK(cudaSetDevice(t->dev.index));
}

static inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static inline int threads_for(int64_t cols, int max_threads) {
    int64_t t = ceil_div(cols < max_threads ? cols : max_threads, 32) * 32;
    return t < 32 ? 32 : (int)t;
}

static inline unsigned grid_for(int64_t n, int threads) {
    int64_t g = ceil_div(n, threads);
    return (unsigned)(g > (1 << 20) ? (1 << 20) : g);
}

static inline size_t dtype_bytes(DType dt) { return dt == DT_F16 || dt == DT_BF16 ? 2 : 4; }

// Copies n host elements into workspace slot and returns the device copy (NULL when n == 0).
template <typename T>
static inline T *to_workspace(int slot, const T *host, int64_t n) {
    if (n <= 0) return NULL;
    T *dev = (T *)cuda_workspace(slot, (size_t)n * sizeof(T));
    CUDA_CHECK(cudaMemcpy(dev, host, (size_t)n * sizeof(T), cudaMemcpyHostToDevice));
    return dev;
}

// ---- element loads -----------------------------------------------------------

__device__ __forceinline__ float load_f32(const float *p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load_f32(const __half *p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ float load_f32(const __nv_bfloat16 *p, int64_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ float load_f32(const int32_t *p, int64_t i) { return (float)p[i]; }

__device__ __forceinline__ void store_from_f32(float *p, float v) { *p = v; }
__device__ __forceinline__ void store_from_f32(__half *p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store_from_f32(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

// ---- strided 2-d views ------------------------------------------------------------

// A 2-d f32 activation: element (r, c) at p[r * ld + c].
struct Strided2d {
    float *p;
    int64_t rows, cols, ld;
};

// The view of a 2-d f32 device tensor whose innermost dimension is contiguous.
static inline Strided2d strided2d(const Tensor *t) {
    REQUIRE(t->ndim == 2 && t->dtype == DT_F32 && t->dev.kind == DEV_CUDA);
    REQUIRE(t->shape[1] <= 1 || t->stride[1] == 1);
    REQUIRE(t->shape[0] <= 1 || t->stride[0] >= t->shape[1]);
    Strided2d s = {(float *)t->data, t->shape[0], t->shape[1], t->stride[0]};
    return s;
}

static inline bool same_shape(const Strided2d &a, const Strided2d &b) { return a.rows == b.rows && a.cols == b.cols; }

// A 2-d output of f32, bf16 or f16 (the activations a matmul reads next may be
// 16-bit: ops_cuda.h): element (r, c) at p + (r * ld + c) elements of dt.
struct Out2d {
    void *p;
    int64_t rows, cols, ld;
    DType dt;
};

static inline Out2d out2d(const Tensor *t) {
    REQUIRE(t->ndim == 2 && t->dev.kind == DEV_CUDA);
    REQUIRE(t->dtype == DT_F32 || t->dtype == DT_BF16 || t->dtype == DT_F16);
    REQUIRE(t->shape[1] <= 1 || t->stride[1] == 1);
    REQUIRE(t->shape[0] <= 1 || t->stride[0] >= t->shape[1]);
    Out2d o = {t->data, t->shape[0], t->shape[1], t->stride[0], t->dtype};
    return o;
}

static inline bool same_shape(const Out2d &a, const Strided2d &b) { return a.rows == b.rows && a.cols == b.cols; }

// Stores v at flat element offset i of an output of dtype dt (a block-uniform branch).
__device__ __forceinline__ void store_dt(void *p, DType dt, int64_t i, float v) {
    if (dt == DT_BF16) ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    else if (dt == DT_F16) ((__half *)p)[i] = __float2half_rn(v);
    else ((float *)p)[i] = v;
}
__device__ __forceinline__ void put(const Out2d &o, int64_t r, int64_t c, float v) { store_dt(o.p, o.dt, r * o.ld + c, v); }

// ---- reductions (blockDim.x must be a multiple of 32) ---------------------------

struct SumOp {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
    __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
    for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

// Every thread of the block gets the reduction of every thread's v.
template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T identity) {
    __shared__ T part[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = (blockDim.x + 31) >> 5;
    v = warp_reduce(v, op);
    __syncthreads(); // part may still be read by a previous call
    if (lane == 0) part[warp] = v;
    __syncthreads();
    v = lane < n_warps ? part[lane] : identity;
    return warp_reduce(v, op);
}

#endif
