// The CUDA ops of ops_cuda.h but the matmuls (matmul.cu): one kernel and one
// launcher per op, all on the current device's default stream. Activations are
// f32 with a row stride; host index arrays go to a workspace slot first.
//
// Parallelisation:
//   embedding_kernel        grid N rows, 256 threads striding over the columns.
//   rmsnorm_kernel          grid N rows, <= 256 threads: sum of squares (double, as the CPU) by a
//                           block reduction, then the scaled row.
//   rope_kernel             grid N rows, block (x: pair index j < head_dim/2, y: heads); cos/sin
//                           of pos * inv_freq in double, one per (row, j), reused over the heads.
//   attention_kernel        grid (ceil(T*group / W), n_kv_heads * n_splits, n_seq), W warps of 32.
//                           The W warps are W (query, head) rows that read the same kv head
//                           (row r = t*group + i: query t, head g*group + i), so a K/V tile loaded
//                           once into shared memory serves W rows. Per tile of 32 keys, lane j
//                           scores key j (a full dot product against the warp's q in shared
//                           memory), the warp keeps an online softmax (running max and sum) and
//                           each lane accumulates head_dim/32 output columns. When these blocks
//                           would not fill the GPU (decode, short prompts), the keys are split
//                           into n_splits ranges (flash-decoding) and
//   attention_combine_kernel  grid n_seq*T*n_heads rows, merges the splits' (max, sum, partial out).
//   swiglu_kernel, add_kernel  grid-stride over the N*F elements (rows from the flat index).
//   log_softmax_kernel      grid N rows, 256 or 1024 threads: max and sum(exp) (double, as the CPU)
//                           by block reductions, then x - logsumexp.
//   gather_logprob_kernel   the same reductions, one value per row, copied back to the host.
//   gather_f32_kernel       grid-stride over the elements of an n-d strided tensor -> contiguous f32.
//   zero_kernel             grid-stride over an n-d strided tensor (only when memset cannot do it).
//
// Remaining performance work: attention for long prompts (prefill) should be a
// flash-attention kernel: a block per (sequence, kv head, tile of 64-128
// queries), Q tile in shared memory or registers, K/V tiles double-buffered
// through shared memory (cp.async / TMA), S = Q K^T and O += P V on tensor
// cores (bf16 or tf32 mma with fp32 accumulation), the online softmax per
// query row in registers, causal tiles above the diagonal skipped. The kernel
// here does its dot products on CUDA cores out of shared memory, which is fine
// for decode (memory bound) but leaves most of the H100's throughput unused
// for prefill.
#include <math.h>
#include <string.h>

#include "common.cuh"

static int threads_for(int64_t cols, int max_threads) {
    int64_t t = ceil_div(cols < max_threads ? cols : max_threads, 32) * 32;
    return t < 32 ? 32 : (int)t;
}

static unsigned grid_for(int64_t n, int threads) {
    int64_t g = ceil_div(n, threads);
    return (unsigned)(g > (1 << 20) ? (1 << 20) : g);
}

// ---- embedding -----------------------------------------------------------------

template <typename T>
__global__ void embedding_kernel(Strided2d out, const T *table, int64_t ld_table, const int32_t *ids) {
    int64_t r = blockIdx.x;
    const T *src = table + (int64_t)ids[r] * ld_table;
    float *dst = out.p + r * out.ld;
    for (int64_t c = threadIdx.x; c < out.cols; c += blockDim.x) dst[c] = load_f32(src, c);
}

extern "C" void cuda_embedding(Tensor *out, const Tensor *table, const int32_t *ids) {
    Strided2d o = strided2d(out);
    REQUIRE(table->ndim == 2 && table->dev.kind == DEV_CUDA && table->shape[1] == o.cols);
    REQUIRE(table->shape[1] <= 1 || table->stride[1] == 1);
    if (o.rows == 0 || o.cols == 0) return;
    for (int64_t i = 0; i < o.rows; i++) REQUIRE(ids[i] >= 0 && ids[i] < table->shape[0]);
    const int32_t *d_ids = to_workspace(WS_IDS, ids, o.rows);
    int threads = threads_for(o.cols, 256);
    int64_t ld = table->stride[0];
    switch (table->dtype) {
    case DT_F32: embedding_kernel<<<(unsigned)o.rows, threads>>>(o, (const float *)table->data, ld, d_ids); break;
    case DT_F16: embedding_kernel<<<(unsigned)o.rows, threads>>>(o, (const __half *)table->data, ld, d_ids); break;
    case DT_BF16:
        embedding_kernel<<<(unsigned)o.rows, threads>>>(o, (const __nv_bfloat16 *)table->data, ld, d_ids);
        break;
    default: REQUIRE(!"embedding table must be f32, f16 or bf16");
    }
    CUDA_CHECK_LAUNCH();
}

