// The subset of the CUDA runtime API the project uses, on the CPU, behind NVIDIA's
// own cuda_runtime_api.h (the same symbols as libcudart, so host code links
// unchanged): devices and their attributes (an emulated sm_90, CUEMU_DEVICES of
// them, CUEMU_SMS multiprocessors each), allocation, copies and memsets, the
// error state, function attributes, and streams/events as ordering no-ops (every
// launch and copy is synchronous).
//
// Device memory is host memory from posix_memalign (256-byte aligned, as cudaMalloc),
// filled with 0xff bytes (NaN) at allocation so that a read of memory nothing has
// written shows; every copy and memset checks that its device side lies inside one
// live allocation and names the caller (file:line) when it does not.
#include "internal.h"

#include <cuda_runtime.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <atomic>
#include <map>

namespace cuemu {

static int env_int(const char *name, int def, int lo, int hi) {
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < lo || x > hi) {
        fprintf(stderr, "cuemu: %s=%s: expected a number in %d ... %d\n", name, v, lo, hi);
        exit(2);
    }
    return (int)x;
}

int device_count(void) { return env_int("CUEMU_DEVICES", 1, 0, 16); }
int sm_count(void) { return env_int("CUEMU_SMS", 132, 1, 1024); }

static thread_local cudaError_t tl_last = cudaSuccess;
static thread_local int tl_device = 0;

void set_last_error(cudaError_t e) { tl_last = e; }

// ---- allocations ---------------------------------------------------------------------------------

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static std::map<uintptr_t, size_t> g_allocs; // base -> bytes


static std::atomic<uint64_t> g_frees{0};

bool device_alloc_of(uintptr_t a, uintptr_t *lo, size_t *len) {
    pthread_mutex_lock(&g_mu);
    auto it = g_allocs.upper_bound(a);
    bool ok = false;
    if (it != g_allocs.begin()) {
        --it;
        if (a >= it->first && a < it->first + (it->second ? it->second : 1)) {
            *lo = it->first;
            *len = it->second ? it->second : 1;
            ok = true;
        }
    }
    pthread_mutex_unlock(&g_mu);
    return ok;
}

uint64_t device_free_count(void) { return g_frees.load(std::memory_order_relaxed); }

bool device_range(const void *p, size_t bytes) {
    uintptr_t a = (uintptr_t)p, lo;
    size_t len;
    return a + bytes >= a && device_alloc_of(a, &lo, &len) && a + bytes <= lo + len;
}

static std::map<const void *, size_t> g_func_smem;

size_t func_max_dynamic_smem(const void *fn) {
    pthread_mutex_lock(&g_mu);
    auto it = g_func_smem.find(fn);
    size_t v = it == g_func_smem.end() ? (size_t)SMEM_DEFAULT : it->second;
    pthread_mutex_unlock(&g_mu);
    return v;
}

} // namespace cuemu

using namespace cuemu;

namespace cuemu {
void report_call(const void *caller, const char *lib, const char *code, const char *fmt, va_list ap) {
    char where[256], msg[512];
    describe_pc((const char *)caller - 1, where, sizeof where);
    vsnprintf(msg, sizeof msg, fmt, ap);
    fprintf(stderr, "%s: cuemu: %s%s (%s)\n", where, lib, msg, code);
}
} // namespace cuemu

// An API error: the caller's location, what is wrong, the error code (also the last error).
static cudaError_t api_error(const void *caller, cudaError_t e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static cudaError_t api_error(const void *caller, cudaError_t e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    report_call(caller, "", cudaGetErrorName(e), fmt, ap);
    va_end(ap);
    set_last_error(e);
    return e;
}
#define CALLER __builtin_return_address(0)

extern "C" {

// ---- errors --------------------------------------------------------------------------------------

cudaError_t cudaGetLastError(void) {
    cudaError_t e = tl_last;
    tl_last = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) { return tl_last; }

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidDevicePointer: return "cudaErrorInvalidDevicePointer";
    case cudaErrorInvalidMemcpyDirection: return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    default: return "cudaErrorUnknown";
    }
}

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidDevicePointer: return "invalid device pointer";
    case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
    case cudaErrorNotSupported: return "operation not supported";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    default: return "unknown error";
    }
}

// ---- devices -------------------------------------------------------------------------------------

