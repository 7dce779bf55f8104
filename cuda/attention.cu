// Attention over the KV cache (ops.h op_attention) on CUDA: two kernels and a
// dispatcher.
//
// mma_attention_kernel<HD>   prefill (many queries per kv head): flash attention on the tensor
//                            cores, TF32 operands with fp32 accumulation (wmma m16n16k8).
//   grid (ceil(T*group / 64), n_kv_heads, n_seq), 4 warps. The block's 64 rows are
//   (query, head) pairs that read the same kv head, row r = t*group + i (query t, head
//   g*group + i), so one K/V tile in shared memory serves every query head of the group.
//   Each warp owns 16 rows: their Q fragments stay in registers, their output
//   accumulator O [16][HD] in shared memory (rescaling it row by row needs no knowledge
//   of the fragments' register layout). Per tile of 32 keys: S = Q K^T on the tensor
//   cores into shared memory, the online softmax of each row by two lanes (running max
//   and sum in registers, masks from shared memory), O *= alpha row-wise, O += P V on
//   the tensor cores. Key tiles past the block's last query are never loaded; a warp
//   skips the tiles past its own last query.
// attention_kernel           decode and short prompts (few rows per kv head): CUDA cores.
//   grid (ceil(T*group / W), n_kv_heads * n_splits, n_seq), W <= 8 warps, a warp per row.
//   Per tile of 32 keys in shared memory, lane j scores key j, the warp keeps an online
//   softmax and each lane accumulates head_dim/32 output columns. When these blocks would
//   not fill the GPU, the keys are split into n_splits ranges (flash-decoding) and
// attention_combine_kernel   merges the splits' (max, sum, partial output) per row.
//
// Both read each sequence's own key mask at kmask[s*cap + i] and the shared prefix's at
// smask[row0 + j] in device memory (ops.h: the model uploads them once per forward).
#include <math.h>
#include <mma.h>
#include <stdlib.h>
#include <string.h>

#include "common.cuh"

// Everything a kernel needs about one op_attention call.
typedef struct {
    void *out;                 // f32, bf16 or f16 (out_dt)
    int64_t ldo;
    DType out_dt;
    const float *q;
    int64_t ldq;
    const float *k, *v;        // the cache at this kv width; sequence s owns rows s*cap ...
    int64_t ldk, ldv;
    const float *sk, *sv;      // the shared prefix's first row (key 0), or NULL
    int64_t ldsk, ldsv;
    const int32_t *kmask;      // [n_seq * cap]: row s*cap + i = own key n_sh + i
    const int32_t *smask;      // [n_sh]: the shared prefix's keys
    int T, n_past, cap, n_heads, hd, group, n_sh;
    float scale;
    int n_splits, split_keys;  // attention_kernel: key ranges [i*split_keys, (i+1)*split_keys)
    float2 *part_ml;           // [rows, n_splits] (max, sum), rows = (s*T + t)*n_heads + h
    float *part_o;             // [rows, n_splits, hd] unnormalised outputs
} AttnArgs;

// Key j of sequence b: where its K and V rows start (column 0 of the kv width) and its mask.
__device__ __forceinline__ const float *key_row(const AttnArgs &a, int b, int j) {
    return j < a.n_sh ? a.sk + (int64_t)j * a.ldsk : a.k + ((int64_t)b * a.cap + (j - a.n_sh)) * a.ldk;
}
__device__ __forceinline__ const float *value_row(const AttnArgs &a, int b, int j) {
    return j < a.n_sh ? a.sv + (int64_t)j * a.ldsv : a.v + ((int64_t)b * a.cap + (j - a.n_sh)) * a.ldv;
}
__device__ __forceinline__ bool key_real(const AttnArgs &a, int b, int j) {
    return (j < a.n_sh ? a.smask[j] : a.kmask[(int64_t)b * a.cap + (j - a.n_sh)]) != 0;
}

// ---- tensor cores: prefill -------------------------------------------------------------

#define MMA_WARPS 4
#define MMA_BQ (16 * MMA_WARPS) // rows per block
#define MMA_BK 32               // keys per tile
#define MMA_LDS (MMA_BK + 4)    // row stride of S (floats): a multiple of 4, as wmma wants

namespace wmma = nvcuda::wmma;