// ---- rmsnorm -------------------------------------------------------------------------

__global__ void rmsnorm_kernel(Strided2d out, Strided2d x, const float *w, float eps) {
    int64_t r = blockIdx.x;
    const float *xr = x.p + r * x.ld;
    float *orow = out.p + r * out.ld;
    double ss = 0.0; // in double like the CPU: the scale then rounds to the same float
    for (int64_t c = threadIdx.x; c < x.cols; c += blockDim.x) ss += (double)xr[c] * xr[c];
    ss = block_reduce(ss, SumOp(), 0.0);
    float scale = (float)(1.0 / sqrt(ss / (double)x.cols + (double)eps));
    for (int64_t c = threadIdx.x; c < x.cols; c += blockDim.x) orow[c] = (xr[c] * scale) * w[c];
}

extern "C" void cuda_rmsnorm(Tensor *out, const Tensor *x, const Tensor *w, float eps) {
    Strided2d o = strided2d(out), xv = strided2d(x);
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
    Strided2d xv = strided2d(x);
    REQUIRE(n_heads >= 0 && head_dim > 0 && head_dim % 2 == 0 && xv.cols == (int64_t)n_heads * head_dim);
    if (xv.rows == 0 || n_heads == 0) return;
    const int32_t *d_pos = to_workspace(WS_IDS, pos, xv.rows);
    const float *d_freq = to_workspace(WS_FREQ, inv_freq, head_dim / 2);
    int bx = head_dim / 2 < 128 ? head_dim / 2 : 128, by = 256 / bx;
    if (by > n_heads) by = n_heads;
    if (by < 1) by = 1;
    rope_kernel<<<(unsigned)xv.rows, dim3(bx, by)>>>(xv, d_pos, d_freq, n_heads, head_dim);
    CUDA_CHECK_LAUNCH();
}

// ---- attention -----------------------------------------------------------------------

#define ATT_MAX_HD 256          // head_dim limit: ATT_MAX_HD / 32 accumulators per lane
#define ATT_KT 32               // keys per shared-memory tile: one per lane
#define ATT_MAX_WARPS 8         // (query, head) rows per block
#define ATT_MIN_SPLIT_KEYS 256  // fewest keys worth a split of their own

typedef struct {
    float *out;
    int64_t ldo;
    const float *q;
    int64_t ldq;
    const float *k, *v;        // the cache at this kv width; sequence s owns rows s*cap ...
    int64_t ldk, ldv;
    const float *sk, *sv;      // the shared prefix's first row (key 0), or NULL
    int64_t ldsk, ldsv;
    const int32_t *kmask;      // [n_seq, n_own]: the own rows' mask, compacted
    const int32_t *smask;      // [n_sh]
    int T, n_past, cap, n_heads, hd, group, n_sh, n_own;
    float scale;
    int n_splits, split_keys;  // key ranges [i*split_keys, (i+1)*split_keys)
    float2 *part_ml;           // [rows, n_splits] (max, sum), rows = (s*T + t)*n_heads + h
    float *part_o;             // [rows, n_splits, hd] unnormalised outputs
} AttnArgs;

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
            const float *kp, *vp;
            if (j < a.n_sh) {
                kp = a.sk + (int64_t)j * a.ldsk;
                vp = a.sv + (int64_t)j * a.ldsv;
            } else { // own row s*cap + i holds key n_sh + i
                int64_t row = (int64_t)b * a.cap + (j - a.n_sh);
                kp = a.k + row * a.ldk;
                vp = a.v + row * a.ldv;
            }
            k_s[jj * (hd + 1) + d] = kp[col + d];
            v_s[jj * hd + d] = vp[col + d];
        }
        __syncthreads();
        if (!active || j0 > q_idx) continue; // warp-uniform

        const int j = j0 + lane;
        const bool visible = lane < n_tile && j <= q_idx &&
                             (j < a.n_sh ? a.smask[j] : a.kmask[(int64_t)b * a.n_own + (j - a.n_sh)]) != 0;
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
        float *op = a.out + ((int64_t)b * a.T + t) * a.ldo + (int64_t)h * hd;