cudaError_t cudaGetDeviceCount(int *n) {
    *n = device_count();
    if (*n == 0) {
        set_last_error(cudaErrorNoDevice);
        return cudaErrorNoDevice;
    }
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int d) {
    if (d < 0 || d >= device_count()) return api_error(CALLER, cudaErrorInvalidDevice, "cudaSetDevice(%d): no such device", d);
    tl_device = d;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *d) {
    *d = tl_device;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
cudaError_t cudaDeviceReset(void) { return cudaSuccess; }

static int attribute(cudaDeviceAttr a, bool *known) {
    *known = true;
    switch (a) {
    case cudaDevAttrMultiProcessorCount: return sm_count();
    case cudaDevAttrComputeCapabilityMajor: return 9;
    case cudaDevAttrComputeCapabilityMinor: return 0;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: return SMEM_OPTIN;
    case cudaDevAttrMaxSharedMemoryPerBlock: return SMEM_DEFAULT;
    case cudaDevAttrMaxThreadsPerBlock: return MAX_THREADS_PER_BLOCK;
    case cudaDevAttrWarpSize: return 32;
    case cudaDevAttrMaxBlockDimX: return MAX_BLOCK_X;
    case cudaDevAttrMaxBlockDimY: return MAX_BLOCK_Y;
    case cudaDevAttrMaxBlockDimZ: return MAX_BLOCK_Z;
    case cudaDevAttrMaxGridDimX: return 0x7fffffff;
    case cudaDevAttrMaxGridDimY: return MAX_GRID_YZ;
    case cudaDevAttrMaxGridDimZ: return MAX_GRID_YZ;
    case cudaDevAttrMaxThreadsPerMultiProcessor: return 2048;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: return 228 * 1024;
    case cudaDevAttrL2CacheSize: return 50 << 20;
    default: *known = false; return 0;
    }
}

cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device) {
    if (device < 0 || device >= device_count())
        return api_error(CALLER, cudaErrorInvalidDevice, "cudaDeviceGetAttribute: no device %d", device);
    bool known;
    *value = attribute(attr, &known);
    if (!known)
        return api_error(CALLER, cudaErrorNotSupported, "cudaDeviceGetAttribute: attribute %d is not emulated", (int)attr);
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int device) {
    if (device < 0 || device >= device_count())
        return api_error(CALLER, cudaErrorInvalidDevice, "cudaGetDeviceProperties: no device %d", device);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "cuemu (CUDA on the CPU, sm_90-like)");
    p->totalGlobalMem = (size_t)80 << 30;
    p->sharedMemPerBlock = SMEM_DEFAULT;
    p->sharedMemPerBlockOptin = SMEM_OPTIN;
    p->sharedMemPerMultiprocessor = 228 * 1024;
    p->regsPerBlock = 65536;
    p->warpSize = 32;
    p->maxThreadsPerBlock = MAX_THREADS_PER_BLOCK;
    p->maxThreadsDim[0] = MAX_BLOCK_X, p->maxThreadsDim[1] = MAX_BLOCK_Y, p->maxThreadsDim[2] = MAX_BLOCK_Z;
    p->maxGridSize[0] = 0x7fffffff, p->maxGridSize[1] = MAX_GRID_YZ, p->maxGridSize[2] = MAX_GRID_YZ;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = sm_count();
    p->maxThreadsPerMultiProcessor = 2048;
    p->l2CacheSize = 50 << 20;
    p->unifiedAddressing = 1;
    return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void *func, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize)
        return api_error(CALLER, cudaErrorNotSupported, "cudaFuncSetAttribute: attribute %d is not emulated", (int)attr);
    if (value < 0 || value > SMEM_OPTIN)
        return api_error(CALLER, cudaErrorInvalidValue,
                         "cudaFuncSetAttribute(MaxDynamicSharedMemorySize, %d): past the device's opt-in limit %d", value,
                         (int)SMEM_OPTIN);
    pthread_mutex_lock(&g_mu);
    g_func_smem[func] = (size_t)value > (size_t)SMEM_DEFAULT ? (size_t)value : (size_t)SMEM_DEFAULT;
    pthread_mutex_unlock(&g_mu);
    return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t *free_b, size_t *total) {
    *free_b = (size_t)64 << 30;
    *total = (size_t)80 << 30;
    return cudaSuccess;
}

// ---- memory ------------------------------------------------------------------------------------------

cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = NULL;
    void *m = NULL;
    if (posix_memalign(&m, 256, bytes ? bytes : 1) != 0)
        return api_error(CALLER, cudaErrorMemoryAllocation, "cudaMalloc(%zu): out of host memory", bytes);
    memset(m, 0xff, bytes); // NaN: a read of what nothing wrote shows
    pthread_mutex_lock(&g_mu);
    g_allocs[(uintptr_t)m] = bytes;
    pthread_mutex_unlock(&g_mu);
    *p = m;
    return cudaSuccess;
}

cudaError_t cudaFree(void *p) {
    if (!p) return cudaSuccess;
    pthread_mutex_lock(&g_mu);
    auto it = g_allocs.find((uintptr_t)p);
    bool ok = it != g_allocs.end();
    if (ok) g_allocs.erase(it);
    g_frees++;
    pthread_mutex_unlock(&g_mu);
    if (!ok) return api_error(CALLER, cudaErrorInvalidDevicePointer, "cudaFree(%p): not a cudaMalloc'd pointer", p);
    free(p);
    return cudaSuccess;
}

