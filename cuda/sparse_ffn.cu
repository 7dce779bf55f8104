// Contextual sparsity on CUDA (ops_cuda.h, ops.h "contextual sparsity"): the
// top-k neurons per row of predictor scores, and the SwiGLU FFN over them.
// Written without a GPU to run it on: every kernel is kept simple, with
// block-uniform control flow around its barriers.
//
// topk_kernel       grid N rows, <= 512 threads. An exact radix select on the
//                   scores' order-preserving 32-bit keys (NaN -> -inf, -0 -> +0,
//                   as ops_cpu_sparse.c): 4 passes of 8 bits over the row in
//                   global memory, each a 256-bin histogram in shared memory
//                   (warp-aggregated atomics: __match_any_sync, sm_70+) of the
//                   keys that share the bits decided so far; thread 0 walks the
//                   bins down to the k-th largest key T and the number `need` of
//                   keys equal to T to take. Then one pass in index order, a block
//                   of columns at a time: a key above T, or equal to T with fewer
//                   than `need` equal keys before it, is written at its block-wide
//                   exclusive count (ballots + per-warp counts). The output is
//                   ascending; no limit on F but int32 and no shared memory per F.
// ffn_h_kernel      phase 1: grid N * ceil(k / 8) blocks of 8 warps; one warp per
//                   (row n, selected neuron i): j = idx[n, i] (an index outside
//                   [0, F) traps), both dot products of x[n] with w_gate[j] and
//                   w_up[j], lanes striding over D (coalesced), fp32 FMAs, warp
//                   sums; h[n, i] = silu(g) * u into a workspace [N, k].
// ffn_down_kernel   phase 2: one thread per (row, column, slice of the k neurons),
//                   128 columns per block; sum over the slice's i in order of
//                   h[n, i] * w_down_t[idx[n, i], c] (coalesced over c). With one
//                   slice it adds into out; decode (few rows and columns) splits k
//                   into slices so that the GPU has ~4 blocks per SM, their partial
//                   sums go to a workspace and
// ffn_sum_kernel    phase 3 adds them into out in slice order.
// No atomics on the outputs: the result is deterministic (for a given GPU: the
// slice count follows its SM count).
// Meant for decode and short steps: every (row, neuron) pair reads its weight
// rows again (no reuse across rows as in a GEMM), so a long prompt is better
// served by the dense FFN on cuBLASLt (or a GEMM over the union of the rows'
// selections), which this file does not do.
#include "common.cuh"

// This file's workspace slots (common.cuh's enum holds the shared ones: 0, 4-8).

#define TOPK_MAX_THREADS 512
#define FFN_WARPS 8
#define DOWN_COLS 128
#define MIN_SLICE 32 // neurons per slice of phase 2, at least

// ---- top-k ------------------------------------------------------------------------

__device__ __forceinline__ uint32_t order_key(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) u = 0xff800000u; // NaN -> -inf
    if ((u & 0x7fffffffu) == 0) u = 0;                     // -0 -> +0
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// The number of threads before this one (in thread order) whose flag is set,
// and in *total the block's count. Every thread of the block must call it.
__device__ int block_count_before(bool flag, int *total, int *warp_counts) {
    const unsigned ballot = __ballot_sync(0xffffffffu, flag);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    __syncthreads(); // warp_counts may still be read by the previous call
    if (lane == 0) warp_counts[warp] = __popc(ballot);
    __syncthreads();
    int before = __popc(ballot & ((1u << lane) - 1u)), sum = 0;
    for (int w = 0; w < n_warps; w++) {
        if (w < warp) before += warp_counts[w];
        sum += warp_counts[w];
    }
    *total = sum;
    return before;
}