#pragma unroll
        for (int i = 0; i < ATT_MAX_HD / 32; i++) {
            int d = lane + 32 * i;
            if (d < hd) op[d] = l > 0.0f ? acc[i] / l : 0.0f;
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
    float *op = a.out + st * a.ldo + (int64_t)h * a.hd;
    float mx = -INFINITY;
    for (int i = 0; i < a.n_splits; i++) mx = fmaxf(mx, ml[i].x);
    if (mx == -INFINITY) { // no split saw a key
        for (int d = threadIdx.x; d < a.hd; d += blockDim.x) op[d] = 0.0f;
        return;
    }
    float sum = 0.0f;
    for (int i = 0; i < a.n_splits; i++) sum += ml[i].y * expf(ml[i].x - mx);
    const float *po = a.part_o + row * a.n_splits * a.hd;
    for (int d = threadIdx.x; d < a.hd; d += blockDim.x) {
        float o = 0.0f;
        for (int i = 0; i < a.n_splits; i++) o += po[(int64_t)i * a.hd + d] * expf(ml[i].x - mx);
        op[d] = o / sum;
    }
}

static int device_sm_count(void) {
    static int cached[64];
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    REQUIRE(dev >= 0 && dev < 64);
    if (!cached[dev]) CUDA_CHECK(cudaDeviceGetAttribute(&cached[dev], cudaDevAttrMultiProcessorCount, dev));
    return cached[dev];
}

