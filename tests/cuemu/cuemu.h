// cuemu.h: the device side of the CUDA-on-CPU emulator (tests/cuemu/README.md,
// cuda/README.md "Testing without a GPU"). Force-included (-include) before every
// cuda/*.cu file compiled by the host C++ compiler, after the source rewrite
// (rewrite.sed) has turned `k<<<g, b, s>>>(args)` into cuemu::Launch(...)(args)
// and every `__shared__` declaration into a per-block variable of the emulator.
//
// NVIDIA's own headers give the types and the host API (cuda_runtime.h,
// cuda_fp16.h, cuda_bf16.h, cublasLt.h); this header then defines what nvcc
// would: the qualifiers, threadIdx/blockIdx/blockDim/gridDim, the barriers, warp
// collectives, atomics and device intrinsics the project uses, each barrier and
// collective carrying its source location so that a misuse is reported as
// file:line. __CUDA_ARCH__ is defined (800) after those headers, so that device
// code guarded by it is compiled; the emulated GPU is sm_90-like (cudart.cc).
#ifndef CUEMU_H
#define CUEMU_H

#ifndef __cplusplus
#error "cuemu.h: the emulated CUDA sources are C++"
#endif

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <type_traits>
#include <utility>

#ifndef __CUDA_ARCH__
#define __CUDA_ARCH__ 800
#endif

// ---- qualifiers -----------------------------------------------------------------
#undef __global__
#undef __device__
#undef __host__
#undef __forceinline__
#undef __noinline__
#undef __shared__
#undef __constant__
#undef __launch_bounds__
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __constant__ static
#define __launch_bounds__(...)
// Every __shared__ declaration is rewritten (rewrite.sed); one the rewrite did not
// understand (an initialiser, several declarators) stops the build here.
#define __shared__ cuemu_unsupported_shared_declaration_see_tests_cuemu_rewrite_sed

