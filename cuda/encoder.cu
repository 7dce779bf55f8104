// The encoders' forward ops on CUDA (ops.h "encoders", and op_attention_varlen):
// one kernel and one launcher per op, on the current device's default stream,
// fp32 arithmetic throughout (the same formulas as ops_cpu_encoder.c and
// ops_cpu_grad.c, in another summation order).
//
// Parallelisation:
//   layernorm_kernel        grid N rows, <= 256 threads: the row's sum, then its sum of squared
//                           deviations (both in double, as the CPU), by block reductions; then the row.
//   scale_shift_kernel, bias_add_kernel, activation_kernel
//                           grid-stride over the N*D elements (rows from the flat index).
//   varlen_attention_kernel packed sequences (cu, a device array), causal or bidirectional:
//     grid (ceil(N * group / W), n_kv_heads), W <= 8 warps, a warp per (query row, head) pair,
//     pairs r*group + i (row r, head g*group + i) so that a block's warps read the same kv head.
//     The block walks the keys that any of its rows sees (from the first row's sequence start
//     to the last row's limit; its rows may straddle sequences) in tiles of 32 in shared
//     memory; lane j scores key j, the warp keeps an online softmax (as attention.cu's CUDA-core
//     kernel) and masks the keys outside its own row's range. lse = max + log(sum) per pair.
#include <math.h>
#include <string.h>

#include "common.cuh"

// A [D] f32 device parameter (w, b): 1-d or [D, 1], contiguous.
static const float *param(const Tensor *t, int64_t d) {
    REQUIRE(t->dtype == DT_F32 && t->dev.kind == DEV_CUDA && t->shape[0] == d);
    REQUIRE(t->ndim == 1 || (t->ndim == 2 && t->shape[1] == 1));
    REQUIRE(t->ndim != 1 || d <= 1 || t->stride[0] == 1);
    return (const float *)t->data;
}

// ---- layernorm ---------------------------------------------------------------------

// out may alias x: every read of the row happens before the reductions' last barrier,
// and the last pass reads and writes each element in the same thread.
__global__ void layernorm_kernel(Out2d out, Strided2d x, const float *w, const float *b, float eps) {
    const int64_t r = blockIdx.x;
    const float *xr = x.p + r * x.ld;
    double s = 0.0;
    for (int64_t c = threadIdx.x; c < x.cols; c += blockDim.x) s += xr[c];
    const double mu = block_reduce(s, SumOp(), 0.0) / (double)x.cols;
    double ss = 0.0;
    for (int64_t c = threadIdx.x; c < x.cols; c += blockDim.x) ss += ((double)xr[c] - mu) * ((double)xr[c] - mu);
    ss = block_reduce(ss, SumOp(), 0.0);
    const float mean = (float)mu, rstd = (float)(1.0 / sqrt(ss / (double)x.cols + (double)eps));
    for (int64_t c = threadIdx.x; c < x.cols; c += blockDim.x) put(out, r, c, ((xr[c] - mean) * rstd) * w[c] + b[c]);
}

extern "C" void cuda_layernorm(Tensor *out, const Tensor *x, const Tensor *w, const Tensor *b, float eps) {
    use_device(out);
    Out2d o = out2d(out);
    Strided2d xv = strided2d(x);
    REQUIRE(same_shape(o, xv));
    const float *wp = param(w, xv.cols), *bp = param(b, xv.cols);
    if (xv.rows == 0 || xv.cols == 0) return;
    layernorm_kernel<<<(unsigned)xv.rows, threads_for(xv.cols, 256)>>>(o, xv, wp, bp, eps);
    CUDA_CHECK_LAUNCH();
}

// ---- scale and shift, bias ---------------------------------------------------------------

// b may be NULL (a block-uniform branch); out may alias x (one thread per element).
__global__ void scale_shift_kernel(Out2d out, Strided2d x, const float *w, const float *b) {
    const int64_t n = out.rows * out.cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / out.cols, c = i - r * out.cols;
        float y = x.p[r * x.ld + c] * w[c];
        put(out, r, c, b ? y + b[c] : y);
    }
}

extern "C" void cuda_scale_shift(Tensor *out, const Tensor *x, const Tensor *w, const Tensor *b) {
    use_device(out);
    Out2d o = out2d(out);
    Strided2d xv = strided2d(x);
    REQUIRE(same_shape(o, xv));
    const float *wp = param(w, xv.cols), *bp = b ? param(b, xv.cols) : NULL;
    const int64_t n = o.rows * o.cols;
    if (n == 0) return;
    scale_shift_kernel<<<grid_for(n, 256), 256>>>(o, xv, wp, bp);
    CUDA_CHECK_LAUNCH();
}

__global__ void bias_add_kernel(Strided2d x, const float *b) {
    const int64_t n = x.rows * x.cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / x.cols, c = i - r * x.cols;
        x.p[r * x.ld + c] += b[c];
    }
}

