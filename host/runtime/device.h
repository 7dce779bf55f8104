// device.h: the accelerator as the host sees it.
//
// With CUDA built in (cuda/device.cu) these talk to the CUDA runtime; without
// it (host/runtime/device_none.c) device_count() is 0 and the rest fail with a
// clear message. The binary starts and runs on the CPU either way: a machine
// with no GPU or no driver simply reports zero devices.
#ifndef ELASTILM_DEVICE_H
#define ELASTILM_DEVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "status.h"
#include "tensor.h"

// The most CUDA devices a process drives (the CUDA ops keep per-device state up to it).
#define DEVICE_MAX_CUDA 64

bool device_cuda_built(void); // true when the CUDA objects are linked in
int device_count(void);       // usable CUDA devices; 0 without a GPU or driver
// A one-line description of device `index` ("NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB").
Status device_describe(int index, char *buf, size_t n);
// The CPU's model name from /proc/cpuinfo ("AMD EPYC 7B13"), or "?".
void cpu_describe(char *buf, size_t n);

Status device_alloc_zeroed(Device dev, void **ptr, size_t bytes);
void device_free(Device dev, void *ptr);
Status device_copy_to(Device dev, void *dst, const void *host_src, size_t bytes);
Status device_copy_from(Device dev, void *host_dst, const void *src, size_t bytes);
// rows host rows of width bytes each, src_pitch bytes apart, to dst_pitch bytes
// apart on the device: one transfer for a strided set of rows.
Status device_copy_to_2d(Device dev, void *dst, size_t dst_pitch, const void *host_src, size_t src_pitch,
                         size_t width, size_t rows);

// Parses "cpu", "cuda" or "cuda:N" (N < device_count()). "auto" picks cuda:0
// when a GPU is usable, else the CPU.
Status device_parse(const char *spec, Device *out);

#endif