__global__ void topk_kernel(Strided2d scores, int32_t *idx, int64_t ld_idx, int k) {
    __shared__ unsigned hist[256];
    __shared__ uint32_t s_prefix;
    __shared__ int s_need;
    __shared__ int warp_counts[32];
    const int64_t r = blockIdx.x;
    const float *row = scores.p + r * scores.ld;
    const int f = (int)scores.cols, lane = threadIdx.x & 31;
    uint32_t prefix = 0, mask = 0;
    int need = k; // the rank of the k-th largest key among those matching prefix under mask
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += blockDim.x) hist[b] = 0;
        __syncthreads();
        for (int base = 0; base < f; base += blockDim.x) { // uniform trip count: the warp stays converged
            const int c = base + threadIdx.x;
            int bin = 256; // none
            if (c < f) {
                const uint32_t key = order_key(row[c]);
                if ((key & mask) == prefix) bin = (int)((key >> shift) & 255u);
            }
            const unsigned peers = __match_any_sync(0xffffffffu, bin);
            if (bin < 256 && lane == __ffs(peers) - 1) atomicAdd(&hist[bin], (unsigned)__popc(peers));
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            int b = 255;
            for (; b > 0 && (int)hist[b] < need; b--) need -= (int)hist[b];
            s_prefix = prefix | ((uint32_t)b << shift);
            s_need = need;
        }
        __syncthreads();
        prefix = s_prefix;
        need = s_need;
        mask |= 255u << shift;
    }
    // prefix = the k-th largest key T; take every key > T and the first `need` keys == T.
    int32_t *out = idx + r * ld_idx;
    int eq_seen = 0, written = 0; // block-uniform running counts
    for (int base = 0; base < f; base += blockDim.x) {
        const int c = base + threadIdx.x;
        const uint32_t key = c < f ? order_key(row[c]) : 0u;
        const bool eq = c < f && key == prefix, gt = c < f && key > prefix;
        int eq_total, sel_total;
        const int eq_before = eq_seen + block_count_before(eq, &eq_total, warp_counts);
        const bool sel = gt || (eq && eq_before < need);
        const int pos = written + block_count_before(sel, &sel_total, warp_counts);
        if (sel) out[pos] = c;
        eq_seen += eq_total;
        written += sel_total;
    }
}

extern "C" void cuda_topk_rows(Tensor *idx, const Tensor *scores) {
    use_device(idx);
    Strided2d s = strided2d(scores);
    REQUIRE(scores->dev.index == idx->dev.index);
    REQUIRE(idx->ndim == 2 && idx->dtype == DT_I32 && idx->dev.kind == DEV_CUDA);
    const int64_t n = s.rows, f = s.cols, k = idx->shape[1];
    REQUIRE(idx->shape[0] == n && k >= 1 && k <= f && f <= INT32_MAX && n <= INT32_MAX);
    REQUIRE(k <= 1 || idx->stride[1] == 1);
    if (n == 0) return;
    topk_kernel<<<(unsigned)n, threads_for(f, TOPK_MAX_THREADS)>>>(s, (int32_t *)idx->data, idx->stride[0], (int)k);
    CUDA_CHECK_LAUNCH();
}

// ---- the FFN ---------------------------------------------------------------------------

template <typename TX, typename TW>
__global__ void ffn_h_kernel(float *h, const TX *x, int64_t ldx, const TW *wg, int64_t ldg, const TW *wu, int64_t ldu,
                             const int32_t *idx, int64_t ld_idx, int k, int64_t d, int64_t f, int64_t blocks_per_row) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int64_t r = blockIdx.x / blocks_per_row;
    const int64_t i = (blockIdx.x - r * blocks_per_row) * FFN_WARPS + warp;
    if (i >= k) return; // warp-uniform; no block barriers below
    const int32_t j = idx[r * ld_idx + i];
    if (j < 0 || j >= f) __trap(); // a caller's bug (ops.h): fail loudly, read nothing
    const TX *xr = x + r * ldx;
    const TW *gr = wg + (int64_t)j * ldg, *ur = wu + (int64_t)j * ldu;
    float sg = 0.0f, su = 0.0f;
    for (int64_t c = lane; c < d; c += 32) {
        const float xv = load_f32(xr, c);
        sg = fmaf(xv, load_f32(gr, c), sg);
        su = fmaf(xv, load_f32(ur, c), su);
    }
    sg = warp_reduce(sg, SumOp());
    su = warp_reduce(su, SumOp());
    if (lane == 0) h[r * k + i] = sg / (1.0f + expf(-sg)) * su;
}

