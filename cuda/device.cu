// The device layer over the CUDA runtime. Linked against cudart_static, so
// the binary starts on a machine without a driver; cudaGetDeviceCount then
// fails and device_count() reports 0.
extern "C" {
#include "../host/runtime/device.h"
}

#include <cuda_runtime.h>
#include <stdio.h>

static Status cuda_fail(cudaError_t err, const char *what) {
    return status_fail(ST_DEVICE, "%s: %s", what, cudaGetErrorString(err));
}

#define CUDA_TRY(call, what) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) return cuda_fail(e_, what); } while (0)

extern "C" bool device_cuda_built(void) { return true; }

extern "C" int device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); // the initialisation error may persist; nothing else calls CUDA when the count is 0
        return 0;
    }
    return n;
}

extern "C" Status device_describe(int index, char *buf, size_t n) {
    cudaDeviceProp prop;
    CUDA_TRY(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties");
    snprintf(buf, n, "%s, sm_%d%d, %.1f GiB", prop.name, prop.major, prop.minor,
             (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    return ST_OK;
}

extern "C" Status device_alloc_zeroed(Device dev, void **ptr, size_t bytes) {
    *ptr = NULL;
    CUDA_TRY(cudaSetDevice(dev.index), "cudaSetDevice");
    CUDA_TRY(cudaMalloc(ptr, bytes), "cudaMalloc");
    CUDA_TRY(cudaMemset(*ptr, 0, bytes), "cudaMemset");
    return ST_OK;
}

extern "C" void device_free(Device dev, void *ptr) {
    if (!ptr) return;
    cudaSetDevice(dev.index);
    cudaFree(ptr);
}

extern "C" Status device_copy_to(Device dev, void *dst, const void *src, size_t bytes) {
    CUDA_TRY(cudaSetDevice(dev.index), "cudaSetDevice");
    CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
    return ST_OK;
}

extern "C" Status device_copy_from(Device dev, void *dst, const void *src, size_t bytes) {
    CUDA_TRY(cudaSetDevice(dev.index), "cudaSetDevice");
    CUDA_TRY(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
    return ST_OK;
}

extern "C" Status device_copy_to_2d(Device dev, void *dst, size_t dst_pitch, const void *src, size_t src_pitch,
                                    size_t width, size_t rows) {
    if (width == 0 || rows == 0) return ST_OK;
    CUDA_TRY(cudaSetDevice(dev.index), "cudaSetDevice");
    CUDA_TRY(cudaMemcpy2D(dst, dst_pitch, src, src_pitch, width, rows, cudaMemcpyHostToDevice), "cudaMemcpy2D to device");
    return ST_OK;
}
