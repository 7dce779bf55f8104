// The emulator's self-tests (tests/cuemu/selftest/main.cc runs them): kernels with
// one seeded bug each, which the emulator must report naming this file and the
// line(s) marked `// expect: <case>`, and correct kernels whose results it must
// get right under every schedule. Compiled as the project's kernels are (the
// rewrite, cuemu.h, -fsanitize-coverage, ASan).
#include <cuda_runtime.h>
#include <mma.h>
#include <stdio.h>
#include <string.h>

namespace wmma = nvcuda::wmma;

// Device memory for a case: n floats (or ints), from the emulated cudaMalloc.
template <typename T>
static T *dev_alloc(size_t n) {
    void *p = NULL;
    if (cudaMalloc(&p, n * sizeof(T)) != cudaSuccess) {
        fprintf(stderr, "selftest: cudaMalloc failed\n");
        exit(3);
    }
    return (T *)p;
}

// ---- seeded bugs ------------------------------------------------------------------------

// A missing __syncthreads between writing a shared tile and reading another thread's element.
__global__ void k_missing_sync(float *out) {
    __shared__ float buf[64];
    buf[threadIdx.x] = (float)threadIdx.x;
    out[threadIdx.x] = buf[63 - threadIdx.x]; // expect: missing-sync
}

// The leading barrier of a tile loop missing: iteration j + 1 overwrites what others still read.
__global__ void k_missing_leading_sync(const float *in, float *out) {
    __shared__ float tile[64];
    float acc = 0.0f;
    for (int j = 0; j < 2; j++) {
        tile[threadIdx.x] = in[j * 64 + threadIdx.x]; // expect: war-race
        __syncthreads();
        acc += tile[63 - threadIdx.x]; // expect: war-race
    }
    out[threadIdx.x] = acc;
}

// A barrier in a branch that splits the block.
__global__ void k_divergent_barrier(float *out) {
    if (threadIdx.x < 16) {
        __syncthreads(); // expect: divergent-barrier
    } else {
        __syncthreads(); // expect: divergent-barrier
    }
    out[threadIdx.x] = 1.0f;
}

// Threads that return early, then a barrier the others wait at.
__global__ void k_barrier_after_exit(float *out, int n) {
    if ((int)threadIdx.x >= n) return;
    __syncthreads(); // expect: barrier-after-exit
    out[threadIdx.x] = 1.0f;
}

// A shuffle whose full mask names a lane that has returned.
__global__ void k_shfl_exited(float *out) {
    const int lane = threadIdx.x & 31;
    float v = (float)lane;
    if (lane == 5) return;
    v = __shfl_sync(0xffffffffu, v, 5); // expect: shfl-exited
    out[threadIdx.x] = v;
}

// A shuffle reading a lane outside its mask.
__global__ void k_shfl_outside_mask(float *out) {
    const int lane = threadIdx.x & 31;
    float v = (float)lane;
    if (lane < 16) v = __shfl_sync(0x0000ffffu, v, 20); // expect: shfl-outside-mask
    out[threadIdx.x] = v;
}

// A write one element past the dynamic shared memory (the launch asks for blockDim.x floats).
__global__ void k_smem_oob(float *out) {
    extern __shared__ float dyn[];
    dyn[threadIdx.x + 1] = 1.0f; // expect: smem-oob
    __syncthreads();
    out[threadIdx.x] = dyn[threadIdx.x];
}

// A wmma load from a pointer 4 bytes past a 32-byte boundary.
__global__ void k_wmma_misaligned(float *out) {
    extern __shared__ float tile[];
    for (int i = threadIdx.x; i < 16 * 8 + 8; i += blockDim.x) tile[i] = 1.0f;
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a;
    wmma::load_matrix_sync(a, tile + 1, 8); // expect: wmma-misaligned
    out[threadIdx.x] = a.x[0];
}

// A wmma load whose leading dimension is not a multiple of 16 bytes.
__global__ void k_wmma_ldm(float *out) {
    extern __shared__ float tile[];
    for (int i = threadIdx.x; i < 16 * 8 + 8; i += blockDim.x) tile[i] = 1.0f;
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a;
    wmma::load_matrix_sync(a, tile, 9); // expect: wmma-ldm
    out[threadIdx.x] = a.x[0];
}

// Lanes fill a tile and load it into a fragment with no __syncwarp between (the load does not
// order the other lanes' writes before it).
__global__ void k_wmma_race(float *out) {
    extern __shared__ float tile[];
    for (int i = threadIdx.x; i < 16 * 8; i += blockDim.x) tile[i] = (float)i; // expect: wmma-race
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a;
    wmma::load_matrix_sync(a, tile, 8); // expect: wmma-race
    out[threadIdx.x] = a.x[0];
}

