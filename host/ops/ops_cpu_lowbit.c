// Matmuls and embedding lookups on low-bit CPU weights (bf16 or q8_0; the
// model keeps them so after llama_convert_weights), y = alpha x w^T + beta y:
//  - decode (m <= LOWBIT_MAX_M activation rows): a kernel that reads every
//    weight row once for all rows (lowbit.h), columns of y split across
//    OpenMP threads; the kernel is the best the CPU has (AVX-512, AVX2+FMA or
//    the portable scalar one), checked at run time;
//  - prefill (more rows): panels of weight rows widened to f32 in a per-thread
//    buffer, then cblas_sgemm per panel (the conversion is O(n k), the product
//    O(m n k)), panels split across threads (OpenBLAS runs single-threaded
//    inside a parallel region).
#include <assert.h>
#include <cblas.h>
#include <cpuid.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lowbit.h"
#include "ops_cpu.h"
#include "runtime/log.h"

#define ROWS(t) ((t)->shape[0])
#define COLS(t) ((t)->shape[1])
#define ROWS_PER_TASK 16 // weight rows per OpenMP task in decode

// ---- which kernels --------------------------------------------------------

static int g_isa_cap = -1; // the highest CpuIsa allowed; -1 until read from ELASTILM_CPU_ISA

const char *cpu_isa_name(CpuIsa isa) {
    static const char *names[] = {"scalar", "avx2", "avx512"};
    return names[isa];
}

// F16C and AVX512-BF16 from CPUID itself: clang before 16 knows neither name in
// __builtin_cpu_supports (the CUDA emulator's build, tests/cuemu, uses clang). The OS
// support they need (AVX / AVX-512 state) is checked through avx2 / avx512f first.
static bool cpuid_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
static bool cpuid_avx512bf16(void) {
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
}

bool cpu_lowbit_isa_available(CpuIsa isa, DType w_dtype) {
    __builtin_cpu_init();
    switch (isa) {
    case CPU_ISA_SCALAR: return true;
    case CPU_ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpuid_f16c();
    case CPU_ISA_AVX512:
        if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw")) return false;
        if (w_dtype == DT_BF16) return cpuid_avx512bf16();
        return __builtin_cpu_supports("avx512vnni") && cpuid_f16c();
    }
    return false;
}

static CpuIsa isa_cap(void) {
    if (g_isa_cap < 0) { // read once; a race only reads the same variable twice
        const char *e = getenv("ELASTILM_CPU_ISA");
        int cap = CPU_ISA_AVX512;
        if (e && *e) {
            for (cap = CPU_ISA_AVX512; cap >= 0 && strcmp(e, cpu_isa_name((CpuIsa)cap)) != 0; cap--) {}
            if (cap < 0) {
                log_warn("ELASTILM_CPU_ISA=%s: expected scalar, avx2 or avx512; using the best the CPU has", e);
                cap = CPU_ISA_AVX512;
            }
        }
        g_isa_cap = cap;
    }
    return (CpuIsa)g_isa_cap;
}

void cpu_lowbit_set_isa(CpuIsa cap) { g_isa_cap = (int)cap; }

CpuIsa cpu_lowbit_isa(DType w_dtype) {
    for (int isa = isa_cap(); isa > CPU_ISA_SCALAR; isa--)
        if (cpu_lowbit_isa_available((CpuIsa)isa, w_dtype)) return (CpuIsa)isa;
    return CPU_ISA_SCALAR;
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) { // ops have no status: out of memory for a scratch buffer is fatal here
        fprintf(stderr, "elastilm: out of memory (%zu bytes of matmul scratch)\n", bytes);
        abort();
    }
    return p;
}

// ---- decode: one pass over the weights -------------------------------------