extern "C" void cuda_bias_add(Tensor *x, const Tensor *b) {
    use_device(x);
    Strided2d xv = strided2d(x);
    const float *bp = param(b, xv.cols);
    const int64_t n = xv.rows * xv.cols;
    if (n == 0) return;
    bias_add_kernel<<<grid_for(n, 256), 256>>>(xv, bp);
    CUDA_CHECK_LAUNCH();
}

// ---- activations ----------------------------------------------------------------------------

// act is a kernel argument (uniform): GELU exact (erf), as the CPU.
__global__ void activation_kernel(Out2d out, Strided2d x, Activation act) {
    const int64_t n = out.rows * out.cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / out.cols, c = i - r * out.cols;
        const float v = x.p[r * x.ld + c];
        float y;
        if (act == ACT_GELU) y = 0.5f * v * (1.0f + erff(v * (float)M_SQRT1_2));
        else if (act == ACT_RELU) y = v > 0.0f ? v : 0.0f;
        else y = tanhf(v);
        put(out, r, c, y);
    }
}

extern "C" void cuda_activation(Tensor *out, const Tensor *x, Activation act) {
    use_device(out);
    REQUIRE(act == ACT_GELU || act == ACT_RELU || act == ACT_TANH);
    Out2d o = out2d(out);
    Strided2d xv = strided2d(x);
    REQUIRE(same_shape(o, xv));
    const int64_t n = o.rows * o.cols;
    if (n == 0) return;
    activation_kernel<<<grid_for(n, 256), 256>>>(o, xv, act);
    CUDA_CHECK_LAUNCH();
}

// ---- varlen attention -------------------------------------------------------------------------

#define VL_MAX_HD 256   // head_dim limit: VL_MAX_HD / 32 accumulators per lane
#define VL_KT 32        // keys per shared-memory tile: one per lane
#define VL_MAX_WARPS 8  // (query row, head) pairs per block

typedef struct {
    void *out;             // f32, bf16 or f16 (out_dt)
    int64_t ldo;
    DType out_dt;
    float *lse;            // [n_heads, N] (row stride ldl), or NULL
    int64_t ldl;
    const float *q, *k, *v;
    int64_t ldq, ldk, ldv;
    const int32_t *cu;     // [n_seq + 1], device
    int n_seq, hd, group;
    int64_t N;
    float scale;
    bool causal;
} VarlenArgs;