// One lane waits in a shuffle while the rest of its warp waits at a barrier.
__global__ void k_deadlock(float *out) {
    float v = (float)threadIdx.x;
    if (threadIdx.x == 0) v = __shfl_sync(0xffffffffu, v, 1); // expect: deadlock
    __syncthreads(); // expect: deadlock
    out[threadIdx.x] = v;
}

// Lanes of one warp in two different shuffles.
__global__ void k_warp_disagree(float *out) {
    float v = (float)threadIdx.x;
    if (threadIdx.x & 1) v = __shfl_xor_sync(0xffffffffu, v, 1); // expect: warp-disagree
    else v = __shfl_xor_sync(0xffffffffu, v, 2); // expect: warp-disagree
    out[threadIdx.x] = v;
}

// A host array handed to a kernel as if it were device memory.
__global__ void k_host_pointer(const float *in, float *out) {
    out[threadIdx.x] = in[threadIdx.x]; // expect: host-pointer
}

// A shared histogram counted into before anyone zeroed it.
__global__ void k_atomic_uninit(unsigned *out) {
    __shared__ unsigned hist[8];
    atomicAdd(&hist[threadIdx.x & 7], 1u); // expect: atomic-uninit
    __syncthreads();
    if (threadIdx.x < 8) out[threadIdx.x] = hist[threadIdx.x];
}

__global__ void k_noop(float *out) { out[threadIdx.x] = 0.0f; }

// ---- correct kernels --------------------------------------------------------------------------

template <typename T>
__device__ T warp_sum(T v) {
    for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

// out[b] = sum of in[b * n ...]: warp sums, then the warps' partials through shared memory.
__global__ void k_block_sum(const float *in, float *out, int n) {
    __shared__ float part[32];
    float v = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) v += in[(size_t)blockIdx.x * n + i];
    v = warp_sum(v);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (int)(blockDim.x >> 5) ? part[lane] : 0.0f;
        v = warp_sum(v);
        if (lane == 0) out[blockIdx.x] = v;
    }
}

// ballot, match_any, popc, shfl_up / shfl_down and syncthreads_count in one kernel.
__global__ void k_warp_ops(const int *in, int *out) {
    const int lane = threadIdx.x & 31;
    const int x = in[threadIdx.x];
    const unsigned ballot = __ballot_sync(0xffffffffu, x > 0);
    const unsigned peers = __match_any_sync(0xffffffffu, x % 4);
    const int up = __shfl_up_sync(0xffffffffu, x, 1), down = __shfl_down_sync(0xffffffffu, x, 3);
    const int count = __syncthreads_count(x > 0);
    int *o = out + threadIdx.x * 5;
    o[0] = (int)ballot;
    o[1] = (int)peers;
    o[2] = up;
    o[3] = down;
    o[4] = count + 1000 * __popc(ballot) + lane * 0;
}

// A shared histogram: zeroed, a barrier, atomics from every thread, a barrier, read.
__global__ void k_histogram(const int *in, unsigned *out, int n) {
    __shared__ unsigned hist[16];
    if (threadIdx.x < 16) hist[threadIdx.x] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < n; i += blockDim.x) atomicAdd(&hist[in[i] & 15], 1u);
    __syncthreads();
    if (threadIdx.x < 16) out[threadIdx.x] = hist[threadIdx.x];
}

// D [16][16] = A [16][8] B [8][16] on the tensor cores (tf32, fp32 accumulation).
__global__ void k_wmma_gemm(const float *a, const float *b, float *d) {
    extern __shared__ __align__(128) float sm[];
    float *as = sm, *bs = sm + 16 * 8, *ds = sm + 2 * 16 * 8;
    for (int i = threadIdx.x; i < 16 * 8; i += blockDim.x) {
        as[i] = wmma::__float_to_tf32(a[i]);
        bs[i] = wmma::__float_to_tf32(b[i]);
    }
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> fc;
    wmma::fill_fragment(fc, 0.0f);
    wmma::load_matrix_sync(fa, as, 8);
    wmma::load_matrix_sync(fb, bs, 16);
    wmma::mma_sync(fc, fa, fb, fc);
    for (int e = 0; e < fc.num_elements; e++) fc.x[e] *= 2.0f; // element-wise: any mapping
    wmma::store_matrix_sync(ds, fc, 16, wmma::mem_row_major);
    __syncwarp();
    for (int i = threadIdx.x; i < 256; i += blockDim.x) d[i] = ds[i];
}

// 60 KiB of dynamic shared memory: refused without the opt-in, fine with it.
__global__ void k_big_smem(float *out) {
    extern __shared__ float big[];
    const int n = 60 * 1024 / 4;
    for (int i = threadIdx.x; i < n; i += blockDim.x) big[i] = (float)i;
    __syncthreads();
    float s = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += big[n - 1 - i];
    out[threadIdx.x] = s;
}