// Shared memory of mma_attention_kernel<HD> (floats, then ints): K and V tiles
// [MMA_BK][HD + 4], S [MMA_BQ][MMA_LDS], O [MMA_BQ][HD + 4], per-row alpha and l
// [MMA_BQ], the tile's key mask [MMA_BK]. Every array starts at a multiple of 32
// bytes, as wmma's loads and stores want.
static size_t mma_attention_smem(int hd) {
    size_t ldh = (size_t)hd + 4;
    return (2 * MMA_BK * ldh + MMA_BQ * MMA_LDS + MMA_BQ * ldh + 2 * MMA_BQ + MMA_BK) * sizeof(float);
}

template <int HD>
__global__ void __launch_bounds__(32 * MMA_WARPS) mma_attention_kernel(AttnArgs a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
    using FragBc = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;
    using FragBr = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
    using FragC = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;
    constexpr int LDH = HD + 4;
    extern __shared__ __align__(128) float mma_smem[];
    float *k_s = mma_smem, *v_s = k_s + MMA_BK * LDH, *s_s = v_s + MMA_BK * LDH, *o_s = s_s + MMA_BQ * MMA_LDS;
    float *alpha_s = o_s + MMA_BQ * LDH, *l_s = alpha_s + MMA_BQ;
    int *mask_s = (int *)(l_s + MMA_BQ);

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = blockIdx.y, b = blockIdx.z, n_rows = a.T * a.group;
    const int r0 = blockIdx.x * MMA_BQ, w0 = r0 + warp * 16; // the block's and the warp's first row
    const int r_last = min(r0 + MMA_BQ, n_rows) - 1;
    const int k_end = a.n_past + r_last / a.group + 1;       // keys any row of the block sees
    const int w_rows = max(0, min(16, n_rows - w0));           // the warp's real rows
    const int w_kmax = w_rows > 0 ? a.n_past + (w0 + w_rows - 1) / a.group : -1; // its last visible key
    const int64_t col = (int64_t)g * HD;
    float *o_w = o_s + warp * 16 * LDH, *s_w = s_s + warp * 16 * MMA_LDS;

    // The warp's 16 query rows, staged through its O rows, into TF32 fragments.
    for (int idx = lane; idx < 16 * HD; idx += 32) {
        int rr = idx / HD, d = idx - rr * HD, r = w0 + rr;
        float x = 0.0f;
        if (rr < w_rows) {
            int t = r / a.group, h = g * a.group + r % a.group;
            x = a.q[((int64_t)b * a.T + t) * a.ldq + (int64_t)h * HD + d];
        }
        o_w[rr * LDH + d] = x;
    }
    __syncwarp();
    FragA qf[HD / 8];
#pragma unroll
    for (int kk = 0; kk < HD / 8; kk++) {
        wmma::load_matrix_sync(qf[kk], o_w + kk * 8, LDH);
#pragma unroll
        for (int e = 0; e < qf[kk].num_elements; e++) qf[kk].x[e] = wmma::__float_to_tf32(qf[kk].x[e]);
    }
    __syncwarp();
    for (int idx = lane; idx < 16 * HD; idx += 32) o_w[(idx / HD) * LDH + idx % HD] = 0.0f;

    // Online-softmax state of row rr = lane / 2, held by the lane pair (2rr, 2rr + 1); each
    // lane of the pair scores half of the tile's keys.
    const int rr = lane >> 1, half = lane & 1;
    const int q_idx = rr < w_rows ? a.n_past + (w0 + rr) / a.group : -1; // sees keys j <= q_idx
    float m_run = -INFINITY, l_run = 0.0f;

    for (int j0 = 0; j0 < k_end; j0 += MMA_BK) { // block-uniform trip count: the barriers are safe
        __syncthreads();                          // the previous tile is consumed
        for (int idx = threadIdx.x; idx < MMA_BK * HD; idx += blockDim.x) {
            int jj = idx / HD, d = idx - jj * HD, j = j0 + jj;
            float kx = 0.0f, vx = 0.0f; // keys past the block's last query: zeros, never NaN * 0
            if (j < k_end) {
                kx = key_row(a, b, j)[col + d];
                vx = value_row(a, b, j)[col + d];
            }
            k_s[jj * LDH + d] = wmma::__float_to_tf32(kx);
            v_s[jj * LDH + d] = wmma::__float_to_tf32(vx);
        }
        for (int jj = threadIdx.x; jj < MMA_BK; jj += blockDim.x) {
            int j = j0 + jj;
            mask_s[jj] = j < k_end && key_real(a, b, j);
        }
        __syncthreads();
        if (w_rows == 0 || j0 > w_kmax) continue; // warp-uniform: nothing of this tile is visible to the warp

        // S [16][MMA_BK] = Q K^T
#pragma unroll
        for (int nt = 0; nt < MMA_BK / 16; nt++) {
            FragC sf;
            wmma::fill_fragment(sf, 0.0f);
#pragma unroll
            for (int kk = 0; kk < HD / 8; kk++) {
                FragBc kf; // B(k, n) = K[n][k]: K^T read column-major
                wmma::load_matrix_sync(kf, k_s + nt * 16 * LDH + kk * 8, LDH);
                wmma::mma_sync(sf, qf[kk], kf, sf);
            }
            wmma::store_matrix_sync(s_w + nt * 16, sf, MMA_LDS, wmma::mem_row_major);
        }
        __syncwarp();

        // online softmax of row rr over this tile's keys [half * BK/2, (half + 1) * BK/2)
        float *srow = s_w + rr * MMA_LDS + half * (MMA_BK / 2);
        float sv[MMA_BK / 2], mx = -INFINITY;
#pragma unroll
        for (int c = 0; c < MMA_BK / 2; c++) {
            int jj = half * (MMA_BK / 2) + c;
            bool vis = j0 + jj <= q_idx && mask_s[jj];
            sv[c] = vis ? srow[c] * a.scale : -INFINITY;
            mx = fmaxf(mx, sv[c]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        const float m_new = fmaxf(m_run, mx);
        float alpha = 1.0f, sum = 0.0f;
        if (m_new != -INFINITY) { // else nothing seen yet: P = 0, O and l stay 0
            alpha = expf(m_run - m_new); // 0 the first time (m_run = -inf)
#pragma unroll
            for (int c = 0; c < MMA_BK / 2; c++) {
                float p = sv[c] == -INFINITY ? 0.0f : expf(sv[c] - m_new);
                sum += p;
                srow[c] = wmma::__float_to_tf32(p);
            }
        } else {
#pragma unroll
            for (int c = 0; c < MMA_BK / 2; c++) srow[c] = 0.0f;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l_run = l_run * alpha + sum;
        m_run = m_new;
        if (half == 0) alpha_s[warp * 16 + rr] = alpha;
        __syncwarp();

        // O *= alpha row-wise, then O += P V
        for (int idx = lane; idx < 16 * HD; idx += 32) {
            int row = idx / HD;
            o_w[row * LDH + (idx - row * HD)] *= alpha_s[warp * 16 + row];
        }
        __syncwarp();
#pragma unroll
        for (int nt = 0; nt < HD / 16; nt++) {
            FragC of;
            wmma::load_matrix_sync(of, o_w + nt * 16, LDH, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < MMA_BK / 8; kk++) {
                FragA pf;
                FragBr vf;
                wmma::load_matrix_sync(pf, s_w + kk * 8, MMA_LDS);
                wmma::load_matrix_sync(vf, v_s + kk * 8 * LDH + nt * 16, LDH);
                wmma::mma_sync(of, pf, vf, of);
            }
            wmma::store_matrix_sync(o_w + nt * 16, of, LDH, wmma::mem_row_major);
        }
        __syncwarp();
    }

    // out = O / l; a row that saw no key (l = 0) gets zeros
    if (half == 0) l_s[warp * 16 + rr] = l_run;
    __syncwarp();
    for (int row = 0; row < w_rows; row++) {
        int r = w0 + row, t = r / a.group, h = g * a.group + r % a.group;
        float l = l_s[warp * 16 + row];
        const int64_t o0 = ((int64_t)b * a.T + t) * a.ldo + (int64_t)h * HD;
        for (int d = lane; d < HD; d += 32) store_dt(a.out, a.out_dt, o0 + d, l > 0.0f ? o_w[row * LDH + d] / l : 0.0f);
    }
#endif
}

// ---- CUDA cores: decode and short prompts ------------------------------------------------

#define ATT_MAX_HD 256          // head_dim limit: ATT_MAX_HD / 32 accumulators per lane
#define ATT_KT 32               // keys per shared-memory tile: one per lane
#define ATT_MAX_WARPS 8         // (query, head) rows per block
#define ATT_MIN_SPLIT_KEYS 256  // fewest keys worth a split of their own

// Shared memory: q of each warp [W][hd], a K tile [ATT_KT][hd + 1] (padded: lane j
// reads row j without bank conflicts), a V tile [ATT_KT][hd].
static size_t attention_smem(int n_warps, int hd) {
    return (size_t)(n_warps * hd + ATT_KT * (hd + 1) + ATT_KT * hd) * sizeof(float);
}

__global__ void attention_kernel(AttnArgs a) {
    extern __shared__ float smem[];
    const int hd = a.hd, n_warps = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float *q_s = smem, *k_s = q_s + n_warps * hd, *v_s = k_s + ATT_KT * (hd + 1);
    const int g = blockIdx.y / a.n_splits, split = blockIdx.y % a.n_splits, b = blockIdx.z;
    const int n_rows = a.T * a.group, r0 = blockIdx.x * n_warps, r = r0 + warp;
    const bool active = r < n_rows;
    const int t = active ? r / a.group : 0, h = g * a.group + (active ? r % a.group : 0);
    const int q_idx = a.n_past + t; // the query's cache index: it sees keys j <= q_idx
    // This block's keys: its split's range, up to what its last row can see.
    const int r_last = (r0 + n_warps < n_rows ? r0 + n_warps : n_rows) - 1;
    const int k_end = a.n_past + r_last / a.group + 1;
    const int k_lo = split * a.split_keys, k_hi = min(k_lo + a.split_keys, k_end);
    const int64_t col = (int64_t)g * hd;

    if (active) {
        const float *qp = a.q + ((int64_t)b * a.T + t) * a.ldq + (int64_t)h * hd;
        for (int d = lane; d < hd; d += 32) q_s[warp * hd + d] = qp[d];
    }
    float m = -INFINITY, l = 0.0f, acc[ATT_MAX_HD / 32];
#pragma unroll
    for (int i = 0; i < ATT_MAX_HD / 32; i++) acc[i] = 0.0f;

    for (int j0 = k_lo; j0 < k_hi; j0 += ATT_KT) { // block-uniform trip count: the syncs are safe
        const int n_tile = min(ATT_KT, k_hi - j0);
        __syncthreads(); // the previous tile is consumed (and q_s written, the first time)
        for (int idx = threadIdx.x; idx < n_tile * hd; idx += blockDim.x) {
            int jj = idx / hd, d = idx - jj * hd, j = j0 + jj;
            k_s[jj * (hd + 1) + d] = key_row(a, b, j)[col + d];
            v_s[jj * hd + d] = value_row(a, b, j)[col + d];
        }
        __syncthreads();
        if (!active || j0 > q_idx) continue; // warp-uniform

        const int j = j0 + lane;
        const bool visible = lane < n_tile && j <= q_idx && key_real(a, b, j);
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
        const float p = visible ? expf(s - m_new) : 0.0f;
        l = l * alpha + warp_reduce(p, SumOp());
        m = m_new;
#pragma unroll
        for (int i = 0; i < ATT_MAX_HD / 32; i++) acc[i] *= alpha;
        for (int jj = 0; jj < n_tile; jj++) {
            const float pj = __shfl_sync(0xffffffffu, p, jj);
            const float *vr = v_s + jj * hd;
#pragma unroll
            for (int i = 0; i < ATT_MAX_HD / 32; i++) {
                int d = lane + 32 * i;
                if (d < hd) acc[i] += pj * vr[d];
            }
        }
    }
    if (!active) return;
    if (a.n_splits == 1) { // a query that sees no key (l = 0) gets zeros
        const int64_t o0 = ((int64_t)b * a.T + t) * a.ldo + (int64_t)h * hd;
#pragma unroll
        for (int i = 0; i < ATT_MAX_HD / 32; i++) {
            int d = lane + 32 * i;
            if (d < hd) store_dt(a.out, a.out_dt, o0 + d, l > 0.0f ? acc[i] / l : 0.0f);
        }
    } else {
        int64_t slot = (((int64_t)b * a.T + t) * a.n_heads + h) * a.n_splits + split;
        float *po = a.part_o + slot * hd;
#pragma unroll
        for (int i = 0; i < ATT_MAX_HD / 32; i++) {
            int d = lane + 32 * i;
            if (d < hd) po[d] = acc[i];
        }
        if (lane == 0) a.part_ml[slot] = make_float2(m, l);
    }
}

// One block per (sequence, query, head) row: out = sum_i e^(m_i - M) o_i / sum_i e^(m_i - M) l_i.
__global__ void attention_combine_kernel(AttnArgs a) {
    const int64_t row = blockIdx.x; // (s*T + t)*n_heads + h
    const int h = (int)(row % a.n_heads);
    const int64_t st = row / a.n_heads;
    const float2 *ml = a.part_ml + row * a.n_splits;
    const int64_t o0 = st * a.ldo + (int64_t)h * a.hd;
    float mx = -INFINITY;
    for (int i = 0; i < a.n_splits; i++) mx = fmaxf(mx, ml[i].x);
    if (mx == -INFINITY) { // no split saw a key
        for (int d = threadIdx.x; d < a.hd; d += blockDim.x) store_dt(a.out, a.out_dt, o0 + d, 0.0f);
        return;
    }
    float sum = 0.0f;
    for (int i = 0; i < a.n_splits; i++) sum += ml[i].y * expf(ml[i].x - mx);
    const float *po = a.part_o + row * a.n_splits * a.hd;
    for (int d = threadIdx.x; d < a.hd; d += blockDim.x) {
        float o = 0.0f;
        for (int i = 0; i < a.n_splits; i++) o += po[(int64_t)i * a.hd + d] * expf(ml[i].x - mx);
        store_dt(a.out, a.out_dt, o0 + d, o / sum);
    }
}

// ---- dispatch -----------------------------------------------------------------------------

#define MAX_DEVICES DEVICE_MAX_CUDA

static int current_device(void) {
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    REQUIRE(dev >= 0 && dev < MAX_DEVICES);
    return dev;
}

static int device_attr(cudaDeviceAttr attr) {
    static int cached[MAX_DEVICES][3]; // 0 = not asked yet (none of these is 0 on a real device)
    static const cudaDeviceAttr which[3] = {cudaDevAttrMultiProcessorCount, cudaDevAttrComputeCapabilityMajor,
                                            cudaDevAttrMaxSharedMemoryPerBlockOptin};
    int dev = current_device(), i = 0;
    while (i < 3 && which[i] != attr) i++;
    REQUIRE(i < 3);
    if (!cached[dev][i]) CUDA_CHECK(cudaDeviceGetAttribute(&cached[dev][i], attr, dev));
    return cached[dev][i];
}

// Dynamic shared memory beyond 48 KiB must be asked for, per kernel and device.
static void allow_smem(const void *kernel, int which, size_t bytes) {
    static size_t allowed[MAX_DEVICES][8];
    int dev = current_device();
    REQUIRE(which >= 0 && which < 8);
    if (bytes <= 48 * 1024 || bytes <= allowed[dev][which]) return;
    REQUIRE(bytes <= (size_t)device_attr(cudaDevAttrMaxSharedMemoryPerBlockOptin));
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    allowed[dev][which] = bytes;
}

static CudaAttentionKernel g_forced = CUDA_ATTENTION_AUTO; // cuda_attention_force's choice
static CudaAttentionKernel g_env = CUDA_ATTENTION_AUTO;    // ELASTILM_CUDA_ATTENTION's
static bool g_env_read;

// An explicit choice overrides the environment's; AUTO gives the choice back to it.
void cuda_attention_force(CudaAttentionKernel k) { g_forced = k; }

static bool mma_head_dim(int hd) { return hd == 16 || hd == 32 || hd == 64 || hd == 80 || hd == 96 || hd == 128; }

CudaAttentionKernel cuda_attention_kernel_for(const AttentionShape *s) {
    if (!g_env_read) {
        const char *e = getenv("ELASTILM_CUDA_ATTENTION");
        if (e && !strcmp(e, "simt")) g_env = CUDA_ATTENTION_SIMT;
        else if (e && !strcmp(e, "mma")) g_env = CUDA_ATTENTION_MMA;
        g_env_read = true;
    }
    const CudaAttentionKernel want = g_forced != CUDA_ATTENTION_AUTO ? g_forced : g_env;
    const bool mma_ok = mma_head_dim(s->head_dim) && device_attr(cudaDevAttrComputeCapabilityMajor) >= 8;
    if (want == CUDA_ATTENTION_SIMT || !mma_ok) return CUDA_ATTENTION_SIMT;
    if (want == CUDA_ATTENTION_MMA) return CUDA_ATTENTION_MMA;
    // A block of 64 rows per (sequence, kv head) at least, and either blocks enough to fill the
    // GPU or a prompt whose keys are mostly its own (n_past < 4 T): a short step (T = 16, group 4)
    // or a chunk over a long cache with few blocks goes to the CUDA-core kernel, which splits the
    // keys across blocks (the tensor-core one walks them all in one block).
    const int64_t rows = (int64_t)s->T * (s->n_heads / s->n_kv_heads);
    const int64_t blocks = ceil_div(rows, MMA_BQ) * s->n_kv_heads * s->n_seq;
    return rows >= MMA_BQ && (blocks >= device_attr(cudaDevAttrMultiProcessorCount) || s->n_past < 4 * (int64_t)s->T)
               ? CUDA_ATTENTION_MMA
               : CUDA_ATTENTION_SIMT;
}

static void check_kv(const Strided2d &k, const Strided2d &v, int64_t cols, int64_t rows_needed) {
    REQUIRE(k.cols == cols && v.cols == cols);
    REQUIRE(k.rows >= rows_needed && v.rows >= rows_needed);
}

// which: the kernel's slot in allow_smem (0 is the SIMT kernel's)
template <int HD>
static void launch_mma(const AttnArgs &a, int n_kv_heads, int n_seq, int which) {
    const size_t smem = mma_attention_smem(HD);
    allow_smem((const void *)mma_attention_kernel<HD>, which, smem);
    const int64_t grid_x = ceil_div((int64_t)a.T * a.group, MMA_BQ);
    REQUIRE(grid_x <= 0x7fffffff && n_kv_heads <= 65535);
    mma_attention_kernel<HD><<<dim3((unsigned)grid_x, (unsigned)n_kv_heads, (unsigned)n_seq), 32 * MMA_WARPS, smem>>>(a);
    CUDA_CHECK_LAUNCH();
}

static void launch_simt(AttnArgs &a, const AttentionShape *s) {
    const int hd = s->head_dim;
    // W rows per block; split the keys when the blocks would not fill the GPU twice over.
    const int64_t n_rows = (int64_t)s->T * a.group;
    const int n_warps = n_rows < ATT_MAX_WARPS ? (int)n_rows : ATT_MAX_WARPS;
    const int64_t grid_x = ceil_div(n_rows, n_warps), blocks = grid_x * s->n_kv_heads * s->n_seq;
    const int n_keys = s->n_past + s->T, target = 2 * device_attr(cudaDevAttrMultiProcessorCount);
    int n_splits = 1;
    if (blocks < target && n_keys > ATT_MIN_SPLIT_KEYS) {
        int64_t want = ceil_div(target, blocks), most = ceil_div(n_keys, ATT_MIN_SPLIT_KEYS);
        n_splits = (int)(want < most ? want : most);
    }
    a.split_keys = (int)(ceil_div(ceil_div(n_keys, n_splits), ATT_KT) * ATT_KT);
    a.n_splits = n_splits = (int)ceil_div(n_keys, a.split_keys);
    REQUIRE(grid_x <= 0x7fffffff && (int64_t)s->n_kv_heads * n_splits <= 65535);
    const int64_t out_rows = (int64_t)s->n_seq * s->T * s->n_heads;
    if (n_splits > 1) { // (max, sum) pairs first: 8-byte aligned at the slot's start
        size_t ml_bytes = (size_t)out_rows * n_splits * sizeof(float2);
        char *ws = (char *)cuda_workspace(WS_PARTIAL, ml_bytes + (size_t)out_rows * n_splits * hd * sizeof(float));
        a.part_ml = (float2 *)ws;
        a.part_o = (float *)(ws + ml_bytes);
    }
    const size_t smem = attention_smem(n_warps, hd);
    allow_smem((const void *)attention_kernel, 0, smem);
    dim3 grid((unsigned)grid_x, (unsigned)(s->n_kv_heads * n_splits), (unsigned)s->n_seq);
    attention_kernel<<<grid, 32 * n_warps, smem>>>(a);
    CUDA_CHECK_LAUNCH();
    if (n_splits > 1) {
        REQUIRE(out_rows <= 0x7fffffff);
        attention_combine_kernel<<<(unsigned)out_rows, threads_for(hd, 256)>>>(a);
        CUDA_CHECK_LAUNCH();
    }
}

extern "C" void cuda_attention(Tensor *out, const Tensor *q, const Tensor *k, const Tensor *v, const int32_t *kmask,
                               const AttentionShape *s, const SharedKV *shared) {
    use_device(out);
    const int n_sh = shared ? shared->n : 0, hd = s->head_dim;
    REQUIRE(s->n_seq >= 0 && s->T >= 0 && s->n_past >= 0 && s->n_heads > 0 && s->n_kv_heads > 0);
    REQUIRE(s->n_heads % s->n_kv_heads == 0 && hd > 0 && hd <= ATT_MAX_HD);
    REQUIRE(n_sh >= 0 && n_sh <= s->n_past && s->n_past - n_sh + s->T <= s->cap);
    REQUIRE(s->n_seq <= 65535);
    Out2d o = out2d(out);
    Strided2d qv = strided2d(q), kv = strided2d(k), vv = strided2d(v);
    REQUIRE(same_shape(o, qv) && qv.rows == (int64_t)s->n_seq * s->T && qv.cols == (int64_t)s->n_heads * hd);
    if (s->n_seq == 0 || s->T == 0) return;
    const int n_own = s->n_past - n_sh + s->T; // own rows read per sequence
    const int64_t kv_cols = (int64_t)s->n_kv_heads * hd;
    check_kv(kv, vv, kv_cols, (int64_t)(s->n_seq - 1) * s->cap + n_own);

    AttnArgs a;
    memset(&a, 0, sizeof a);
    a.out = o.p, a.ldo = o.ld, a.out_dt = o.dt, a.q = qv.p, a.ldq = qv.ld;
    a.k = kv.p, a.v = vv.p, a.ldk = kv.ld, a.ldv = vv.ld;
    a.T = s->T, a.n_past = s->n_past, a.cap = s->cap, a.n_heads = s->n_heads, a.hd = hd;
    a.group = s->n_heads / s->n_kv_heads, a.n_sh = n_sh;
    a.scale = 1.0f / sqrtf((float)hd);
    a.kmask = kmask;
    a.n_splits = 1;
    if (n_sh > 0) {
        Strided2d sk = strided2d(shared->k), sv = strided2d(shared->v);
        REQUIRE(shared->row0 >= 0 && shared->mask);
        check_kv(sk, sv, kv_cols, shared->row0 + n_sh);
        a.sk = sk.p + shared->row0 * sk.ld, a.sv = sv.p + shared->row0 * sv.ld;
        a.ldsk = sk.ld, a.ldsv = sv.ld;
        a.smask = shared->mask + shared->row0;
    }
    if (cuda_attention_kernel_for(s) == CUDA_ATTENTION_SIMT) {
        launch_simt(a, s);
        return;
    }
    switch (hd) {
    case 16: launch_mma<16>(a, s->n_kv_heads, s->n_seq, 1); break;
    case 32: launch_mma<32>(a, s->n_kv_heads, s->n_seq, 2); break;
    case 64: launch_mma<64>(a, s->n_kv_heads, s->n_seq, 3); break;
    case 80: launch_mma<80>(a, s->n_kv_heads, s->n_seq, 4); break;
    case 96: launch_mma<96>(a, s->n_kv_heads, s->n_seq, 5); break;
    case 128: launch_mma<128>(a, s->n_kv_heads, s->n_seq, 6); break;
    default: REQUIRE(!"no tensor-core attention for this head_dim");
    }
}