// The device side(s) of a copy, by its kind; a cudaMemcpyDefault copy needs nothing more.
static cudaError_t check_copy(const void *caller, const char *fn, void *dst, const void *src, size_t span_dst,
                              size_t span_src, cudaMemcpyKind kind) {
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind != cudaMemcpyHostToDevice && kind != cudaMemcpyDeviceToHost && kind != cudaMemcpyDeviceToDevice &&
        kind != cudaMemcpyHostToHost && kind != cudaMemcpyDefault)
        return api_error(caller, cudaErrorInvalidMemcpyDirection, "%s: copy kind %d", fn, (int)kind);
    if (dst_dev && span_dst && !device_range(dst, span_dst))
        return api_error(caller, cudaErrorInvalidValue, "%s: the destination [%p, +%zu bytes) is not inside one device allocation",
                         fn, dst, span_dst);
    if (src_dev && span_src && !device_range(src, span_src))
        return api_error(caller, cudaErrorInvalidValue, "%s: the source [%p, +%zu bytes) is not inside one device allocation",
                         fn, src, span_src);
    if (kind == cudaMemcpyHostToDevice && span_src && device_range(src, 1))
        return api_error(caller, cudaErrorInvalidValue, "%s: host-to-device copy from device memory %p", fn, src);
    if (kind == cudaMemcpyDeviceToHost && span_dst && device_range(dst, 1))
        return api_error(caller, cudaErrorInvalidValue, "%s: device-to-host copy into device memory %p", fn, dst);
    return cudaSuccess;
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    cudaError_t e = check_copy(CALLER, "cudaMemcpy", dst, src, bytes, bytes, kind);
    if (e != cudaSuccess) return e;
    if (bytes) memmove(dst, src, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t) {
    cudaError_t e = check_copy(CALLER, "cudaMemcpyAsync", dst, src, bytes, bytes, kind);
    if (e != cudaSuccess) return e;
    if (bytes) memmove(dst, src, bytes);
    return cudaSuccess;
}

static size_t span2d(size_t pitch, size_t width, size_t height) { return height ? (height - 1) * pitch + width : 0; }

cudaError_t cudaMemcpy2D(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height,
                         cudaMemcpyKind kind) {
    if (width > dpitch || width > spitch)
        return api_error(CALLER, cudaErrorInvalidValue, "cudaMemcpy2D: width %zu is larger than a pitch (%zu, %zu)", width,
                         dpitch, spitch);
    if (!width || !height) return cudaSuccess;
    cudaError_t e = check_copy(CALLER, "cudaMemcpy2D", dst, src, span2d(dpitch, width, height), span2d(spitch, width, height),
                               kind);
    if (e != cudaSuccess) return e;
    for (size_t r = 0; r < height; r++) memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    return cudaSuccess;
}

static cudaError_t memset2d(const void *caller, const char *fn, void *p, size_t pitch, int value, size_t width,
                            size_t height) {
    if (width > pitch) return api_error(caller, cudaErrorInvalidValue, "%s: width %zu > pitch %zu", fn, width, pitch);
    if (!width || !height) return cudaSuccess;
    if (!device_range(p, span2d(pitch, width, height)))
        return api_error(caller, cudaErrorInvalidValue, "%s: [%p, +%zu bytes) is not inside one device allocation", fn, p,
                         span2d(pitch, width, height));
    for (size_t r = 0; r < height; r++) memset((char *)p + r * pitch, value, width);
    return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int value, size_t bytes) { return memset2d(CALLER, "cudaMemset", p, bytes, value, bytes, 1); }
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t) {
    return memset2d(CALLER, "cudaMemsetAsync", p, bytes, value, bytes, 1);
}
cudaError_t cudaMemset2D(void *p, size_t pitch, int value, size_t width, size_t height) {
    return memset2d(CALLER, "cudaMemset2D", p, pitch, value, width, height);
}
cudaError_t cudaMemset2DAsync(void *p, size_t pitch, int value, size_t width, size_t height, cudaStream_t) {
    return memset2d(CALLER, "cudaMemset2DAsync", p, pitch, value, width, height);
}

// ---- streams and events: every operation is synchronous ------------------------------------------------

struct CuemuEvent {
    double t;
};

cudaError_t cudaStreamCreate(cudaStream_t *s) {
    *s = NULL;
    return api_error(CALLER, cudaErrorNotSupported, "cudaStreamCreate: streams other than the default are not emulated");
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

cudaError_t cudaEventCreate(cudaEvent_t *e) {
    *e = (cudaEvent_t)calloc(1, sizeof(CuemuEvent));
    return *e ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    free(e);
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ((CuemuEvent *)e)->t = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    *ms = (float)(1e3 * (((CuemuEvent *)b)->t - ((CuemuEvent *)a)->t));
    return cudaSuccess;
}

} // extern "C"
