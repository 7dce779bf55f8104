// Device scratch for the CUDA ops: per (device, slot) one cudaMalloc'd buffer
// that grows on demand and is kept for the process (never shrinks). Growth
// frees the old buffer (cudaFree waits for the kernels that may still read it)
// and takes at least 1.5x the old size, rounded to 1 MiB, so that a request
// growing by a few bytes per decode step does not reallocate every step.
// Not locked: one host thread per device drives the ops.
#include "common.cuh"

#define WS_MAX_DEVICES DEVICE_MAX_CUDA
#define WS_ROUND ((size_t)1 << 20)

typedef struct {
    void *ptr;
    size_t bytes;
} WorkspaceSlot;

static WorkspaceSlot g_slots[WS_MAX_DEVICES][CUDA_WORKSPACE_SLOTS];

extern "C" void *cuda_workspace(int slot, size_t bytes) {
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    if (slot < 0 || slot >= CUDA_WORKSPACE_SLOTS || dev < 0 || dev >= WS_MAX_DEVICES) {
        fprintf(stderr, "elastilm: cuda_workspace: slot %d on device %d out of range\n", slot, dev);
        abort();
    }
    WorkspaceSlot *w = &g_slots[dev][slot];
    if (bytes == 0) bytes = 1;
    if (w->ptr && bytes <= w->bytes) return w->ptr;
    size_t want = bytes > w->bytes + w->bytes / 2 ? bytes : w->bytes + w->bytes / 2;
    want = (want + WS_ROUND - 1) / WS_ROUND * WS_ROUND;
    if (w->ptr) CUDA_CHECK(cudaFree(w->ptr));
    w->ptr = NULL;
    w->bytes = 0;
    CUDA_CHECK(cudaMalloc(&w->ptr, want));
    w->bytes = want;
    return w->ptr;
}