// Dynamic shared memory beyond 48 KiB must be asked for, per kernel and device.
static void attention_allow_smem(size_t bytes) {
    static size_t allowed[64];
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    REQUIRE(dev >= 0 && dev < 64);
    if (bytes <= 48 * 1024 || bytes <= allowed[dev]) return;
    CUDA_CHECK(cudaFuncSetAttribute(attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    allowed[dev] = bytes;
}

static void check_kv(const Strided2d &k, const Strided2d &v, int64_t cols, int64_t rows_needed) {
    REQUIRE(k.cols == cols && v.cols == cols);
    REQUIRE(k.rows >= rows_needed && v.rows >= rows_needed);
}

extern "C" void cuda_attention(Tensor *out, const Tensor *q, const Tensor *k, const Tensor *v, const int32_t *kmask,
                               const AttentionShape *s, const SharedKV *shared) {
    const int n_sh = shared ? shared->n : 0, hd = s->head_dim;
    REQUIRE(s->n_seq >= 0 && s->T >= 0 && s->n_past >= 0 && s->n_heads > 0 && s->n_kv_heads > 0);
    REQUIRE(s->n_heads % s->n_kv_heads == 0 && hd > 0 && hd <= ATT_MAX_HD);
    REQUIRE(n_sh >= 0 && n_sh <= s->n_past && s->n_past - n_sh + s->T <= s->cap);
    REQUIRE(s->n_seq <= 65535);
    Strided2d o = strided2d(out), qv = strided2d(q), kv = strided2d(k), vv = strided2d(v);
    REQUIRE(same_shape(o, qv) && qv.rows == (int64_t)s->n_seq * s->T && qv.cols == (int64_t)s->n_heads * hd);
    if (s->n_seq == 0 || s->T == 0) return;
    const int n_own = s->n_past - n_sh + s->T; // own rows read per sequence
    const int64_t kv_cols = (int64_t)s->n_kv_heads * hd;
    check_kv(kv, vv, kv_cols, (int64_t)(s->n_seq - 1) * s->cap + n_own);

    AttnArgs a;
    memset(&a, 0, sizeof a);
    a.out = o.p, a.ldo = o.ld, a.q = qv.p, a.ldq = qv.ld;
    a.k = kv.p, a.v = vv.p, a.ldk = kv.ld, a.ldv = vv.ld;
    a.T = s->T, a.n_past = s->n_past, a.cap = s->cap, a.n_heads = s->n_heads, a.hd = hd;
    a.group = s->n_heads / s->n_kv_heads, a.n_sh = n_sh, a.n_own = n_own;
    a.scale = 1.0f / sqrtf((float)hd);

    // Each sequence's mask rows [s*cap, s*cap + n_own), compacted to [n_seq, n_own].
    int32_t *d_kmask = (int32_t *)cuda_workspace(WS_KMASK, (size_t)s->n_seq * n_own * sizeof(int32_t));
    CUDA_CHECK(cudaMemcpy2D(d_kmask, (size_t)n_own * sizeof(int32_t), kmask, (size_t)s->cap * sizeof(int32_t),
                            (size_t)n_own * sizeof(int32_t), (size_t)s->n_seq, cudaMemcpyHostToDevice));
    a.kmask = d_kmask;
    if (n_sh > 0) {
        Strided2d sk = strided2d(shared->k), sv = strided2d(shared->v);
        REQUIRE(shared->row0 >= 0);
        check_kv(sk, sv, kv_cols, shared->row0 + n_sh);
        a.sk = sk.p + shared->row0 * sk.ld, a.sv = sv.p + shared->row0 * sv.ld;
        a.ldsk = sk.ld, a.ldsv = sv.ld;
        a.smask = to_workspace(WS_SMASK, shared->mask + shared->row0, n_sh);
    }

    // W rows per block; split the keys when the blocks would not fill the GPU twice over.
    const int64_t n_rows = (int64_t)s->T * a.group;
    const int n_warps = n_rows < ATT_MAX_WARPS ? (int)n_rows : ATT_MAX_WARPS;
    const int64_t grid_x = ceil_div(n_rows, n_warps), blocks = grid_x * s->n_kv_heads * s->n_seq;
    const int n_keys = s->n_past + s->T, target = 2 * device_sm_count();
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
    attention_allow_smem(smem);
    dim3 grid((unsigned)grid_x, (unsigned)(s->n_kv_heads * n_splits), (unsigned)s->n_seq);
    attention_kernel<<<grid, 32 * n_warps, smem>>>(a);
    CUDA_CHECK_LAUNCH();
    if (n_splits > 1) {
        REQUIRE(out_rows <= 0x7fffffff);
        attention_combine_kernel<<<(unsigned)out_rows, threads_for(hd, 256)>>>(a);
        CUDA_CHECK_LAUNCH();
    }
}

// ---- elementwise -----------------------------------------------------------------------

__global__ void swiglu_kernel(Strided2d out, Strided2d gate, Strided2d up) {
    const int64_t n = out.rows * out.cols;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / out.cols, c = i - r * out.cols;
        float g = gate.p[r * gate.ld + c];
        out.p[r * out.ld + c] = g / (1.0f + expf(-g)) * up.p[r * up.ld + c];
    }
}

extern "C" void cuda_swiglu(Tensor *out, const Tensor *gate, const Tensor *up) {
    Strided2d o = strided2d(out), g = strided2d(gate), u = strided2d(up);
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
    Strided2d xv = strided2d(logits);
    if (xv.rows == 0) return;
    for (int64_t r = 0; r < xv.rows; r++) REQUIRE(targets[r] < xv.cols);
    const int32_t *d_targets = to_workspace(WS_IDS, targets, xv.rows);
    float *d_res = (float *)cuda_workspace(WS_RESULT, (size_t)xv.rows * sizeof(float));
    gather_logprob_kernel<<<(unsigned)xv.rows, softmax_threads(xv.cols)>>>(d_res, xv, d_targets);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpy(out, d_res, (size_t)xv.rows * sizeof(float), cudaMemcpyDeviceToHost));
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

template <typename T>
__global__ void zero_kernel(TensorDesc t, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        ((T *)t.p)[desc_offset(t, i)] = T(0);
}

extern "C" void cuda_zero(Tensor *t) {
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