// ---- the cases --------------------------------------------------------------------------------

// Each returns 0 when the kernel ran and its result is right (the correct kernels), or
// whatever a seeded bug leads to: the emulator is expected to abort first.
extern "C" int case_missing_sync(void) {
    float *o = dev_alloc<float>(64);
    k_missing_sync<<<1, 64>>>(o);
    return 0;
}
extern "C" int case_war_race(void) {
    float *in = dev_alloc<float>(128), *o = dev_alloc<float>(64);
    cudaMemset(in, 0, 128 * sizeof(float));
    k_missing_leading_sync<<<1, 64>>>(in, o);
    return 0;
}
extern "C" int case_divergent_barrier(void) {
    float *o = dev_alloc<float>(64);
    k_divergent_barrier<<<1, 64>>>(o);
    return 0;
}
extern "C" int case_barrier_after_exit(void) {
    float *o = dev_alloc<float>(64);
    k_barrier_after_exit<<<1, 64>>>(o, 40);
    return 0;
}
extern "C" int case_shfl_exited(void) {
    float *o = dev_alloc<float>(32);
    k_shfl_exited<<<1, 32>>>(o);
    return 0;
}
extern "C" int case_shfl_outside_mask(void) {
    float *o = dev_alloc<float>(32);
    k_shfl_outside_mask<<<1, 32>>>(o);
    return 0;
}
extern "C" int case_smem_oob(void) {
    float *o = dev_alloc<float>(64);
    k_smem_oob<<<1, 64, 64 * sizeof(float)>>>(o);
    return 0;
}
extern "C" int case_wmma_misaligned(void) {
    float *o = dev_alloc<float>(32);
    k_wmma_misaligned<<<1, 32, (16 * 8 + 8) * sizeof(float)>>>(o);
    return 0;
}
extern "C" int case_wmma_ldm(void) {
    float *o = dev_alloc<float>(32);
    k_wmma_ldm<<<1, 32, (16 * 8 + 8) * sizeof(float)>>>(o);
    return 0;
}
extern "C" int case_wmma_race(void) {
    float *o = dev_alloc<float>(32);
    k_wmma_race<<<1, 32, 16 * 8 * sizeof(float)>>>(o);
    return 0;
}
extern "C" int case_deadlock(void) {
    float *o = dev_alloc<float>(64);
    k_deadlock<<<1, 64>>>(o);
    return 0;
}
extern "C" int case_warp_disagree(void) {
    float *o = dev_alloc<float>(32);
    k_warp_disagree<<<1, 32>>>(o);
    return 0;
}
extern "C" int case_host_pointer(void) {
    static float host[32];
    float *o = dev_alloc<float>(32);
    k_host_pointer<<<1, 32>>>(host, o);
    return 0;
}
extern "C" int case_atomic_uninit(void) {
    unsigned *o = dev_alloc<unsigned>(8);
    k_atomic_uninit<<<1, 64>>>(o);
    return 0;
}
// Launch limits: the launch is refused and cudaGetLastError says so (no abort).
extern "C" int case_too_many_threads(void) {
    float *o = dev_alloc<float>(2048);
    k_noop<<<1, 1025>>>(o); // expect: too-many-threads
    return cudaGetLastError() == cudaErrorInvalidConfiguration ? 10 : 1;
}
extern "C" int case_smem_without_optin(void) {
    float *o = dev_alloc<float>(256);
    k_big_smem<<<1, 256, 60 * 1024>>>(o); // expect: smem-without-optin
    return cudaGetLastError() == cudaErrorInvalidValue ? 10 : 1;
}

extern "C" int case_good_block_sum(void) {
    const int blocks = 37, n = 1000;
    float *h = (float *)malloc(blocks * n * sizeof(float)), ref[37], got[37];
    for (int b = 0; b < blocks; b++) {
        ref[b] = 0.0f;
        for (int i = 0; i < n; i++) {
            h[b * n + i] = (float)((b * 7 + i * 3) % 11); // small integers: every sum order is exact
            ref[b] += h[b * n + i];
        }
    }
    float *in = dev_alloc<float>(blocks * n), *out = dev_alloc<float>(blocks);
    cudaMemcpy(in, h, blocks * n * sizeof(float), cudaMemcpyHostToDevice);
    k_block_sum<<<blocks, 256>>>(in, out, n);
    if (cudaGetLastError() != cudaSuccess) return 1;
    cudaMemcpy(got, out, sizeof got, cudaMemcpyDeviceToHost);
    free(h);
    cudaFree(in), cudaFree(out);
    for (int b = 0; b < blocks; b++)
        if (got[b] != ref[b]) {
            fprintf(stderr, "block_sum: block %d: %g, expected %g\n", b, got[b], ref[b]);
            return 1;
        }
    return 0;
}

