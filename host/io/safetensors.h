// safetensors.h: read (memory-mapped) and write safetensors files.
//
// Format: u64 little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//  "__metadata__": {...}}, then the data; offsets are relative to the end of
// the header. safetensors_open validates every entry (dtype, shape, offsets in
// range, size consistent with shape, no overlaps) before anything uses it.
#ifndef ELASTILM_SAFETENSORS_H
#define ELASTILM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/mapped_file.h"
#include "runtime/tensor.h"

typedef struct {
    char *name;                      // owned
    DType dtype;                     // F32, F16, BF16 or I32
    int ndim;                        // 0..TENSOR_MAX_DIMS (0 = scalar)
    int64_t shape[TENSOR_MAX_DIMS];
    const uint8_t *data;             // into the mapped file
    size_t nbytes;
} SafeTensor;

typedef struct {
    MappedFile file;
    size_t n;                        // number of tensors
    SafeTensor *tensors;             // [n], sorted by name
} SafetensorsFile;

Status safetensors_open(SafetensorsFile *f, const char *path);
void safetensors_close(SafetensorsFile *f);
const SafeTensor *safetensors_find(const SafetensorsFile *f, const char *name);

// A CPU tensor viewing the mapped data (not owned). The data must stay mapped.
// Fails when the data is not aligned for its dtype (then copy it instead).
Status safetensors_view(const SafetensorsFile *f, const SafeTensor *t, Tensor *out);

// Writes tensors (CPU, contiguous or strided) to path atomically. names[i]
// labels tensors[i]; dtypes are kept.
Status safetensors_write(const char *path, const char *const *names, const Tensor *tensors, size_t n);

#endif
