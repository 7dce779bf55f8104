// mma.h of the CUDA-on-CPU emulator: nvcuda::wmma on the CPU, in place of NVIDIA's
// (which is device-only). The emulated shapes and types: m16n16k8 with
// precision::tf32 operands, m16n16k16 with __half or __nv_bfloat16 operands; float
// accumulators.
//
// Each lane holds num_elements of a fragment, as on the GPU; which element of the
// matrix a lane's x[e] is, is unspecified in CUDA, and here follows one mapping
// under the forward schedule and its mirror under the others, so that code that
// assumes a mapping fails. load/store/mma are warp collectives (all 32 lanes, one
// call site, the same pointer, ldm and layout), checked as CUDA requires:
//   - the pointer 256-bit (32-byte) aligned,
//   - ldm a multiple of 16 bytes' worth of elements (8 for __half, 4 for float),
//   - every lane of the warp present (none exited or elsewhere).
// mma_sync truncates tf32 operands to their 19 bits (the tensor cores read no more;
// __float_to_tf32 rounds, to nearest with ties away, as cvt.rna.tf32.f32 does) and
// accumulates in fp32, k in order.
#ifndef CUEMU_MMA_H
#define CUEMU_MMA_H

#include "../cuemu.h"

// The emulation's own memory accesses are not the kernel's: none of its functions is
// seen by the coverage callbacks (the collectives report per lane through note_read /
// note_write instead).
#pragma clang attribute push(__attribute__((no_sanitize("coverage"))), apply_to = function)