extern "C" int case_good_warp_ops(void) {
    const int nt = 64;
    int h[nt], got[nt * 5];
    for (int i = 0; i < nt; i++) h[i] = (i * 37) % 13 - 4;
    int *in = dev_alloc<int>(nt), *out = dev_alloc<int>(nt * 5);
    cudaMemcpy(in, h, sizeof h, cudaMemcpyHostToDevice);
    k_warp_ops<<<1, nt>>>(in, out);
    cudaMemcpy(got, out, sizeof got, cudaMemcpyDeviceToHost);
    cudaFree(in), cudaFree(out);
    int count = 0;
    for (int i = 0; i < nt; i++) count += h[i] > 0;
    for (int i = 0; i < nt; i++) {
        const int w = i / 32, lane = i % 32;
        unsigned ballot = 0, peers = 0;
        for (int l = 0; l < 32; l++) {
            ballot |= (unsigned)(h[w * 32 + l] > 0) << l;
            peers |= (unsigned)(h[w * 32 + l] % 4 == h[i] % 4) << l;
        }
        const int up = lane >= 1 ? h[i - 1] : h[i], down = lane + 3 < 32 ? h[i + 3] : h[i];
        const int want[5] = {(int)ballot, (int)peers, up, down, count + 1000 * __builtin_popcount(ballot)};
        for (int k = 0; k < 5; k++)
            if (got[i * 5 + k] != want[k]) {
                fprintf(stderr, "warp_ops: thread %d value %d: %d, expected %d\n", i, k, got[i * 5 + k], want[k]);
                return 1;
            }
    }
    return 0;
}

extern "C" int case_good_histogram(void) {
    const int n = 5000;
    int *h = (int *)malloc(n * sizeof(int));
    unsigned want[16] = {0}, got[16];
    for (int i = 0; i < n; i++) {
        h[i] = (i * 2654435761u) >> 7;
        want[h[i] & 15]++;
    }
    int *in = dev_alloc<int>(n);
    unsigned *out = dev_alloc<unsigned>(16);
    cudaMemcpy(in, h, n * sizeof(int), cudaMemcpyHostToDevice);
    k_histogram<<<1, 192>>>(in, out, n);
    cudaMemcpy(got, out, sizeof got, cudaMemcpyDeviceToHost);
    free(h);
    cudaFree(in), cudaFree(out);
    return memcmp(got, want, sizeof got) ? 1 : 0;
}

static float tf32_round(float f) { return wmma::__float_to_tf32(f); }

extern "C" int case_good_wmma(void) {
    float ha[16 * 8], hb[8 * 16], got[256];
    for (int i = 0; i < 128; i++) {
        ha[i] = 1.0f + (float)((i * 29) % 17) / 1024.0f + 1.0f / 65536.0f; // the last bits go in the tf32 rounding
        hb[i] = (float)((i * 13) % 7) - 3.0f;
    }
    float *a = dev_alloc<float>(128), *b = dev_alloc<float>(128), *d = dev_alloc<float>(256);
    cudaMemcpy(a, ha, sizeof ha, cudaMemcpyHostToDevice);
    cudaMemcpy(b, hb, sizeof hb, cudaMemcpyHostToDevice);
    k_wmma_gemm<<<1, 32, (2 * 16 * 8 + 256) * sizeof(float)>>>(a, b, d);
    cudaMemcpy(got, d, sizeof got, cudaMemcpyDeviceToHost);
    cudaFree(a), cudaFree(b), cudaFree(d);
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) {
            float acc = 0.0f;
            for (int k = 0; k < 8; k++) acc += tf32_round(ha[r * 8 + k]) * tf32_round(hb[k * 16 + c]);
            if (got[r * 16 + c] != 2.0f * acc) {
                fprintf(stderr, "wmma: D[%d][%d] = %.9g, expected %.9g\n", r, c, got[r * 16 + c], 2.0f * acc);
                return 1;
            }
        }
    return 0;
}

extern "C" int case_good_big_smem(void) {
    float *o = dev_alloc<float>(256), got[256];
    if (cudaFuncSetAttribute(k_big_smem, cudaFuncAttributeMaxDynamicSharedMemorySize, 60 * 1024) != cudaSuccess) return 1;
    k_big_smem<<<1, 256, 60 * 1024>>>(o);
    if (cudaGetLastError() != cudaSuccess) return 1;
    cudaMemcpy(got, o, sizeof got, cudaMemcpyDeviceToHost);
    const int n = 60 * 1024 / 4;
    for (int t = 0; t < 256; t++) {
        float s = 0.0f;
        for (int i = t; i < n; i += 256) s += (float)(n - 1 - i);
        if (got[t] != s) return 1;
    }
    cudaFree(o);
    return 0;
}
