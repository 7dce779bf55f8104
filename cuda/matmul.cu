// cuda_matmul / cuda_matmul_add (ops_cuda.h) on cuBLASLt.
//
//   out[M, N]  = x[M, K] @ w[N, K]^T              (cuda_matmul)
//   out[M, N] += alpha * x[M, K] @ w[N, K]^T      (cuda_matmul_add)
//
// out is an f32 device tensor; w a bf16, f16 or f32 one; x f32, or 16-bit in
// w's dtype (activations written in bf16 for the matmul: used without a copy) or
// with f32 w (widened first); all three may be strided 2-d views (row stride tensor_ld >= columns), e.g. a row
// prefix of wq or a column prefix of wo/w_down (ld > K) for an elastic level,
// or rows of the KV cache as out.
//
// Precision. Accumulation is always fp32 (CUBLAS_COMPUTE_32F, fp32 alpha/beta):
//  - bf16/f16 w: an f32 x is rounded to w's dtype (round to nearest even) into a
//    scratch (workspace slot 6; rows padded to 8 elements so that each starts
//    16-byte aligned); an x already in w's dtype is used as it is (copied into
//    that scratch only when its rows are not 16-byte aligned); then D = x16 . w16^T on the tensor
//    cores with f32 C/D. The products of two bf16 (f16) numbers are exact in
//    fp32, so the only differences from an fp32 reference are the rounding of
//    the two operands and the summation order.
//  - f32 w: a plain fp32 GEMM on x as it is (no copy; a 16-bit x, e.g. a bf16
//    activation under an f32 LoRA adapter, is widened to f32 into slot 6 first). CUBLAS_COMPUTE_32F, not
//    ..._FAST_TF32, so no TF32 rounding and parity with the CPU stays ~1e-6.
//    (cuBLAS 13's fp32 emulation through bf16x9 needs its own compute type or
//    an emulation descriptor, neither of which is set here, and Blackwell.)
//
// Layouts. cuBLASLt is column-major; our tensors are row-major. A row-major
// matrix R [rows, cols] with row stride ld is, read column-major, the matrix
// R^T [cols, rows] with leading dimension ld. So, with ld_o, ld_x, ld_w the row
// strides:
//   out (row-major [M, N], ld_o) = column-major out^T [N, M], ld_o
//   x   (row-major [M, K], ld_x) = column-major x^T   [K, M], ld_x
//   w   (row-major [N, K], ld_w) = column-major w^T   [K, N], ld_w
// and out = x w^T  <=>  out^T = w x^T = (w^T)^T x^T. In cuBLASLt terms:
//   A = the stored [K, N] (= w^T), ld_w, TRANSA = T   -> op(A) = w   [N, K]
//   B = the stored [K, M] (= x^T), ld_x, TRANSB = N   -> op(B) = x^T [K, M]
//       (16-bit w: B is the converted copy of x, ld = K rounded up to 8)
//   C = D = [N, M] (= out^T), ld_o
//   m = N, n = M, k = K.
// Every leading dimension is just the row stride of the row-major view, so any
// row or column prefix view works without a copy (ld >= rows of the column-
// major matrix: ld_w >= K, ld_x >= K, ld_o >= N, which the views guarantee).
// This "TN" form is also the one every cuBLASLt kernel family supports.
// C and D are the same buffer and layout (in-place is allowed when they match);
// cuda_matmul passes beta = 0 (C is not read, so a NaN-poisoned out is fine),
// cuda_matmul_add passes beta = 1.
//
// Alignment. cuBLASLt's heuristic assumes 256-byte aligned A/B/C/D unless told
// otherwise, and views (rows of the KV cache, a column offset) can be less
// aligned: the actual alignment of each pointer (capped at 256) goes into the
// preference and into the plan's cache key.
//
// Plans (layouts + the heuristic's algorithm) are cached per (device, dtype,
// m, n, k, lds, alignments) in a small hash table; the matmul descriptor and
// the handle are per device, made on first use. The cuBLASLt workspace is
// 32 MiB in workspace slot 7. Everything runs on the default stream, ordered
// with the other ops. CUDA and cuBLAS errors abort with a message.
extern "C" {
#include "ops/ops_cuda.h"
#include "runtime/device.h"
}

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <mutex>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MM_X_SLOT 6   // x converted to bf16/f16, copied aligned, or widened to f32
#define MM_LT_SLOT 7  // cuBLASLt workspace
#define MM_LT_WORKSPACE ((size_t)32 << 20)
#define MM_MAX_DEVICES DEVICE_MAX_CUDA

