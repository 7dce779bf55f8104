// The CUDA-on-CPU emulator's cost per thread step (tests/cuemu): kernels that do
// nothing but synchronise, so that the time is the emulator's (the collective's
// bookkeeping, the schedule's pick and the fiber switch). Built and run by
// experiments/bench/bench_cuemu.sh with each context switch (assembly, ucontext) and
// with the sanitizers CI uses; prints "<kernel> <ns per thread step>" per line.
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

__global__ void k_syncwarp(float *out, int iters) {
    for (int i = 0; i < iters; i++) __syncwarp();
    out[blockIdx.x * blockDim.x + threadIdx.x] = 1.0f;
}

__global__ void k_shfl(float *out, int iters) {
    float v = (float)threadIdx.x;
    for (int i = 0; i < iters; i++) v = __shfl_xor_sync(0xffffffffu, v, 1);
    out[blockIdx.x * blockDim.x + threadIdx.x] = v;
}

__global__ void k_syncthreads(float *out, int iters) {
    for (int i = 0; i < iters; i++) __syncthreads();
    out[blockIdx.x * blockDim.x + threadIdx.x] = 1.0f;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    const int blocks = 16, threads = 256, iters = argc > 1 ? atoi(argv[1]) : 1000;
    float *o = NULL;
    if (cudaMalloc((void **)&o, (size_t)blocks * threads * sizeof(float)) != cudaSuccess) return 1;
    const double steps = (double)blocks * threads * iters;
    double t = now();
    k_syncwarp<<<blocks, threads>>>(o, iters);
    printf("syncwarp %.1f\n", 1e9 * (now() - t) / steps);
    t = now();
    k_shfl<<<blocks, threads>>>(o, iters);
    printf("shfl_xor %.1f\n", 1e9 * (now() - t) / steps);
    t = now();
    k_syncthreads<<<blocks, threads>>>(o, iters);
    printf("syncthreads %.1f\n", 1e9 * (now() - t) / steps);
    cudaFree(o);
    return 0;
}