namespace nvcuda {
namespace wmma {

struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
namespace precision {
struct tf32 {};
} // namespace precision
enum layout_t { mem_row_major, mem_col_major };

static inline float __float_to_tf32(float f) {
    uint32_t u = cuemu::from_bits<uint32_t>(cuemu::to_bits(f));
    if ((u & 0x7f800000u) != 0x7f800000u) { // finite: round to 10 mantissa bits, ties away from zero
        u += 0x1000u;
        u &= 0xffffe000u;
    }
    return cuemu::from_bits<float>(cuemu::to_bits(u));
}

namespace detail {
template <typename T> struct storage { typedef T type; };
template <> struct storage<precision::tf32> { typedef float type; };

template <typename Use, int M, int N, int K> struct dims;
template <int M, int N, int K> struct dims<matrix_a, M, N, K> { enum { rows = M, cols = K }; };
template <int M, int N, int K> struct dims<matrix_b, M, N, K> { enum { rows = K, cols = N }; };
template <int M, int N, int K> struct dims<accumulator, M, N, K> { enum { rows = M, cols = N }; };

template <typename L> struct layout_of { static const layout_t value = mem_row_major; };
template <> struct layout_of<col_major> { static const layout_t value = mem_col_major; };

static inline float to_f(float v) { return v; }
static inline float to_f(__half v) { return __half2float(v); }
static inline float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> static inline T from_f(float v);
template <> inline float from_f<float>(float v) { return v; }
template <> inline __half from_f<__half>(float v) { return __float2half_rn(v); }
template <> inline __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Matrix element i (row-major over rows x cols) lives in lane i / ne, slot i % ne,
// or mirrored (lane 31 - ..., slot ne - 1 - ...) when the schedule is not forward.
static inline void place(int i, int ne, int *lane, int *slot) {
    if (cuemu::wmma_reverse_mapping()) i = 32 * ne - 1 - i;
    *lane = i / ne;
    *slot = i % ne;
}

template <typename E>
struct MemArgs { // a load or a store: one per lane
    E *frag;          // the lane's x[]
    const void *ptr;  // the matrix in memory
    unsigned ldm;
    layout_t layout;
    int rows, cols, ne;
    int is_store;
};

static inline void check_mem(const cuemu::Site &s, const char *what, const void *ptr, unsigned ldm, int elem_bytes) {
    if ((uintptr_t)ptr % 32 != 0)
        cuemu::fail(s, "wmma::%s: the pointer %p is not 256-bit (32-byte) aligned (its address mod 32 is %u)", what, ptr,
                    (unsigned)((uintptr_t)ptr % 32));
    if ((ldm * (unsigned)elem_bytes) % 16 != 0)
        cuemu::fail(s, "wmma::%s: ldm %u is not a multiple of %d elements (16 bytes)", what, ldm, 16 / elem_bytes);
}

template <typename E, typename MemT>
static void run_mem(void *const *lanes, int n, cuemu::Site s) {
    MemArgs<E> *a0 = (MemArgs<E> *)lanes[0];
    const char *what = a0->is_store ? "store_matrix_sync" : "load_matrix_sync";
    for (int l = 1; l < n; l++) {
        MemArgs<E> *a = (MemArgs<E> *)lanes[l];
        if (a->ptr != a0->ptr || a->ldm != a0->ldm || a->layout != a0->layout)
            cuemu::fail(s, "wmma::%s: lanes disagree: lane 0 passes (%p, ldm %u, %s), lane %d (%p, ldm %u, %s)", what,
                        a0->ptr, a0->ldm, a0->layout == mem_row_major ? "row-major" : "col-major", l, a->ptr, a->ldm,
                        a->layout == mem_row_major ? "row-major" : "col-major");
    }
    check_mem(s, what, a0->ptr, a0->ldm, (int)sizeof(MemT));
    if ((int)a0->ldm < (a0->layout == mem_row_major ? a0->cols : a0->rows))
        cuemu::fail(s, "wmma::%s: ldm %u is smaller than the %s (%d)", what, a0->ldm,
                    a0->layout == mem_row_major ? "columns" : "rows", a0->layout == mem_row_major ? a0->cols : a0->rows);
    const int R = a0->rows, C = a0->cols, ne = a0->ne;
    for (int i = 0; i < R * C; i++) {
        int r = i / C, c = i % C, lane, slot;
        place(i, ne, &lane, &slot);
        size_t off = a0->layout == mem_row_major ? (size_t)r * a0->ldm + c : (size_t)c * a0->ldm + r;
        MemArgs<E> *a = (MemArgs<E> *)lanes[lane];
        if (a0->is_store) {
            MemT *p = (MemT *)a0->ptr + off;
            cuemu::note_write(p, sizeof *p, lane, s);
            *p = from_f<MemT>(to_f(a->frag[slot]));
        } else {
            const MemT *p = (const MemT *)a0->ptr + off;
            cuemu::note_read(p, sizeof *p, lane, s);
            a->frag[slot] = from_f<E>(to_f(*p));
        }
    }
}
} // namespace detail

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
class fragment {
  public:
    typedef typename detail::storage<T>::type storage_element_type;
    typedef storage_element_type element_type;
    enum { num_elements = detail::dims<Use, M, N, K>::rows * detail::dims<Use, M, N, K>::cols / 32 };
    storage_element_type x[num_elements];
};

template <typename Use, int M, int N, int K, typename T, typename L>
static inline void fill_fragment(fragment<Use, M, N, K, T, L> &f, typename fragment<Use, M, N, K, T, L>::element_type v) {
    for (int e = 0; e < f.num_elements; e++) f.x[e] = v;
}

template <typename Use, int M, int N, int K, typename T, typename L, typename MemT>
static void load_mem(cuemu::Site s, fragment<Use, M, N, K, T, L> &f, const MemT *p, unsigned ldm, layout_t layout, int store) {
    typedef typename fragment<Use, M, N, K, T, L>::storage_element_type E;
    detail::MemArgs<E> a;
    a.frag = f.x;
    a.ptr = p;
    a.ldm = ldm;
    a.layout = layout;
    a.rows = detail::dims<Use, M, N, K>::rows;
    a.cols = detail::dims<Use, M, N, K>::cols;
    a.ne = fragment<Use, M, N, K, T, L>::num_elements;
    a.is_store = store;
    cuemu::wmma_collective(s, store ? "store_matrix_sync" : "load_matrix_sync", &a, detail::run_mem<E, MemT>);
}

// matrix_a / matrix_b: the layout is the fragment's
template <typename Use, int M, int N, int K, typename T, typename L, typename MemT>
static inline void load_matrix_sync_at(cuemu::Site s, fragment<Use, M, N, K, T, L> &f, const MemT *p, unsigned ldm) {
    static_assert(!std::is_same<Use, accumulator>::value, "wmma: an accumulator load needs a layout");
    load_mem(s, f, p, ldm, detail::layout_of<L>::value, 0);
}
template <int M, int N, int K, typename T, typename MemT>
static inline void load_matrix_sync_at(cuemu::Site s, fragment<accumulator, M, N, K, T, void> &f, const MemT *p, unsigned ldm,
                                       layout_t layout) {
    load_mem(s, f, p, ldm, layout, 0);
}
template <int M, int N, int K, typename T, typename MemT>
static inline void store_matrix_sync_at(cuemu::Site s, MemT *p, const fragment<accumulator, M, N, K, T, void> &f, unsigned ldm,
                                        layout_t layout) {
    load_mem(s, const_cast<fragment<accumulator, M, N, K, T, void> &>(f), (const MemT *)p, ldm, layout, 1);
}

namespace detail {
struct MmaArgs {
    float *d;
    const void *a, *b;
    const float *c;
    int M, N, K, ne_a, ne_b, ne_c, tf32;
    int a_kind; // 0 float, 1 __half, 2 __nv_bfloat16
};
static inline float tf32_truncate(float v) {
    uint32_t u = cuemu::from_bits<uint32_t>(cuemu::to_bits(v));
    if ((u & 0x7f800000u) != 0x7f800000u) u &= 0xffffe000u;
    return cuemu::from_bits<float>(cuemu::to_bits(u));
}
static inline float operand(const void *frag, int kind, int slot, int tf32) {
    float v = kind == 0 ? ((const float *)frag)[slot]
              : kind == 1 ? __half2float(((const __half *)frag)[slot])
                          : __bfloat162float(((const __nv_bfloat16 *)frag)[slot]);
    return tf32 ? tf32_truncate(v) : v;
}
void run_mma(void *const *lanes, int n, cuemu::Site s);
} // namespace detail

template <int M, int N, int K, typename TA, typename LA, typename LB>
static inline void mma_sync_at(cuemu::Site s, fragment<accumulator, M, N, K, float, void> &d,
                               const fragment<matrix_a, M, N, K, TA, LA> &a, const fragment<matrix_b, M, N, K, TA, LB> &b,
                               const fragment<accumulator, M, N, K, float, void> &c) {
    detail::MmaArgs m;
    m.d = d.x;
    m.a = a.x;
    m.b = b.x;
    m.c = c.x;
    m.M = M, m.N = N, m.K = K;
    m.ne_a = a.num_elements, m.ne_b = b.num_elements, m.ne_c = c.num_elements;
    m.tf32 = std::is_same<TA, precision::tf32>::value;
    m.a_kind = std::is_same<TA, __half>::value ? 1 : std::is_same<TA, __nv_bfloat16>::value ? 2 : 0;
    cuemu::wmma_collective(s, "mma_sync", &m, detail::run_mma);
}

namespace detail {
inline void run_mma(void *const *lanes, int n, cuemu::Site s) {
    (void)n;
    const MmaArgs *m0 = (const MmaArgs *)lanes[0];
    const int M = m0->M, N = m0->N, K = m0->K;
    float A[16 * 16], B[16 * 16], C[16 * 16];
    if (M * K > 256 || K * N > 256 || M * N > 256) cuemu::fail(s, "wmma::mma_sync: unsupported shape m%dn%dk%d", M, N, K);
    for (int i = 0; i < M * K; i++) {
        int lane, slot;
        place(i, m0->ne_a, &lane, &slot);
        A[i] = operand(((const MmaArgs *)lanes[lane])->a, m0->a_kind, slot, m0->tf32);
    }
    for (int i = 0; i < K * N; i++) {
        int lane, slot;
        place(i, m0->ne_b, &lane, &slot);
        B[i] = operand(((const MmaArgs *)lanes[lane])->b, m0->a_kind, slot, m0->tf32);
    }
    for (int i = 0; i < M * N; i++) {
        int lane, slot;
        place(i, m0->ne_c, &lane, &slot);
        C[i] = ((const MmaArgs *)lanes[lane])->c[slot];
    }
    for (int r = 0; r < M; r++)
        for (int c = 0; c < N; c++) {
            float acc = C[r * N + c];
            for (int k = 0; k < K; k++) acc += A[r * K + k] * B[k * N + c];
            int lane, slot;
            place(r * N + c, m0->ne_c, &lane, &slot);
            ((const MmaArgs *)lanes[lane])->d[slot] = acc;
        }
}
} // namespace detail

} // namespace wmma
} // namespace nvcuda

#pragma clang attribute pop

#define load_matrix_sync(...) load_matrix_sync_at(CUEMU_SITE, __VA_ARGS__)
#define store_matrix_sync(...) store_matrix_sync_at(CUEMU_SITE, __VA_ARGS__)
#define mma_sync(...) mma_sync_at(CUEMU_SITE, __VA_ARGS__)

#endif
