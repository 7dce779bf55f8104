// What the emulator's runtime files share (not seen by the emulated sources).
#ifndef CUEMU_INTERNAL_H
#define CUEMU_INTERNAL_H

#include <cuda_runtime.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

namespace cuemu {

// The emulated GPU (cudart.cc): sm_90-like, CUEMU_SMS multiprocessors (default 132).
enum {
    MAX_THREADS_PER_BLOCK = 1024,
    MAX_BLOCK_X = 1024,
    MAX_BLOCK_Y = 1024,
    MAX_BLOCK_Z = 64,
    MAX_GRID_YZ = 65535,
    SMEM_DEFAULT = 48 * 1024,       // static + dynamic without the opt-in
    SMEM_OPTIN = 227 * 1024,        // cudaDevAttrMaxSharedMemoryPerBlockOptin (H100)
    STATIC_SMEM_MAX = 48 * 1024,    // static __shared__ per block (a compile-time limit on a GPU)
};
int sm_count(void);
int device_count(void);

// The dynamic shared memory a kernel may use: 48 KiB, or what cudaFuncSetAttribute allowed.
size_t func_max_dynamic_smem(const void *fn);

// The calling host thread's last error (cudaGetLastError), set by launches and API calls.
void set_last_error(cudaError_t e);

// "file:line" of a code address (ASan's symbolizer when present), or "?".
void describe_pc(const void *pc, char *buf, size_t n);

// A failed library call, on stderr: "<caller's file:line>: cuemu: <lib><message> (<code>)";
// caller is the call's return address (__builtin_return_address(0) in the API function).
void report_call(const void *caller, const char *lib, const char *code, const char *fmt, va_list ap);

// The device allocation holding [p, p + bytes), or false (cudart.cc).
bool device_range(const void *p, size_t bytes);
// The live device allocation [*lo, *lo + *len) holding address a, or false; and a
// counter that cudaFree advances (so that cached ranges are dropped).
bool device_alloc_of(uintptr_t a, uintptr_t *lo, size_t *len);
uint64_t device_free_count(void);

// The schedule's name, for messages ("forward", "reverse", "random seed 7").
const char *schedule_name(void);

} // namespace cuemu

#endif