namespace cuemu {

struct Site {
    const char *file;
    int line;
};

// The executing CUDA thread and its block (runtime.cc keeps them per worker thread),
// by value: the kernel reads them without touching the emulator's memory (which
// the device-memory check of kernel accesses would report).
uint3 thread_idx(void);
uint3 block_idx(void);
dim3 block_dim(void);
dim3 grid_dim(void);

// ---- barriers and warp collectives (runtime.cc) -------------------------------------

void syncthreads(Site s);
int syncthreads_count(Site s, int pred); // 0: count, 1: and, 2: or
int syncthreads_and(Site s, int pred);
int syncthreads_or(Site s, int pred);
void syncwarp(Site s, unsigned mask);
void trap(Site s);
void threadfence(void);

enum WarpOp {
    OP_SYNCWARP,
    OP_SHFL_IDX,
    OP_SHFL_XOR,
    OP_SHFL_UP,
    OP_SHFL_DOWN,
    OP_BALLOT,
    OP_ANY,
    OP_ALL,
    OP_MATCH_ANY,
    OP_MATCH_ALL,
    OP_REDUCE_ADD,
    OP_REDUCE_MIN,
    OP_REDUCE_MAX,
    OP_WMMA, // the wmma collectives (mma.h): one per call site, the work done by a callback
};

// One lane's part of a warp collective: the value it gives (its bits, zero-extended), the
// parameter (source lane, xor mask, delta) and the width; returns the lane's result.
uint64_t warp_collective(Site s, WarpOp op, unsigned mask, uint64_t value, int param, int width);

// wmma: each lane arrives with its own fragment pointers; when the whole warp has
// arrived, run(lanes, ctx) executes the operation for all 32 lanes at once (in the
// context of the last lane to arrive). ctx points at the calling lane's argument
// block; lanes[l] at lane l's (all must agree on the shared parameters).
typedef void (*WmmaRun)(void *const *lanes, int n_lanes, Site s);
void wmma_collective(Site s, const char *what, void *lane_args, WmmaRun run);

// The emulator's race checks see the wmma emulation's memory accesses through these.
void note_read(const void *p, size_t bytes, int lane, Site s);
void note_write(const void *p, size_t bytes, int lane, Site s);
void note_atomic(const void *p, size_t bytes, Site s);
bool wmma_reverse_mapping(void);
[[noreturn]] void fail(Site s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// ---- shared memory ------------------------------------------------------------------

// `extern __shared__ T x[];`: the block's dynamic shared memory (the launch's size,
// NaN-filled at the block's start).
void *dynamic_shared(Site s);
// `__shared__ T x...;`: one per (tag, block), NaN-filled when the block first reaches it.
void *static_shared(const void *tag, size_t bytes, size_t align, Site s, const char *name);
template <typename T>
static inline T &shared_var(const void *tag, const char *file, int line, const char *name) {
    return *(T *)static_shared(tag, sizeof(T), alignof(T), Site{file, line}, name);
}

// ---- launches -----------------------------------------------------------------------

struct LaunchCfg {
    Site site;
    const char *name;
    const void *fn;
    dim3 grid, block;
    size_t smem;
    cudaStream_t stream;
};

// Runs every block of the grid (synchronously, in stream order); body(arg) is one
// CUDA thread's kernel call, and [arg, arg + arg_bytes) the launch's own memory
// (the kernel's parameters before each thread copies them), which kernel code may
// read besides device memory, its shared memory and its own stack. A bad
// configuration sets the runtime's last error (cudaGetLastError) as a GPU would,
// and says why on stderr.
void launch(const LaunchCfg &cfg, void (*body)(void *), void *arg, size_t arg_bytes);

static inline dim3 to_dim3(dim3 d) { return d; }
static inline dim3 to_dim3(unsigned v) { return dim3(v); }
static inline dim3 to_dim3(int v) { return dim3((unsigned)v); }
static inline dim3 to_dim3(int64_t v) { return dim3((unsigned)v); }
static inline dim3 to_dim3(uint64_t v) { return dim3((unsigned)v); }

template <typename... P>
struct Launcher {
    LaunchCfg cfg;
    void (*fn)(P...);
    template <typename... A>
    void operator()(A &&...args) {
        static_assert(sizeof...(A) == sizeof...(P), "cuemu: kernel launched with the wrong number of arguments");
        // The parameters as the kernel declares them, converted once; each CUDA thread's
        // call copies them (by-value parameters are per thread, as on the GPU).
        struct Ctx {
            void (*fn)(P...);
            std::tuple<std::decay_t<P>...> params;
        } ctx{fn, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
        launch(cfg, [](void *p) {
            Ctx *c = (Ctx *)p;
            std::apply(c->fn, c->params);
        }, &ctx, sizeof ctx);
    }
};

template <typename... P, typename G, typename B>
static inline Launcher<P...> Launch(const char *file, int line, const char *name, void (*fn)(P...), G grid, B block,
                                    size_t smem = 0, cudaStream_t stream = 0) {
    Launcher<P...> l;
    l.cfg = LaunchCfg{Site{file, line}, name, (const void *)fn, to_dim3(grid), to_dim3(block), smem, stream};
    l.fn = fn;
    return l;
}

template <typename T>
static inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "cuemu: warp value of more than 8 bytes");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof v);
    return b;
}
template <typename T>
static inline T from_bits(uint64_t b) {
    T v;
    memcpy(&v, &b, sizeof v);
    return v;
}

template <typename T>
static inline T shfl(Site s, WarpOp op, unsigned mask, T v, int param, int width) {
    return from_bits<T>(warp_collective(s, op, mask, to_bits(v), param, width));
}

} // namespace cuemu

// cuda_runtime.h's C++ overload for kernels (nvcc only): the kernel's address as the C API wants it.
template <typename T>
static inline cudaError_t cudaFuncSetAttribute(T *entry, cudaFuncAttribute attr, int value) {
    return ::cudaFuncSetAttribute((const void *)entry, attr, value);
}

// ---- the built-in variables ------------------------------------------------------------
#define threadIdx (cuemu::thread_idx())
#define blockIdx (cuemu::block_idx())
#define blockDim (cuemu::block_dim())
#define gridDim (cuemu::grid_dim())
static constexpr int warpSize = 32;

