// The subset of cuBLASLt the project uses, on the CPU, behind NVIDIA's cublasLt.h:
// handles, matmul descriptors (compute 32F, scale 32F; TRANSA / TRANSB), matrix
// layouts (column-major, f32 / f16 / bf16, any leading dimension >= rows),
// preferences (workspace size, minimum alignments), the heuristic (one algorithm,
// which remembers the alignments it was promised) and the matmul
//
//   D = alpha * op(A) op(B) + beta * C        (C not read when beta == 0)
//
// with fp32 accumulation over k in order. Checked as cuBLASLt would refuse or a GPU
// would fault: the types and shapes of the four layouts against each other, each
// operand's whole span inside one device allocation, a pointer less aligned than
// the alignment the heuristic was asked for, C and D in place only with one layout,
// the workspace size. Anything else is CUBLAS_STATUS_NOT_SUPPORTED with a message.
#include "internal.h"

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

using namespace cuemu;

struct cublasLtContext {
    int magic;
};

namespace {

enum { MAGIC_DESC = 0x4c544d44, MAGIC_LAYOUT = 0x4c544c59, MAGIC_PREF = 0x4c545046 };

struct Desc {
    int magic;
    cublasComputeType_t compute;
    cudaDataType_t scale;
    cublasOperation_t ta, tb;
};

struct Layout {
    int magic;
    cudaDataType_t type;
    uint64_t rows, cols;
    int64_t ld;
};

struct Pref {
    int magic;
    size_t workspace;
    uint32_t align[4]; // A, B, C, D
};

struct Algo { // inside cublasLtMatmulAlgo_t's 64 bytes
    uint32_t magic;
    uint32_t align[4];
    uint64_t workspace;
};

static cublasStatus_t lt_error(const void *caller, cublasStatus_t st, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static cublasStatus_t lt_error(const void *caller, cublasStatus_t st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    report_call(caller, "cuBLASLt: ", cublasLtGetStatusName(st), fmt, ap);
    va_end(ap);
    return st;
}
#define CALLER __builtin_return_address(0)

static size_t type_bytes(cudaDataType_t t) {
    switch (t) {
    case CUDA_R_32F: return 4;
    case CUDA_R_16F:
    case CUDA_R_16BF: return 2;
    default: return 0;
    }
}

static const char *type_name(cudaDataType_t t) {
    switch (t) {
    case CUDA_R_32F: return "CUDA_R_32F";
    case CUDA_R_16F: return "CUDA_R_16F";
    case CUDA_R_16BF: return "CUDA_R_16BF";
    default: return "an unsupported type";
    }
}

static inline float load(const void *p, cudaDataType_t t, size_t i) {
    switch (t) {
    case CUDA_R_16F: return __half2float(((const __half *)p)[i]);
    case CUDA_R_16BF: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

static uint32_t ptr_align(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t al = 256;
    while (al > 1 && (a & (al - 1))) al >>= 1;
    return al;
}

// Bytes spanned by a column-major rows x cols matrix with leading dimension ld.
static size_t span(const Layout *l) {
    if (!l->rows || !l->cols) return 0;
    return ((size_t)(l->cols - 1) * (size_t)l->ld + l->rows) * type_bytes(l->type);
}

static bool is(const void *p, int magic) { return p && *(const int *)p == magic; }

// The shapes of op(A) [m, k], op(B) [k, n], C = D [m, n]; false with a message when they disagree.
static cublasStatus_t shapes(const void *caller, const Desc *d, const Layout *a, const Layout *b, const Layout *c,
                             const Layout *dd, uint64_t *m, uint64_t *n, uint64_t *k) {
    uint64_t am = d->ta == CUBLAS_OP_N ? a->rows : a->cols, ak = d->ta == CUBLAS_OP_N ? a->cols : a->rows;
    uint64_t bk = d->tb == CUBLAS_OP_N ? b->rows : b->cols, bn = d->tb == CUBLAS_OP_N ? b->cols : b->rows;
    if (ak != bk || c->rows != am || c->cols != bn || dd->rows != am || dd->cols != bn)
        return lt_error(caller, CUBLAS_STATUS_INVALID_VALUE,
                        "shapes disagree: op(A) [%llu, %llu], op(B) [%llu, %llu], C [%llu, %llu], D [%llu, %llu]",
                        (unsigned long long)am, (unsigned long long)ak, (unsigned long long)bk, (unsigned long long)bn,
                        (unsigned long long)c->rows, (unsigned long long)c->cols, (unsigned long long)dd->rows,
                        (unsigned long long)dd->cols);
    if (a->type != b->type || c->type != CUDA_R_32F || dd->type != CUDA_R_32F)
        return lt_error(caller, CUBLAS_STATUS_NOT_SUPPORTED,
                        "types A %s, B %s, C %s, D %s: the emulator has A = B in f32/f16/bf16 with f32 C and D",
                        type_name(a->type), type_name(b->type), type_name(c->type), type_name(dd->type));
    if (d->compute != CUBLAS_COMPUTE_32F || d->scale != CUDA_R_32F)
        return lt_error(caller, CUBLAS_STATUS_NOT_SUPPORTED, "compute type %d / scale type %d: the emulator has 32F / 32F",
                        (int)d->compute, (int)d->scale);
    *m = am, *n = bn, *k = ak;
    return CUBLAS_STATUS_SUCCESS;
}

} // namespace

extern "C" {

const char *cublasLtGetStatusName(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
    }
}

const char *cublasLtGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    default: return "unknown error";
    }
}

cublasStatus_t cublasLtCreate(cublasLtHandle_t *h) {
    *h = (cublasLtHandle_t)calloc(1, sizeof(cublasLtContext));
    if (!*h) return CUBLAS_STATUS_ALLOC_FAILED;
    (*h)->magic = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) {
    free(h);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *out, cublasComputeType_t compute, cudaDataType_t scale) {
    Desc *d = (Desc *)calloc(1, sizeof(Desc));
    if (!d) return CUBLAS_STATUS_ALLOC_FAILED;
    d->magic = MAGIC_DESC;
    d->compute = compute;
    d->scale = scale;
    d->ta = d->tb = CUBLAS_OP_N;
    *out = (cublasLtMatmulDesc_t)d;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    free(desc);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const void *buf,
                                              size_t size) {
    Desc *d = (Desc *)desc;
    if (!is(d, MAGIC_DESC)) return lt_error(CALLER, CUBLAS_STATUS_INVALID_VALUE, "not a matmul descriptor");
    if (attr == CUBLASLT_MATMUL_DESC_TRANSA || attr == CUBLASLT_MATMUL_DESC_TRANSB) {
        if (size != sizeof(int32_t)) return lt_error(CALLER, CUBLAS_STATUS_INVALID_VALUE, "TRANSA/TRANSB: size %zu", size);
        int32_t op;
        memcpy(&op, buf, sizeof op);
        if (op != CUBLAS_OP_N && op != CUBLAS_OP_T)
            return lt_error(CALLER, CUBLAS_STATUS_NOT_SUPPORTED, "transpose operation %d", op);
        (attr == CUBLASLT_MATMUL_DESC_TRANSA ? d->ta : d->tb) = (cublasOperation_t)op;
        return CUBLAS_STATUS_SUCCESS;
    }
    return lt_error(CALLER, CUBLAS_STATUS_NOT_SUPPORTED, "matmul descriptor attribute %d is not emulated", (int)attr);
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *out, cudaDataType type, uint64_t rows, uint64_t cols,
                                          int64_t ld) {
    *out = NULL;
    if (!type_bytes(type)) return lt_error(CALLER, CUBLAS_STATUS_NOT_SUPPORTED, "layout type %d", (int)type);
    if (ld < (int64_t)(rows ? rows : 1))
        return lt_error(CALLER, CUBLAS_STATUS_INVALID_VALUE, "layout [%llu, %llu]: ld %lld < rows", (unsigned long long)rows,
                        (unsigned long long)cols, (long long)ld);
    Layout *l = (Layout *)calloc(1, sizeof(Layout));
    if (!l) return CUBLAS_STATUS_ALLOC_FAILED;
    l->magic = MAGIC_LAYOUT;
    l->type = type;
    l->rows = rows;
    l->cols = cols;
    l->ld = ld;
    *out = (cublasLtMatrixLayout_t)l;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) {
    free(l);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *out) {
    Pref *p = (Pref *)calloc(1, sizeof(Pref));
    if (!p) return CUBLAS_STATUS_ALLOC_FAILED;
    p->magic = MAGIC_PREF;
    for (int i = 0; i < 4; i++) p->align[i] = 256; // cuBLASLt assumes 256-byte alignment unless told
    *out = (cublasLtMatmulPreference_t)p;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) {
    free(p);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t size) {
    Pref *p = (Pref *)pref;
    if (!is(p, MAGIC_PREF)) return lt_error(CALLER, CUBLAS_STATUS_INVALID_VALUE, "not a preference");
    switch (attr) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES:
        if (size != sizeof(uint64_t)) return lt_error(CALLER, CUBLAS_STATUS_INVALID_VALUE, "workspace size: %zu bytes", size);
        memcpy(&p->workspace, buf, sizeof(uint64_t));
        return CUBLAS_STATUS_SUCCESS;
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES:
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: {
        if (size != sizeof(uint32_t)) return lt_error(CALLER, CUBLAS_STATUS_INVALID_VALUE, "alignment: %zu bytes", size);
        int i = attr == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES   ? 0
                : attr == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES ? 1
                : attr == CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES ? 2
                                                                     : 3;
        memcpy(&p->align[i], buf, sizeof(uint32_t));
        return CUBLAS_STATUS_SUCCESS;
    }
    default: return lt_error(CALLER, CUBLAS_STATUS_NOT_SUPPORTED, "preference attribute %d is not emulated", (int)attr);
    }
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t desc, cublasLtMatrixLayout_t A,
                                              cublasLtMatrixLayout_t B, cublasLtMatrixLayout_t C, cublasLtMatrixLayout_t D,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t *results, int *returned) {
    *returned = 0;
    const Desc *d = (const Desc *)desc;
    const Pref *p = (const Pref *)pref;
    if (!h || !is(d, MAGIC_DESC) || !is(A, MAGIC_LAYOUT) || !is(B, MAGIC_LAYOUT) || !is(C, MAGIC_LAYOUT) ||
        !is(D, MAGIC_LAYOUT) || !is(p, MAGIC_PREF) || requested < 1)
        return lt_error(CALLER, CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmulAlgoGetHeuristic: a bad handle or descriptor");
    uint64_t m, n, k;
    cublasStatus_t st = shapes(CALLER, d, (const Layout *)A, (const Layout *)B, (const Layout *)C, (const Layout *)D, &m, &n, &k);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    for (int i = 0; i < 4; i++)
        if (!p->align[i] || (p->align[i] & (p->align[i] - 1)))
            return lt_error(CALLER, CUBLAS_STATUS_INVALID_VALUE, "alignment %u is not a power of 2", p->align[i]);
    memset(results, 0, sizeof *results);
    Algo a;
    memset(&a, 0, sizeof a);
    a.magic = 0x414c474f;
    memcpy(a.align, p->align, sizeof a.align);
    a.workspace = 0;
    static_assert(sizeof(Algo) <= sizeof(cublasLtMatmulAlgo_t), "Algo fits");
    memcpy(&results->algo, &a, sizeof a);
    results->workspaceSize = 0;
    results->state = CUBLAS_STATUS_SUCCESS;
    results->wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t desc, const void *alpha, const void *Ap,
                              cublasLtMatrixLayout_t Adesc, const void *Bp, cublasLtMatrixLayout_t Bdesc, const void *beta,
                              const void *Cp, cublasLtMatrixLayout_t Cdesc, void *Dp, cublasLtMatrixLayout_t Ddesc,
                              const cublasLtMatmulAlgo_t *algo, void *workspace, size_t workspace_bytes, cudaStream_t stream) {
    const Desc *d = (const Desc *)desc;
    const Layout *A = (const Layout *)Adesc, *B = (const Layout *)Bdesc, *C = (const Layout *)Cdesc, *D = (const Layout *)Ddesc;
    if (!h || !is(d, MAGIC_DESC) || !is(A, MAGIC_LAYOUT) || !is(B, MAGIC_LAYOUT) || !is(C, MAGIC_LAYOUT) ||
        !is(D, MAGIC_LAYOUT))
        return lt_error(CALLER, CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmul: a bad handle or descriptor");
    if (stream != 0) return lt_error(CALLER, CUBLAS_STATUS_NOT_SUPPORTED, "cublasLtMatmul on a non-default stream");
    uint64_t m, n, k;
    cublasStatus_t st = shapes(CALLER, d, A, B, C, D, &m, &n, &k);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    Algo al;
    if (algo) {
        memcpy(&al, algo, sizeof al);
        if (al.magic != 0x414c474f) return lt_error(CALLER, CUBLAS_STATUS_INVALID_VALUE, "cublasLtMatmul: not an algorithm from the heuristic");
    } else {
        memset(&al, 0, sizeof al);
        for (int i = 0; i < 4; i++) al.align[i] = 256;
    }
    if (workspace_bytes && !device_range(workspace, workspace_bytes))
        return lt_error(CALLER, CUBLAS_STATUS_INVALID_VALUE, "the workspace [%p, +%zu) is not device memory", workspace,
                        workspace_bytes);
    const float a = *(const float *)alpha, b = *(const float *)beta;
    const void *ptrs[4] = {Ap, Bp, Cp, Dp};
    const Layout *lays[4] = {A, B, C, D};
    const char *names[4] = {"A", "B", "C", "D"};
    for (int i = 0; i < 4; i++) {
        if (i == 2 && b == 0.0f) continue; // C is not read
        if (ptr_align(ptrs[i]) < al.align[i])
            return lt_error(CALLER, CUBLAS_STATUS_INVALID_VALUE,
                            "%s = %p is %u-byte aligned, but the heuristic was promised %u (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_%s_BYTES): "
                            "on a GPU the chosen kernel may fault",
                            names[i], ptrs[i], ptr_align(ptrs[i]), al.align[i], names[i]);
        if (span(lays[i]) && !device_range(ptrs[i], span(lays[i])))
            return lt_error(CALLER, CUBLAS_STATUS_INVALID_VALUE,
                            "%s = %p [%llu x %llu, ld %lld, %s]: its %zu bytes are not inside one device allocation", names[i],
                            ptrs[i], (unsigned long long)lays[i]->rows, (unsigned long long)lays[i]->cols,
                            (long long)lays[i]->ld, type_name(lays[i]->type), span(lays[i]));
    }
    if (Cp == Dp && (C->ld != D->ld || C->type != D->type))
        return lt_error(CALLER, CUBLAS_STATUS_INVALID_VALUE, "C and D are the same memory with different layouts");
    // D[i, j] at D + j*ldd + i; op(A)[i, p]: A[p*lda + i] (N) or A[i*lda + p] (T); op(B)[p, j]: B[j*ldb + p] (N) or B[p*ldb + j] (T)
    const int64_t lda = A->ld, ldb = B->ld, ldc = C->ld, ldd = D->ld;
    // op(A) as rows of k and op(B)^T as rows of k, in f32 (a contiguous dot product per element of D)
    float *a_rows = (float *)malloc((size_t)(m * k + n * k + 1) * sizeof(float)), *b_rows = a_rows + m * k;
    if (!a_rows) return lt_error(CALLER, CUBLAS_STATUS_ALLOC_FAILED, "out of host memory");
    for (uint64_t i = 0; i < m; i++)
        for (uint64_t p = 0; p < k; p++)
            a_rows[i * k + p] = load(Ap, A->type, d->ta == CUBLAS_OP_N ? p * (size_t)lda + i : i * (size_t)lda + p);
    for (uint64_t j = 0; j < n; j++)
        for (uint64_t p = 0; p < k; p++)
            b_rows[j * k + p] = load(Bp, B->type, d->tb == CUBLAS_OP_N ? j * (size_t)ldb + p : p * (size_t)ldb + j);
    float *out = (float *)Dp;
    const float *cin = (const float *)Cp;
    for (uint64_t j = 0; j < n; j++)
        for (uint64_t i = 0; i < m; i++) {
            const float *x = a_rows + i * k, *y = b_rows + j * k;
            float acc = 0.0f;
            for (uint64_t p = 0; p < k; p++) acc += x[p] * y[p];
            float v = a * acc;
            if (b != 0.0f) v += b * cin[j * (size_t)ldc + i];
            out[j * (size_t)ldd + i] = v;
        }
    free(a_rows);
    return CUBLAS_STATUS_SUCCESS;
}

} // extern "C"