// slices == 1: out[r, c] += the sum; else part[(s * n + r) * d + c] = slice s's sum.
template <typename TW>
__global__ void ffn_down_kernel(Strided2d out, float *part, const float *h, const TW *wd, int64_t ldd, const int32_t *idx,
                                int64_t ld_idx, int k, int64_t f, int64_t col_blocks, int slices, int per_slice) {
    const int64_t n = out.rows, d = out.cols;
    const int64_t cb = blockIdx.x % col_blocks, rest = blockIdx.x / col_blocks;
    const int64_t r = rest % n, s = rest / n;
    const int64_t c = cb * DOWN_COLS + threadIdx.x;
    if (c >= d) return;
    const int i0 = (int)s * per_slice, i1 = i0 + per_slice < k ? i0 + per_slice : k;
    const int32_t *ir = idx + r * ld_idx;
    const float *hr = h + r * k;
    float acc = 0.0f;
    for (int i = i0; i < i1; i++) {
        const int32_t j = ir[i];
        if (j < 0 || j >= f) __trap();
        acc = fmaf(hr[i], load_f32(wd + (int64_t)j * ldd, c), acc);
    }
    if (slices == 1) out.p[r * out.ld + c] += acc;
    else part[(s * n + r) * d + c] = acc;
}

__global__ void ffn_sum_kernel(Strided2d out, const float *part, int slices) {
    const int64_t n = out.rows, d = out.cols, total = n * d;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = e / d, c = e - r * d;
        float acc = 0.0f;
        for (int s = 0; s < slices; s++) acc += part[(s * n + r) * d + c];
        out.p[r * out.ld + c] += acc;
    }
}

// A 2-d device operand of the FFN (x or a weight): any float dtype, contiguous rows.
static void check_operand(const Tensor *t, const Tensor *out, int64_t rows, int64_t cols) {
    REQUIRE(t->ndim == 2 && t->dev.kind == DEV_CUDA && t->dev.index == out->dev.index);
    REQUIRE(t->dtype == DT_F32 || t->dtype == DT_BF16 || t->dtype == DT_F16);
    REQUIRE(t->shape[0] == rows && t->shape[1] == cols);
    REQUIRE(cols <= 1 || t->stride[1] == 1);
    REQUIRE(rows <= 1 || t->stride[0] >= cols);
}

struct FfnArgs {
    float *h;
    const void *x, *wg, *wu;
    int64_t ldx, ldg, ldu;
    const int32_t *idx;
    int64_t ld_idx;
    int k;
    int64_t n, d, f;
};

template <typename TX, typename TW>
static void launch_h(const FfnArgs &a) {
    const int64_t blocks_per_row = ceil_div(a.k, FFN_WARPS), blocks = a.n * blocks_per_row;
    REQUIRE(blocks <= INT32_MAX);
    ffn_h_kernel<TX, TW><<<(unsigned)blocks, FFN_WARPS * 32>>>(a.h, (const TX *)a.x, a.ldx, (const TW *)a.wg, a.ldg,
                                                              (const TW *)a.wu, a.ldu, a.idx, a.ld_idx, a.k, a.d, a.f,
                                                              blocks_per_row);
}

template <typename TW>
static void launch_h_for_x(DType xdt, const FfnArgs &a) {
    switch (xdt) {
    case DT_F32: launch_h<float, TW>(a); break;
    case DT_BF16: launch_h<__nv_bfloat16, TW>(a); break;
    case DT_F16: launch_h<__half, TW>(a); break;
    default: REQUIRE(!"ffn_sparse: x must be f32, bf16 or f16");
    }
}

template <typename TW>
static void launch_down(Strided2d o, float *part, const float *h, const Tensor *wdt, const int32_t *idx, int64_t ld_idx,
                        int k, int64_t f, int64_t col_blocks, int slices, int per_slice) {
    const int64_t blocks = col_blocks * o.rows * slices;
    REQUIRE(blocks <= INT32_MAX);
    ffn_down_kernel<TW><<<(unsigned)blocks, DOWN_COLS>>>(o, part, h, (const TW *)wdt->data, wdt->stride[0], idx, ld_idx,
                                                         k, f, col_blocks, slices, per_slice);
}