#define CUEMU_SITE (cuemu::Site{__FILE__, __LINE__})

// ---- barriers, warp collectives ------------------------------------------------------------
#define __syncthreads() cuemu::syncthreads(CUEMU_SITE)
#define __syncthreads_count(p) cuemu::syncthreads_count(CUEMU_SITE, (p))
#define __syncthreads_and(p) cuemu::syncthreads_and(CUEMU_SITE, (p))
#define __syncthreads_or(p) cuemu::syncthreads_or(CUEMU_SITE, (p))
#define __syncwarp(...) cuemu::syncwarp(CUEMU_SITE, cuemu_mask_or_full(__VA_ARGS__))
static inline unsigned cuemu_mask_or_full(void) { return 0xffffffffu; }
static inline unsigned cuemu_mask_or_full(unsigned m) { return m; }
#define __trap() cuemu::trap(CUEMU_SITE)
#define __threadfence() cuemu::threadfence()
#define __threadfence_block() cuemu::threadfence()

static inline int cuemu_width(void) { return 32; }
static inline int cuemu_width(int w) { return w; }
#define __shfl_sync(mask, v, src, ...) cuemu::shfl(CUEMU_SITE, cuemu::OP_SHFL_IDX, (mask), (v), (int)(src), cuemu_width(__VA_ARGS__))
#define __shfl_xor_sync(mask, v, m, ...) cuemu::shfl(CUEMU_SITE, cuemu::OP_SHFL_XOR, (mask), (v), (int)(m), cuemu_width(__VA_ARGS__))
#define __shfl_up_sync(mask, v, d, ...) cuemu::shfl(CUEMU_SITE, cuemu::OP_SHFL_UP, (mask), (v), (int)(d), cuemu_width(__VA_ARGS__))
#define __shfl_down_sync(mask, v, d, ...) cuemu::shfl(CUEMU_SITE, cuemu::OP_SHFL_DOWN, (mask), (v), (int)(d), cuemu_width(__VA_ARGS__))
#define __ballot_sync(mask, p) ((unsigned)cuemu::warp_collective(CUEMU_SITE, cuemu::OP_BALLOT, (mask), (p) ? 1u : 0u, 0, 32))
#define __any_sync(mask, p) ((int)cuemu::warp_collective(CUEMU_SITE, cuemu::OP_ANY, (mask), (p) ? 1u : 0u, 0, 32))
#define __all_sync(mask, p) ((int)cuemu::warp_collective(CUEMU_SITE, cuemu::OP_ALL, (mask), (p) ? 1u : 0u, 0, 32))
#define __match_any_sync(mask, v) ((unsigned)cuemu::warp_collective(CUEMU_SITE, cuemu::OP_MATCH_ANY, (mask), cuemu::to_bits(v), 0, 32))
#define __reduce_add_sync(mask, v) ((unsigned)cuemu::warp_collective(CUEMU_SITE, cuemu::OP_REDUCE_ADD, (mask), (uint64_t)(unsigned)(v), 0, 32))
#define __reduce_min_sync(mask, v) ((unsigned)cuemu::warp_collective(CUEMU_SITE, cuemu::OP_REDUCE_MIN, (mask), (uint64_t)(unsigned)(v), 0, 32))
#define __reduce_max_sync(mask, v) ((unsigned)cuemu::warp_collective(CUEMU_SITE, cuemu::OP_REDUCE_MAX, (mask), (uint64_t)(unsigned)(v), 0, 32))
static inline unsigned __activemask(void) { return 0xffffffffu; }

