// tensor.h: a strided n-d array on a device.
//
// A Tensor does not always own its memory: views (a prefix of rows or of
// columns, a slice) share the parent's data and keep its strides, which is how
// an elastic sub-model runs on a prefix of the full weights without copying.
// Strides are in elements; the innermost dimension is always contiguous
// (stride 1) for tensors the ops accept.
//
// DT_Q8_0 (8-bit blocks, runtime/q8.h) is a 2-d weight format on the CPU:
// shape [rows, cols] counts values; a row holds q8_blocks(cols) blocks of 32
// (34 bytes each), and stride[0] counts values too, a multiple of 32 (32 x the
// parent's blocks per row), so row r starts at byte r * stride[0] / 32 * 34.
// Views take rows (tensor_rows) or a column prefix (tensor_cols from 0, or
// from a multiple of 32); a prefix that ends inside a block keeps that block
// and its scale, and readers ignore the values past the prefix.
#ifndef ELASTILM_TENSOR_H
#define ELASTILM_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define TENSOR_MAX_DIMS 4

typedef enum { DT_F32 = 0, DT_F16, DT_BF16, DT_I32, DT_Q8_0 } DType;

typedef enum { DEV_CPU = 0, DEV_CUDA } DeviceKind;

typedef struct {
    DeviceKind kind;
    int index; // CUDA device ordinal; 0 for the CPU
} Device;

typedef struct {
    void *data;                        // first element (device memory for DEV_CUDA)
    DType dtype;
    Device dev;
    int ndim;                          // 1..TENSOR_MAX_DIMS
    int64_t shape[TENSOR_MAX_DIMS];    // outermost first, as in PyTorch
    int64_t stride[TENSOR_MAX_DIMS];   // elements between neighbours along each dim
    bool owns;                         // true when tensor_free must release data
} Tensor;

size_t dtype_size(DType dt);  // bytes per element; 0 for DT_Q8_0 (a block format: dtype_bytes)
int dtype_block(DType dt);     // elements per storage block: 32 for DT_Q8_0, else 1
// Bytes of n consecutive elements of a row, n rounded up to whole blocks.
size_t dtype_bytes(DType dt, int64_t n);
const char *dtype_name(DType dt);
const char *device_name(Device dev, char *buf, size_t n); // "cpu", "cuda:0"

int64_t tensor_numel(const Tensor *t);
bool tensor_is_contiguous(const Tensor *t);

// Allocates a zeroed, contiguous tensor. shape has ndim entries. A DT_Q8_0
// tensor must be 2-d; its rows are padded to whole blocks (stride[0]).
Status tensor_alloc(Tensor *t, DType dt, Device dev, int ndim, const int64_t *shape);
Status tensor_alloc_2d(Tensor *t, DType dt, Device dev, int64_t rows, int64_t cols);
Status tensor_alloc_1d(Tensor *t, DType dt, Device dev, int64_t n);
void tensor_free(Tensor *t);

// Wraps existing memory (not owned) as a contiguous tensor.
Tensor tensor_wrap(void *data, DType dt, Device dev, int ndim, const int64_t *shape);

// Views sharing the parent's memory. For a 2-d tensor [R, C]:
Tensor tensor_rows(const Tensor *t, int64_t first, int64_t count); // rows [first, first+count)
Tensor tensor_cols(const Tensor *t, int64_t first, int64_t count); // cols [first, first+count)
// The same memory seen with another contiguous shape (t must be contiguous).
Tensor tensor_reshape(const Tensor *t, int ndim, const int64_t *shape);

// Row stride of a 2-d tensor (elements between the starts of two rows).
static inline int64_t tensor_ld(const Tensor *t) { return t->stride[0]; }

// Pointer to row r of a 2-d f32 CPU tensor.
static inline float *tensor_row_f32(const Tensor *t, int64_t r) {
    return (float *)t->data + r * t->stride[0];
}

// Sets every element of a CPU tensor (1-d, or 2-d with any row stride) to zero.
void tensor_zero(Tensor *t);

// Copies src into dst (same shape; any dtypes among f32/f16/bf16, and q8_0
// for 2-d tensors; CPU only here, device copies go through the backend).
// Quantising to q8_0 fails (ST_UNSUPPORTED) on a value no f16 scale covers.
Status tensor_copy_convert(Tensor *dst, const Tensor *src);
// A new tensor *dst on dev in dtype dt holding src (a CPU tensor of any float dtype), converted on the host.
Status tensor_copy_to_device(Tensor *dst, const Tensor *src, Device dev, DType dt);
// Replaces each of the n CPU tensors *ts[i] by its copy on dev: in weight_dtype where is_matrix[i], else in f32
// (a model's move: matrices 16-bit, norms and biases f32). On failure the first ones may already have moved.
Status tensors_to_device(Tensor **ts, const bool *is_matrix, int n, Device dev, DType weight_dtype);

#endif