static void mm_die(const char *file, int line, const char *what, const char *msg) {
    fprintf(stderr, "elastilm: %s:%d: %s failed: %s\n", file, line, what, msg);
    abort();
}
#define MM_CUDA(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) mm_die(__FILE__, __LINE__, #call, cudaGetErrorString(e_)); } while (0)
#define MM_LT(call) do { cublasStatus_t s_ = (call); if (s_ != CUBLAS_STATUS_SUCCESS) mm_die(__FILE__, __LINE__, #call, cublasLtGetStatusString(s_)); } while (0)
#define MM_REQUIRE(cond, ...) do { if (!(cond)) { fprintf(stderr, "elastilm: cuda matmul: " __VA_ARGS__); fputc('\n', stderr); abort(); } } while (0)

// ---- x -> bf16 / f16 -------------------------------------------------------

template <typename T> __device__ __forceinline__ T mm_from_float(float v);
template <> __device__ __forceinline__ __nv_bfloat16 mm_from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half mm_from_float<__half>(float v) { return __float2half_rn(v); }

template <typename T> struct alignas(8) MmPack4 { T v[4]; };

// dst [rows, cols] with row stride ld_d (a multiple of 8) = src [rows, cols] with row
// stride ld, 4 elements per thread: cols % 4 == 0, ld % 4 == 0 and src 16-byte
// aligned (checked by the caller).
template <typename T>
__global__ void mm_convert4(T *__restrict__ dst, int64_t ld_d, const float *__restrict__ src, int64_t rows, int64_t cols,
                            int64_t ld) {
    int64_t groups_per_row = cols / 4, n = rows * groups_per_row;
    for (int64_t g = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; g < n; g += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = g / groups_per_row, c = (g - r * groups_per_row) * 4;
        float4 v = *reinterpret_cast<const float4 *>(src + r * ld + c);
        MmPack4<T> o; // one 8-byte store (dst is 8-byte aligned: cudaMalloc'd, ld_d % 8 == 0)
        o.v[0] = mm_from_float<T>(v.x);
        o.v[1] = mm_from_float<T>(v.y);
        o.v[2] = mm_from_float<T>(v.z);
        o.v[3] = mm_from_float<T>(v.w);
        *reinterpret_cast<MmPack4<T> *>(dst + r * ld_d + c) = o;
    }
}

template <typename T>
__global__ void mm_convert1(T *__restrict__ dst, int64_t ld_d, const float *__restrict__ src, int64_t rows, int64_t cols,
                            int64_t ld) {
    int64_t n = rows * cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / cols, c = i - r * cols;
        dst[r * ld_d + c] = mm_from_float<T>(src[r * ld + c]);
    }
}

// Blocks of 256 threads for a grid-stride loop over work items (at most 65536 blocks).
static unsigned mm_blocks(int64_t work) {
    int64_t blocks = (work + 255) / 256;
    return (unsigned)(blocks > 65536 ? 65536 : blocks < 1 ? 1 : blocks);
}

// The columns [cols, ld_d) of dst are left as they are: the GEMM reads k = cols of each row.
template <typename T>
static void mm_convert(T *dst, int64_t ld_d, const float *src, int64_t rows, int64_t cols, int64_t ld) {
    bool vec = cols % 4 == 0 && ld % 4 == 0 && ((uintptr_t)src & 15) == 0;
    if (vec) mm_convert4<T><<<mm_blocks(rows * (cols / 4)), 256>>>(dst, ld_d, src, rows, cols, ld);
    else mm_convert1<T><<<mm_blocks(rows * cols), 256>>>(dst, ld_d, src, rows, cols, ld);
    MM_CUDA(cudaGetLastError());
}

// dst [rows, cols] f32 (row stride ld_d) = src [rows, cols] bf16/f16 (row stride ld):
// a 16-bit activation multiplied by f32 weights (a LoRA adapter's A).
template <typename T>
__global__ void mm_widen(float *__restrict__ dst, int64_t ld_d, const T *__restrict__ src, int64_t rows, int64_t cols,
                         int64_t ld) {
    int64_t n = rows * cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / cols, c = i - r * cols;
        dst[r * ld_d + c] = (float)src[r * ld + c];
    }
}