// x's rows quantised per block of 32 (Q8Act): scale max|x| / 127 in f32, zeros
// past k; a block with a non-finite value gets a NaN scale (NaN out, as in f32).
static void quantize_act(int8_t *q, float *d, const Tensor *x, int64_t nb) {
    int64_t k = COLS(x);
    memset(q, 0, (size_t)(ROWS(x) * nb * Q8_BLOCK));
    for (int64_t i = 0; i < ROWS(x); i++) {
        const float *xr = tensor_row_f32(x, i);
        for (int64_t b = 0; b < nb; b++) {
            int64_t p0 = b * Q8_BLOCK, n = k - p0 < Q8_BLOCK ? k - p0 : Q8_BLOCK;
            float amax = 0.0f;
            bool finite = true;
            for (int64_t t = 0; t < n; t++) {
                amax = fmaxf(amax, fabsf(xr[p0 + t]));
                finite = finite && isfinite(xr[p0 + t]);
            }
            float inv = amax > 0.0f && finite ? 127.0f / amax : 0.0f;
            int8_t *qb = q + (i * nb + b) * Q8_BLOCK;
            d[i * nb + b] = finite ? amax / 127.0f : NAN;
            for (int64_t t = 0; t < n; t++) qb[t] = q8_round(xr[p0 + t] * inv);
        }
    }
}

// x's rows as bf16 hi + lo parts, zero-padded to kp (Bf16Act).
static void split_act(uint16_t *hi, uint16_t *lo, const Tensor *x, int64_t kp) {
    memset(hi, 0, (size_t)(ROWS(x) * kp) * sizeof *hi);
    memset(lo, 0, (size_t)(ROWS(x) * kp) * sizeof *lo);
    for (int64_t i = 0; i < ROWS(x); i++) {
        const float *xr = tensor_row_f32(x, i);
        for (int64_t p = 0; p < COLS(x); p++) {
            uint16_t h = f32_to_bf16(xr[p]);
            hi[i * kp + p] = h;
            lo[i * kp + p] = f32_to_bf16(xr[p] - bf16_to_f32(h));
        }
    }
}