// The sequence that holds row r: the largest b with cu[b] <= r (empty sequences,
// cu[b] = cu[b + 1], are passed over since a later start equals theirs).
__device__ __forceinline__ int seq_of(const int32_t *cu, int n_seq, int64_t r) {
    int lo = 0, hi = n_seq - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (cu[mid] <= r) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

// Keys [*ks, *ke) of row r: its sequence's, up to itself when causal.
__device__ __forceinline__ void row_keys(const VarlenArgs &a, int64_t r, int64_t *ks, int64_t *ke) {
    const int b = seq_of(a.cu, a.n_seq, r);
    *ks = a.cu[b];
    *ke = a.causal ? r + 1 : a.cu[b + 1];
}

// Shared memory: q of each warp [W][hd], a K tile [VL_KT][hd + 1] (padded: lane j
// reads row j without bank conflicts), a V tile [VL_KT][hd].
static size_t varlen_smem(int n_warps, int hd) {
    return (size_t)(n_warps * hd + VL_KT * (hd + 1) + VL_KT * hd) * sizeof(float);
}

__global__ void varlen_attention_kernel(VarlenArgs a) {
    extern __shared__ float smem[];
    const int hd = a.hd, n_warps = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *q_s = smem, *k_s = q_s + n_warps * hd, *v_s = k_s + VL_KT * (hd + 1);
    const int g = blockIdx.y;
    const int64_t n_pairs = a.N * a.group, p0 = (int64_t)blockIdx.x * n_warps, p = p0 + warp;
    const bool active = p < n_pairs;
    const int64_t r = active ? p / a.group : 0;
    const int h = g * a.group + (active ? (int)(p % a.group) : 0);
    // The block's keys: from its first row's sequence start to its last row's limit.
    const int64_t p_last = (p0 + n_warps < n_pairs ? p0 + n_warps : n_pairs) - 1;
    int64_t k_lo, k_hi, unused, ks = 0, ke = 0;
    row_keys(a, p0 / a.group, &k_lo, &unused);
    row_keys(a, p_last / a.group, &unused, &k_hi);
    if (active) row_keys(a, r, &ks, &ke);
    const int64_t col = (int64_t)g * hd;

    if (active) {
        const float *qp = a.q + r * a.ldq + (int64_t)h * hd;
        for (int d = lane; d < hd; d += 32) q_s[warp * hd + d] = qp[d];
    }
    float m = -INFINITY, l = 0.0f, acc[VL_MAX_HD / 32];
#pragma unroll
    for (int i = 0; i < VL_MAX_HD / 32; i++) acc[i] = 0.0f;

    for (int64_t j0 = k_lo; j0 < k_hi; j0 += VL_KT) { // block-uniform trip count: the syncs are safe
        const int n_tile = (int)(k_hi - j0 < VL_KT ? k_hi - j0 : VL_KT);
        __syncthreads(); // the previous tile is consumed (and q_s written, the first time)
        for (int idx = threadIdx.x; idx < n_tile * hd; idx += blockDim.x) {
            int jj = idx / hd, d = idx - jj * hd;
            k_s[jj * (hd + 1) + d] = a.k[(j0 + jj) * a.ldk + col + d];
            v_s[jj * hd + d] = a.v[(j0 + jj) * a.ldv + col + d];
        }
        __syncthreads();
        if (!active || j0 >= ke || j0 + n_tile <= ks) continue; // warp-uniform

        const int64_t j = j0 + lane;
        const bool visible = lane < n_tile && j >= ks && j < ke;
        float s = -INFINITY;
        if (visible) {
            const float *qr = q_s + warp * hd, *kr = k_s + lane * (hd + 1);
            float dot = 0.0f;
            for (int d = 0; d < hd; d++) dot += qr[d] * kr[d];
            s = dot * a.scale;
        }
        const float m_tile = warp_reduce(s, MaxOp());
        if (m_tile == -INFINITY) continue; // nothing visible in this tile (warp-uniform)
        const float m_new = fmaxf(m, m_tile), alpha = expf(m - m_new); // expf(-inf) = 0 at the start
        const float pv = visible ? expf(s - m_new) : 0.0f;
        l = l * alpha + warp_reduce(pv, SumOp());
        m = m_new;
#pragma unroll
        for (int i = 0; i < VL_MAX_HD / 32; i++) acc[i] *= alpha;
        for (int jj = 0; jj < n_tile; jj++) {
            const float pj = __shfl_sync(0xffffffffu, pv, jj);
            const float *vr = v_s + jj * hd;
#pragma unroll
            for (int i = 0; i < VL_MAX_HD / 32; i++) {
                int d = lane + 32 * i;
                if (d < hd) acc[i] += pj * vr[d];
            }
        }
    }
    if (!active) return;
    const int64_t o0 = r * a.ldo + (int64_t)h * hd; // every query sees itself: l > 0
#pragma unroll
    for (int i = 0; i < VL_MAX_HD / 32; i++) {
        int d = lane + 32 * i;
        if (d < hd) store_dt(a.out, a.out_dt, o0 + d, l > 0.0f ? acc[i] / l : 0.0f);
    }
    if (a.lse && lane == 0) a.lse[(int64_t)h * a.ldl + r] = m + logf(l);
}

extern "C" void cuda_attention_varlen(Tensor *out, Tensor *lse, const Tensor *q, const Tensor *k, const Tensor *v,
                                      const VarlenShape *s) {
    use_device(out);
    const int hd = s->head_dim;
    REQUIRE(s->n_seq >= 1 && s->cu && s->n_heads > 0 && s->n_kv_heads > 0 && s->n_heads % s->n_kv_heads == 0);
    REQUIRE(hd > 0 && hd <= VL_MAX_HD && s->n_kv_heads <= 65535);
    Out2d o = out2d(out);
    Strided2d qv = strided2d(q), kv = strided2d(k), vv = strided2d(v);
    REQUIRE(same_shape(o, qv) && qv.cols == (int64_t)s->n_heads * hd);
    REQUIRE(kv.cols == (int64_t)s->n_kv_heads * hd && same_shape(kv, vv) && kv.rows == qv.rows);
    VarlenArgs a;
    memset(&a, 0, sizeof a);
    if (lse) {
        Strided2d lv = strided2d(lse);
        REQUIRE(lv.rows == s->n_heads && lv.cols == qv.rows);
        a.lse = lv.p, a.ldl = lv.ld;
    }
    if (qv.rows == 0) return;
    a.out = o.p, a.ldo = o.ld, a.out_dt = o.dt;
    a.q = qv.p, a.k = kv.p, a.v = vv.p, a.ldq = qv.ld, a.ldk = kv.ld, a.ldv = vv.ld;
    a.cu = s->cu, a.n_seq = s->n_seq, a.hd = hd, a.group = s->n_heads / s->n_kv_heads, a.N = qv.rows;
    a.scale = 1.0f / sqrtf((float)hd);
    a.causal = !s->bidirectional;
    const int64_t n_pairs = qv.rows * a.group;
    const int n_warps = n_pairs < VL_MAX_WARPS ? (int)n_pairs : VL_MAX_WARPS;
    const int64_t grid_x = ceil_div(n_pairs, n_warps);
    REQUIRE(grid_x <= 0x7fffffff);
    const size_t smem = varlen_smem(n_warps, hd);
    if (smem > 48 * 1024) // head sizes past 160 (opt-in shared memory, sm_80+: >= 99 KiB)
        CUDA_CHECK(cudaFuncSetAttribute(varlen_attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    varlen_attention_kernel<<<dim3((unsigned)grid_x, (unsigned)s->n_kv_heads), 32 * n_warps, smem>>>(a);
    CUDA_CHECK_LAUNCH();
}