// dst [rows, cols] (row stride ld_d) = src [rows, cols] (row stride ld), 16-bit elements as they are.
__global__ void mm_copy16(uint16_t *__restrict__ dst, int64_t ld_d, const uint16_t *__restrict__ src, int64_t rows,
                          int64_t cols, int64_t ld) {
    int64_t n = rows * cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / cols, c = i - r * cols;
        dst[r * ld_d + c] = src[r * ld + c];
    }
}

// ---- per-device cuBLASLt state and cached plans -----------------------------

struct MmDevice {
    bool ready;
    cublasLtHandle_t handle;
    cublasLtMatmulDesc_t desc; // compute 32F, scale 32F, TRANSA = T, TRANSB = N
};

struct MmKey {
    int dev, dtype; // dtype of A and B (the weight's)
    int64_t m, n, k, lda, ldb, ldc;
    uint32_t align_a, align_b, align_c;
};

struct MmPlan {
    bool used;
    MmKey key;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
};

#define MM_PLANS 1024 // power of two; flushed when half full
static MmDevice g_dev[MM_MAX_DEVICES];
static MmPlan g_plans[MM_PLANS];
static int g_n_plans;
static std::mutex g_mu;

static bool key_eq(const MmKey &a, const MmKey &b) {
    return a.dev == b.dev && a.dtype == b.dtype && a.m == b.m && a.n == b.n && a.k == b.k && a.lda == b.lda &&
           a.ldb == b.ldb && a.ldc == b.ldc && a.align_a == b.align_a && a.align_b == b.align_b && a.align_c == b.align_c;
}

static uint64_t key_hash(const MmKey &k) {
    uint64_t h = 1469598103934665603ULL;
    const uint64_t parts[] = {(uint64_t)k.dev, (uint64_t)k.dtype, (uint64_t)k.m, (uint64_t)k.n, (uint64_t)k.k,
                              (uint64_t)k.lda, (uint64_t)k.ldb, (uint64_t)k.ldc, k.align_a, k.align_b, k.align_c};
    for (uint64_t p : parts) {
        h ^= p;
        h *= 1099511628211ULL;
        h ^= h >> 29;
    }
    return h;
}