static void matmul_direct(Tensor *out, const Tensor *x, const Tensor *w, float alpha, float beta) {
    int64_t n = ROWS(w), k = COLS(w), tasks = (n + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
    LowbitOut o = {out->data, tensor_ld(out), (int)ROWS(x), alpha, beta};
    CpuIsa isa = cpu_lowbit_isa(w->dtype);
    bool big = n * k >= (1 << 15); // below this, threads cost more than they save
    if (w->dtype == DT_BF16) {
        Bf16Act a = {x->data, tensor_ld(x), k, NULL, NULL, (k + 31) / 32 * 32};
        uint16_t *parts = NULL;
        if (isa == CPU_ISA_AVX512) {
            parts = xmalloc((size_t)(2 * o.m * a.kp) * sizeof *parts);
            split_act(parts, parts + o.m * a.kp, x, a.kp);
            a.hi = parts, a.lo = parts + o.m * a.kp;
        }
        Bf16Rows f = isa == CPU_ISA_AVX512 ? bf16_rows_avx512 : isa == CPU_ISA_AVX2 ? bf16_rows_avx2 : bf16_rows_scalar;
        const uint16_t *wd = w->data;
#pragma omp parallel for schedule(static) if (big)
        for (int64_t t = 0; t < tasks; t++)
            f(&o, &a, wd, tensor_ld(w), t * ROWS_PER_TASK, t + 1 < tasks ? (t + 1) * ROWS_PER_TASK : n);
        free(parts);
    } else {
        int64_t nb = q8_blocks(k);
        int8_t *q = xmalloc((size_t)(o.m * nb * Q8_BLOCK));
        float *d = xmalloc((size_t)(o.m * nb) * sizeof *d);
        quantize_act(q, d, x, nb);
        Q8Act a = {q, d, nb};
        Q8Rows f = isa == CPU_ISA_AVX512 ? q8_rows_avx512 : isa == CPU_ISA_AVX2 ? q8_rows_avx2 : q8_rows_scalar;
        const Q8Block *wd = w->data;
        int64_t ldw = tensor_ld(w) / Q8_BLOCK;
#pragma omp parallel for schedule(static) if (big)
        for (int64_t t = 0; t < tasks; t++)
            f(&o, &a, wd, ldw, t * ROWS_PER_TASK, t + 1 < tasks ? (t + 1) * ROWS_PER_TASK : n);
        free(q);
        free(d);
    }
}

// ---- prefill: f32 panels and sgemm -----------------------------------------

// Row r of a bf16 / q8_0 2-d tensor: its first COLS(t) values as floats.
static void widen_row(float *dst, const Tensor *t, int64_t r, bool avx2) {
    int64_t k = COLS(t);
    if (t->dtype == DT_BF16) {
        const uint16_t *src = (const uint16_t *)t->data + r * tensor_ld(t);
        if (avx2) bf16_widen_avx2(dst, src, k);
        else bf16_widen_scalar(dst, src, k);
    } else {
        const Q8Block *src = (const Q8Block *)t->data + r * (tensor_ld(t) / Q8_BLOCK);
        if (avx2) q8_widen_avx2(dst, src, k);
        else q8_dequantize_row(dst, src, k);
    }
}

static bool widen_avx2(DType dt) { return cpu_lowbit_isa(dt) >= CPU_ISA_AVX2; } // AVX-512 CPUs have AVX2

static void matmul_panels(Tensor *out, const Tensor *x, const Tensor *w, float alpha, float beta) {
    int64_t m = ROWS(x), n = ROWS(w), k = COLS(w);
    // ~4 panels per thread for balance, 16..128 rows each (a panel stays in L2)
    int64_t threads = ops_get_threads(), panel = (n + 4 * threads - 1) / (4 * threads);
    panel = panel < 16 ? 16 : panel > 128 ? 128 : (panel + 15) / 16 * 16;
    int64_t n_panels = (n + panel - 1) / panel;
    float *y = out->data;
    bool avx2 = widen_avx2(w->dtype);
#pragma omp parallel if (n_panels > 1)
    {
        float *buf = xmalloc((size_t)(panel * k) * sizeof *buf);
#pragma omp for schedule(dynamic, 1)
        for (int64_t pi = 0; pi < n_panels; pi++) {
            int64_t j0 = pi * panel, np = n - j0 < panel ? n - j0 : panel;
            for (int64_t r = 0; r < np; r++) widen_row(buf + r * k, w, j0 + r, avx2);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)np, (blasint)k, alpha, x->data,
                        (blasint)tensor_ld(x), buf, (blasint)k, beta, y + j0, (blasint)tensor_ld(out));
        }
        free(buf);
    }
}

void cpu_matmul_lowbit(Tensor *out, const Tensor *x, const Tensor *w, float alpha, float beta) {
    assert(out->ndim == 2 && x->ndim == 2 && w->ndim == 2 && x->dtype == DT_F32 && out->dtype == DT_F32);
    assert(w->dtype == DT_BF16 || w->dtype == DT_Q8_0);
    int64_t m = ROWS(x), k = COLS(x), n = ROWS(w);
    assert(COLS(w) == k && ROWS(out) == m && COLS(out) == n);
    if (m == 0 || n == 0) return;
    if (k == 0) { // no products: y = beta y (beta = 0 does not read y)
        if (beta == 0.0f) tensor_zero(out);
        else
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) tensor_row_f32(out, i)[j] *= beta;
        return;
    }
    if (m <= LOWBIT_MAX_M) matmul_direct(out, x, w, alpha, beta);
    else matmul_panels(out, x, w, alpha, beta);
}

void cpu_embedding_lowbit(Tensor *out, const Tensor *table, const int32_t *ids) {
    assert(COLS(out) == COLS(table) && (table->dtype == DT_BF16 || table->dtype == DT_Q8_0));
    int64_t n = ROWS(out);
    bool avx2 = widen_avx2(table->dtype);
#pragma omp parallel for if (n > 16)
    for (int64_t i = 0; i < n; i++) {
        assert(ids[i] >= 0 && ids[i] < ROWS(table));
        widen_row(tensor_row_f32(out, i), table, ids[i], avx2);
    }
}