extern "C" void cuda_ffn_sparse(Tensor *out, const Tensor *x, const Tensor *w_gate, const Tensor *w_up,
                                const Tensor *w_down_t, const Tensor *idx) {
    use_device(out);
    Strided2d o = strided2d(out);
    const int64_t n = o.rows, d = o.cols, f = w_gate->shape[0];
    check_operand(x, out, n, d);
    check_operand(w_gate, out, f, d);
    check_operand(w_up, out, f, d);
    check_operand(w_down_t, out, f, d);
    REQUIRE(w_up->dtype == w_gate->dtype && w_down_t->dtype == w_gate->dtype);
    REQUIRE(idx->ndim == 2 && idx->dtype == DT_I32 && idx->dev.kind == DEV_CUDA && idx->dev.index == out->dev.index);
    REQUIRE(idx->shape[0] == n && (idx->shape[1] <= 1 || idx->stride[1] == 1));
    REQUIRE(idx->shape[1] <= INT32_MAX && f <= INT32_MAX);
    const int k = (int)idx->shape[1];
    if (n == 0 || d == 0 || k == 0) return;

    // phase 1: h [n, k]
    float *h = (float *)cuda_workspace(WS_SPARSE_H, (size_t)(n * k) * sizeof(float));
    FfnArgs a = {h,          x->data, w_gate->data, w_up->data, x->stride[0], w_gate->stride[0], w_up->stride[0],
                 (const int32_t *)idx->data, idx->stride[0], k, n, d, f};
    switch (w_gate->dtype) {
    case DT_F32: launch_h_for_x<float>(x->dtype, a); break;
    case DT_BF16: launch_h_for_x<__nv_bfloat16>(x->dtype, a); break;
    case DT_F16: launch_h_for_x<__half>(x->dtype, a); break;
    default: REQUIRE(!"ffn_sparse: weights must be f32, bf16 or f16");
    }
    CUDA_CHECK_LAUNCH();

    // phase 2 (and 3): ~4 blocks per SM, splitting k when the rows and columns give fewer
    int dev = 0, sms = 1;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    const int64_t col_blocks = ceil_div(d, DOWN_COLS), base = col_blocks * n, want = 4 * (int64_t)sms;
    int64_t slices = base >= want ? 1 : ceil_div(want, base);
    const int64_t max_slices = ceil_div(k, MIN_SLICE);
    if (slices > max_slices) slices = max_slices;
    if (slices > 64) slices = 64;
    if (slices < 1) slices = 1;
    const int per_slice = (int)ceil_div(k, slices);
    slices = ceil_div(k, per_slice); // no empty slice
    float *part = NULL;
    if (slices > 1) part = (float *)cuda_workspace(WS_SPARSE_PART, (size_t)(slices * n * d) * sizeof(float));
    const int32_t *d_idx = (const int32_t *)idx->data;
    switch (w_down_t->dtype) {
    case DT_F32: launch_down<float>(o, part, h, w_down_t, d_idx, idx->stride[0], k, f, col_blocks, (int)slices, per_slice); break;
    case DT_BF16:
        launch_down<__nv_bfloat16>(o, part, h, w_down_t, d_idx, idx->stride[0], k, f, col_blocks, (int)slices, per_slice);
        break;
    case DT_F16: launch_down<__half>(o, part, h, w_down_t, d_idx, idx->stride[0], k, f, col_blocks, (int)slices, per_slice); break;
    default: REQUIRE(!"ffn_sparse: weights must be f32, bf16 or f16");
    }
    CUDA_CHECK_LAUNCH();
    if (slices > 1) {
        ffn_sum_kernel<<<grid_for(n * d, 256), 256>>>(o, part, (int)slices);
        CUDA_CHECK_LAUNCH();
    }
}