static MmDevice *mm_device(int dev) {
    MM_REQUIRE(dev >= 0 && dev < MM_MAX_DEVICES, "device %d out of range", dev);
    MmDevice *d = &g_dev[dev];
    if (!d->ready) {
        MM_LT(cublasLtCreate(&d->handle));
        MM_LT(cublasLtMatmulDescCreate(&d->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
        MM_LT(cublasLtMatmulDescSetAttribute(d->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
        MM_LT(cublasLtMatmulDescSetAttribute(d->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
        d->ready = true;
    }
    return d;
}

static void plan_destroy(MmPlan *p) {
    cublasLtMatrixLayoutDestroy(p->a);
    cublasLtMatrixLayoutDestroy(p->b);
    cublasLtMatrixLayoutDestroy(p->c);
    p->used = false;
}

static cudaDataType_t cuda_type(DType dt) {
    switch (dt) {
    case DT_BF16: return CUDA_R_16BF;
    case DT_F16: return CUDA_R_16F;
    case DT_F32: return CUDA_R_32F;
    default: break;
    }
    MM_REQUIRE(false, "unsupported weight dtype %s", dtype_name(dt));
    return CUDA_R_32F;
}

static uint32_t ptr_align(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 1 && (a & (al - 1))) al >>= 1;
    return al;
}

// The plan for a key, made (layouts + heuristic) on first use. Called with g_mu held.
static const MmPlan *mm_plan(MmDevice *d, const MmKey &key) {
    uint64_t h = key_hash(key);
    size_t slot = (size_t)(h & (MM_PLANS - 1));
    for (;;) {
        MmPlan *p = &g_plans[slot];
        if (!p->used) break;
        if (key_eq(p->key, key)) return p;
        slot = (slot + 1) & (MM_PLANS - 1);
    }
    if (g_n_plans >= MM_PLANS / 2) { // many shapes seen: start over (plans are cheap to remake)
        for (int i = 0; i < MM_PLANS; i++)
            if (g_plans[i].used) plan_destroy(&g_plans[i]);
        g_n_plans = 0;
        slot = (size_t)(h & (MM_PLANS - 1));
    }
    MmPlan *p = &g_plans[slot];
    p->key = key;
    cudaDataType_t ab = cuda_type((DType)key.dtype);
    // column-major: A = w^T [K, N] (ld_w), B = x^T [K, M] (ld_x), C = D = out^T [N, M] (ld_o)
    MM_LT(cublasLtMatrixLayoutCreate(&p->a, ab, (uint64_t)key.k, (uint64_t)key.m, key.lda));
    MM_LT(cublasLtMatrixLayoutCreate(&p->b, ab, (uint64_t)key.k, (uint64_t)key.n, key.ldb));
    MM_LT(cublasLtMatrixLayoutCreate(&p->c, CUDA_R_32F, (uint64_t)key.m, (uint64_t)key.n, key.ldc));
    cublasLtMatmulPreference_t pref;
    MM_LT(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = MM_LT_WORKSPACE;
    MM_LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    uint32_t al_a = key.align_a, al_b = key.align_b, al_c = key.align_c;
    MM_LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
    MM_LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
    MM_LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof al_c));
    MM_LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof al_c));
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(d->handle, d->desc, p->a, p->b, p->c, p->c, pref, 1, &res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    MM_REQUIRE(st == CUBLAS_STATUS_SUCCESS && found > 0,
               "no cuBLASLt algorithm for %s weights: out [%lld, %lld] ld %lld (align %u), x [%lld, %lld] ld %lld "
               "(align %u), w [%lld, %lld] ld %lld (align %u): %s",
               dtype_name((DType)key.dtype), (long long)key.n, (long long)key.m, (long long)key.ldc, al_c,
               (long long)key.n, (long long)key.k, (long long)key.ldb, al_b, (long long)key.m, (long long)key.k,
               (long long)key.lda, al_a, st == CUBLAS_STATUS_SUCCESS ? "none found" : cublasLtGetStatusString(st));
    p->algo = res.algo;
    p->used = true;
    g_n_plans++;
    return p;
}

// out = alpha * x w^T + beta * out
static void mm_run(Tensor *out, const Tensor *x, const Tensor *w, float alpha, float beta) {
    MM_REQUIRE(out->ndim == 2 && x->ndim == 2 && w->ndim == 2, "2-d tensors expected");
    MM_REQUIRE(out->dev.kind == DEV_CUDA && x->dev.kind == DEV_CUDA && w->dev.kind == DEV_CUDA,
               "out, x and w must be CUDA tensors");
    MM_REQUIRE(out->dev.index == x->dev.index && out->dev.index == w->dev.index, "tensors on different devices");
    MM_REQUIRE(out->dtype == DT_F32, "out must be f32 (got %s)", dtype_name(out->dtype));
    MM_REQUIRE(x->dtype == DT_F32 || x->dtype == DT_BF16 || x->dtype == DT_F16, "x must be f32, bf16 or f16 (got %s)",
               dtype_name(x->dtype));
    MM_REQUIRE(x->dtype == DT_F32 || w->dtype == DT_F32 || x->dtype == w->dtype,
               "a 16-bit x needs weights of its dtype or f32 (got x %s, w %s)", dtype_name(x->dtype),
               dtype_name(w->dtype));
    int64_t M = x->shape[0], K = x->shape[1], N = w->shape[0];
    MM_REQUIRE(w->shape[1] == K && out->shape[0] == M && out->shape[1] == N,
               "shape mismatch: out [%lld, %lld] = x [%lld, %lld] @ w [%lld, %lld]^T", (long long)out->shape[0],
               (long long)out->shape[1], (long long)M, (long long)K, (long long)N, (long long)w->shape[1]);
    MM_REQUIRE(out->stride[1] == 1 && x->stride[1] == 1 && w->stride[1] == 1, "the innermost dimension must be contiguous");
    int64_t ld_o = tensor_ld(out), ld_x = tensor_ld(x), ld_w = tensor_ld(w);
    // A single row's stride is never used; cuBLASLt still wants ld >= rows of its column-major matrix.
    if (M == 1 && ld_o < N) ld_o = N;
    if (M == 1 && ld_x < K) ld_x = K;
    if (N == 1 && ld_w < K) ld_w = K;
    MM_REQUIRE(ld_o >= N && ld_x >= K && ld_w >= K, "row strides smaller than the rows");

    int cur = -1;
    MM_CUDA(cudaGetDevice(&cur));
    if (cur != out->dev.index) MM_CUDA(cudaSetDevice(out->dev.index));
    if (M == 0 || N == 0) return;
    if (K == 0) { // an empty sum: out = beta * out
        if (beta == 0.0f)
            MM_CUDA(cudaMemset2DAsync(out->data, (size_t)ld_o * sizeof(float), 0, (size_t)N * sizeof(float), (size_t)M, 0));
        return;
    }

    const void *b_ptr = x->data;
    int64_t ld_b = ld_x;
    if (x->dtype == w->dtype && w->dtype != DT_F32 && (ld_x % 8 != 0 || ((uintptr_t)x->data & 15) != 0)) {
        // a 16-bit x whose rows are not 16-byte aligned: into a padded copy first, as a converted x is
        ld_b = (K + 7) / 8 * 8;
        uint16_t *xc = (uint16_t *)cuda_workspace(MM_X_SLOT, (size_t)M * (size_t)ld_b * 2);
        mm_copy16<<<mm_blocks(M * K), 256>>>(xc, ld_b, (const uint16_t *)x->data, M, K, ld_x);
        MM_CUDA(cudaGetLastError());
        b_ptr = xc;
    } else if (x->dtype == w->dtype) {
        // x already in w's dtype (16-bit activations from the op that wrote them, or f32 x f32): used as it is
    } else if (w->dtype == DT_F32) { // 16-bit x, f32 w: x widened to f32, rows padded to 4 (16-byte aligned)
        ld_b = (K + 3) / 4 * 4;
        float *xf = (float *)cuda_workspace(MM_X_SLOT, (size_t)M * (size_t)ld_b * sizeof(float));
        if (x->dtype == DT_BF16) mm_widen<__nv_bfloat16><<<mm_blocks(M * K), 256>>>(xf, ld_b, (const __nv_bfloat16 *)x->data, M, K, ld_x);
        else mm_widen<__half><<<mm_blocks(M * K), 256>>>(xf, ld_b, (const __half *)x->data, M, K, ld_x);
        MM_CUDA(cudaGetLastError());
        b_ptr = xf;
    } else if (w->dtype == DT_BF16 || w->dtype == DT_F16) {
        // rows padded to 8 elements: every row of the converted x is 16-byte aligned
        ld_b = (K + 7) / 8 * 8;
        void *xc = cuda_workspace(MM_X_SLOT, (size_t)M * (size_t)ld_b * 2);
        if (w->dtype == DT_BF16) mm_convert((__nv_bfloat16 *)xc, ld_b, (const float *)x->data, M, K, ld_x);
        else mm_convert((__half *)xc, ld_b, (const float *)x->data, M, K, ld_x);
        b_ptr = xc;
    } else {
        MM_REQUIRE(w->dtype == DT_F32, "unsupported weight dtype %s", dtype_name(w->dtype));
    }
    void *ws = cuda_workspace(MM_LT_SLOT, MM_LT_WORKSPACE);

    MmKey key;
    memset(&key, 0, sizeof key);
    key.dev = out->dev.index;
    key.dtype = (int)w->dtype;
    key.m = N, key.n = M, key.k = K;
    key.lda = ld_w, key.ldb = ld_b, key.ldc = ld_o;
    key.align_a = ptr_align(w->data), key.align_b = ptr_align(b_ptr), key.align_c = ptr_align(out->data);

    std::lock_guard<std::mutex> lock(g_mu);
    MmDevice *d = mm_device(out->dev.index);
    const MmPlan *p = mm_plan(d, key);
    MM_LT(cublasLtMatmul(d->handle, d->desc, &alpha, w->data, p->a, b_ptr, p->b, &beta, out->data, p->c, out->data, p->c,
                         &p->algo, ws, MM_LT_WORKSPACE, 0));
}

extern "C" void cuda_matmul(Tensor *out, const Tensor *x, const Tensor *w) { mm_run(out, x, w, 1.0f, 0.0f); }

extern "C" void cuda_matmul_add(Tensor *out, const Tensor *x, const Tensor *w, float alpha) {
    mm_run(out, x, w, alpha, 1.0f);
}