// ---- atomics (blocks run on several host threads: real atomics) -------------------------------
// Each tells the race check where it is (an atomic is ordered with other atomics only); their
// own memory accesses are not the kernel's plain ones (no coverage callbacks).
#pragma clang attribute push(__attribute__((no_sanitize("coverage"))), apply_to = function)
namespace cuemu {
template <typename T, typename V>
static inline T atomic_add(Site s, T *p, V v_) {
    note_atomic(p, sizeof *p, s);
    const T v = (T)v_;
    if constexpr (std::is_floating_point<T>::value) {
        T old, want;
        __atomic_load(p, &old, __ATOMIC_RELAXED);
        do {
            want = old + v;
        } while (!__atomic_compare_exchange(p, &old, &want, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
        return old;
    } else {
        return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
    }
}
template <typename T, typename V>
static inline T atomic_max(Site s, T *p, V v_) {
    note_atomic(p, sizeof *p, s);
    const T v = (T)v_;
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (old < v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    return old;
}
template <typename T, typename V>
static inline T atomic_min(Site s, T *p, V v_) {
    note_atomic(p, sizeof *p, s);
    const T v = (T)v_;
    T old = __atomic_load_n(p, __ATOMIC_RELAXED);
    while (old > v && !__atomic_compare_exchange_n(p, &old, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
    return old;
}
template <typename T, typename V>
static inline T atomic_exch(Site s, T *p, V v) {
    note_atomic(p, sizeof *p, s);
    return __atomic_exchange_n(p, (T)v, __ATOMIC_RELAXED);
}
template <typename T, typename C, typename V>
static inline T atomic_cas(Site s, T *p, C cmp_, V v) {
    note_atomic(p, sizeof *p, s);
    T cmp = (T)cmp_;
    __atomic_compare_exchange_n(p, &cmp, (T)v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return cmp;
}
} // namespace cuemu
#pragma clang attribute pop
#define atomicAdd(p, v) cuemu::atomic_add(CUEMU_SITE, (p), (v))
#define atomicMax(p, v) cuemu::atomic_max(CUEMU_SITE, (p), (v))
#define atomicMin(p, v) cuemu::atomic_min(CUEMU_SITE, (p), (v))
#define atomicExch(p, v) cuemu::atomic_exch(CUEMU_SITE, (p), (v))
#define atomicCAS(p, c, v) cuemu::atomic_cas(CUEMU_SITE, (p), (c), (v))

// ---- intrinsics ----------------------------------------------------------------------------
static inline unsigned __float_as_uint(float f) { return cuemu::from_bits<unsigned>(cuemu::to_bits(f)); }
static inline float __uint_as_float(unsigned u) { return cuemu::from_bits<float>(cuemu::to_bits(u)); }
static inline int __float_as_int(float f) { return cuemu::from_bits<int>(cuemu::to_bits(f)); }
static inline float __int_as_float(int u) { return cuemu::from_bits<float>(cuemu::to_bits(u)); }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
static inline unsigned __brev(unsigned x) {
    unsigned r = 0;
    for (int i = 0; i < 32; i++) r |= ((x >> i) & 1u) << (31 - i);
    return r;
}
// Correctly rounded single operations: volatile keeps them from being contracted into FMAs.
static inline float __fmul_rn(float a, float b) { volatile float r = a * b; return r; }
static inline float __fadd_rn(float a, float b) { volatile float r = a + b; return r; }
static inline float __fsub_rn(float a, float b) { volatile float r = a - b; return r; }
static inline float __fdiv_rn(float a, float b) { volatile float r = a / b; return r; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __fdividef(float a, float b) { return a / b; }
// __expf, __logf, __sinf, __cosf: glibc's functions of those names (math.h), the
// correctly rounded ones rather than the GPU's approximations.
static inline float __saturatef(float x) { return x < 0.0f ? 0.0f : x > 1.0f ? 1.0f : x; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
template <typename T>
static inline T __ldg(const T *p) { return *p; }

// CUDA's integer min/max overloads (device code calls min(int, int) unqualified).
template <typename A, typename B>
static inline typename std::common_type<A, B>::type min(A a, B b) {
    typedef typename std::common_type<A, B>::type C;
    return (C)a < (C)b ? (C)a : (C)b;
}
template <typename A, typename B>
static inline typename std::common_type<A, B>::type max(A a, B b) {
    typedef typename std::common_type<A, B>::type C;
    return (C)a > (C)b ? (C)a : (C)b;
}

#endif
