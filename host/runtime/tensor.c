#include "tensor.h"
#include <assert.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "half.h"
#include "q8.h"

size_t dtype_size(DType dt) {
    switch (dt) {
    case DT_F32: return 4;
    case DT_F16: return 2;
    case DT_BF16: return 2;
    case DT_I32: return 4;
    case DT_Q8_0: return 0;
    }
    return 0;
}

int dtype_block(DType dt) { return dt == DT_Q8_0 ? Q8_BLOCK : 1; }

size_t dtype_bytes(DType dt, int64_t n) {
    if (dt == DT_Q8_0) return (size_t)q8_blocks(n) * sizeof(Q8Block);
    return (size_t)n * dtype_size(dt);
}

const char *dtype_name(DType dt) {
    switch (dt) {
    case DT_F32: return "f32";
    case DT_F16: return "f16";
    case DT_BF16: return "bf16";
    case DT_I32: return "i32";
    case DT_Q8_0: return "q8_0";
    }
    return "?";
}

const char *device_name(Device dev, char *buf, size_t n) {
    if (dev.kind == DEV_CPU) snprintf(buf, n, "cpu");
    else snprintf(buf, n, "cuda:%d", dev.index);
    return buf;
}

int64_t tensor_numel(const Tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

bool tensor_is_contiguous(const Tensor *t) {
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != expect) return false;
        expect *= t->shape[i];
    }
    return true;
}

static void set_contiguous_strides(Tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->stride[i] = s;
        s *= t->shape[i];
    }
}

Tensor tensor_wrap(void *data, DType dt, Device dev, int ndim, const int64_t *shape) {
    Tensor t = {.data = data, .dtype = dt, .dev = dev, .ndim = ndim, .owns = false};
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    set_contiguous_strides(&t);
    return t;
}

Status tensor_alloc(Tensor *t, DType dt, Device dev, int ndim, const int64_t *shape) {
    *t = tensor_wrap(NULL, dt, dev, ndim, shape);
    size_t bytes = (size_t)tensor_numel(t) * dtype_size(dt);
    if (dt == DT_Q8_0) {
        if (ndim != 2) return status_fail(ST_UNSUPPORTED, "q8_0 tensors are 2-d");
        t->stride[0] = q8_blocks(shape[1]) * Q8_BLOCK;
        bytes = (size_t)shape[0] * dtype_bytes(dt, t->stride[0]);
    }
    if (bytes == 0) bytes = 1;
    if (dev.kind == DEV_CPU) {
        t->data = calloc(1, bytes);
        if (!t->data) return status_fail(ST_OOM, "cannot allocate %zu bytes", bytes);
    } else {
        TRY(device_alloc_zeroed(dev, &t->data, bytes));
    }
    t->owns = true;
    return ST_OK;
}

Status tensor_alloc_2d(Tensor *t, DType dt, Device dev, int64_t rows, int64_t cols) {
    int64_t shape[2] = {rows, cols};
    return tensor_alloc(t, dt, dev, 2, shape);
}

Status tensor_alloc_1d(Tensor *t, DType dt, Device dev, int64_t n) {
    return tensor_alloc(t, dt, dev, 1, &n);
}

void tensor_free(Tensor *t) {
    if (t->owns && t->data) {
        if (t->dev.kind == DEV_CPU) free(t->data);
        else device_free(t->dev, t->data);
    }
    memset(t, 0, sizeof *t);
}

Tensor tensor_rows(const Tensor *t, int64_t first, int64_t count) {
    Tensor v = *t;
    v.owns = false;
    v.data = (char *)t->data + dtype_bytes(t->dtype, first * t->stride[0]);
    v.shape[0] = count;
    return v;
}

Tensor tensor_cols(const Tensor *t, int64_t first, int64_t count) {
    Tensor v = *t;
    v.owns = false;
    int last = t->ndim - 1;
    assert(first % dtype_block(t->dtype) == 0); // a q8_0 view starts at a block
    v.data = (char *)t->data + dtype_bytes(t->dtype, first * t->stride[last]);
    v.shape[last] = count;
    return v;
}

Tensor tensor_reshape(const Tensor *t, int ndim, const int64_t *shape) {
    return tensor_wrap(t->data, t->dtype, t->dev, ndim, shape);
}

static float load_as_f32(const void *base, DType dt, int64_t i) {
    switch (dt) {
    case DT_F32: return ((const float *)base)[i];
    case DT_F16: return f16_to_f32(((const uint16_t *)base)[i]);
    case DT_BF16: return bf16_to_f32(((const uint16_t *)base)[i]);
    case DT_I32: return (float)((const int32_t *)base)[i];
    case DT_Q8_0: break; // row-wise only (convert_rows)
    }
    return 0.0f;
}

static void store_from_f32(void *base, DType dt, int64_t i, float x) {
    switch (dt) {
    case DT_F32: ((float *)base)[i] = x; break;
    case DT_F16: ((uint16_t *)base)[i] = f32_to_f16(x); break;
    case DT_BF16: ((uint16_t *)base)[i] = f32_to_bf16(x); break;
    case DT_I32: ((int32_t *)base)[i] = (int32_t)x; break;
    case DT_Q8_0: break; // row-wise only (convert_rows)
    }
}

void tensor_zero(Tensor *t) {
    assert(t->dev.kind == DEV_CPU && (t->ndim == 1 || t->ndim == 2) && t->dtype != DT_Q8_0);
    size_t es = dtype_size(t->dtype);
    if (t->ndim == 1 || tensor_is_contiguous(t)) {
        memset(t->data, 0, (size_t)tensor_numel(t) * es);
        return;
    }
    for (int64_t r = 0; r < t->shape[0]; r++)
        memset((char *)t->data + (size_t)(r * t->stride[0]) * es, 0, (size_t)t->shape[1] * es);
}

// Row r of a 2-d tensor (f16, bf16 or q8_0) as the floats out[0, cols).
static void row_to_f32(float *out, const Tensor *t, int64_t r) {
    const char *row = (const char *)t->data + dtype_bytes(t->dtype, r * t->stride[0]);
    if (t->dtype == DT_Q8_0) q8_dequantize_row(out, (const Q8Block *)row, t->shape[1]);
    else for (int64_t j = 0; j < t->shape[1]; j++) out[j] = load_as_f32(row, t->dtype, j);
}

// 2-d copies into or out of q8_0, and f32 -> bf16 (converting model weights):
// row by row, rows split across OpenMP threads.
static Status convert_rows(Tensor *dst, const Tensor *src) {
    int64_t rows = src->shape[0], cols = src->shape[1];
    bool ok = true, oom = false;
#pragma omp parallel if (rows * cols > (1 << 16))
    {
        float *tmp = malloc((size_t)(cols > 0 ? cols : 1) * sizeof *tmp);
        if (!tmp) oom = true;
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            if (!tmp) continue;
            const float *in = tmp;
            if (src->dtype == DT_F32) in = (const float *)src->data + r * src->stride[0];
            else row_to_f32(tmp, src, r);
            char *out = (char *)dst->data + dtype_bytes(dst->dtype, r * dst->stride[0]);
            if (dst->dtype == DT_Q8_0) {
                if (!q8_quantize_row((Q8Block *)out, in, cols)) ok = false;
            } else if (dst->dtype == DT_BF16) {
                for (int64_t j = 0; j < cols; j++) ((uint16_t *)out)[j] = f32_to_bf16(in[j]);
            } else {
                for (int64_t j = 0; j < cols; j++) store_from_f32(out, dst->dtype, j, in[j]);
            }
        }
        free(tmp);
    }
    if (oom) return status_fail(ST_OOM, "tensor_copy_convert: out of memory");
    if (!ok)
        return status_fail(ST_UNSUPPORTED, "q8_0: a value is not finite or beyond 127 x 65504 (no f16 block scale)");
    return ST_OK;
}

Status tensor_copy_convert(Tensor *dst, const Tensor *src) {
    if (dst->dev.kind != DEV_CPU || src->dev.kind != DEV_CPU)
        return status_fail(ST_UNSUPPORTED, "tensor_copy_convert: CPU tensors only");
    if (dst->ndim != src->ndim) return status_fail(ST_FORMAT, "tensor_copy_convert: rank mismatch");
    for (int i = 0; i < src->ndim; i++)
        if (dst->shape[i] != src->shape[i]) return status_fail(ST_FORMAT, "tensor_copy_convert: shape mismatch");
    bool q8 = dst->dtype == DT_Q8_0 || src->dtype == DT_Q8_0;
    if (q8 && (src->ndim != 2 || dst->dtype == DT_I32 || src->dtype == DT_I32))
        return status_fail(ST_UNSUPPORTED, "tensor_copy_convert: q8_0 converts to and from 2-d float tensors only");
    if (q8 || (src->ndim == 2 && src->dtype == DT_F32 && dst->dtype == DT_BF16)) return convert_rows(dst, src);
    // Walk the index space in row-major order with arbitrary strides.
    int64_t n = tensor_numel(src), idx[TENSOR_MAX_DIMS] = {0};
    size_t esize = dtype_size(src->dtype);
    for (int64_t k = 0; k < n; k++) {
        int64_t so = 0, doff = 0;
        for (int d = 0; d < src->ndim; d++) {
            so += idx[d] * src->stride[d];
            doff += idx[d] * dst->stride[d];
        }
        if (dst->dtype == src->dtype) // exact, also for integers beyond 2^24
            memcpy((char *)dst->data + doff * esize, (const char *)src->data + so * esize, esize);
        else
            store_from_f32(dst->data, dst->dtype, doff, load_as_f32(src->data, src->dtype, so));
        for (int d = src->ndim - 1; d >= 0; d--) {
            if (++idx[d] < src->shape[d]) break;
            idx[d] = 0;
        }
    }
    return ST_OK;
}

Status tensor_copy_to_device(Tensor *dst, const Tensor *src, Device dev, DType dt) {
    Tensor host;
    TRY(tensor_alloc(&host, dt, (Device){DEV_CPU, 0}, src->ndim, src->shape));
    Status st = tensor_copy_convert(&host, src);
    if (st == ST_OK) st = tensor_alloc(dst, dt, dev, src->ndim, src->shape);
    if (st == ST_OK) st = device_copy_to(dev, dst->data, host.data, (size_t)tensor_numel(&host) * dtype_size(dt));
    tensor_free(&host);
    return st;
}

Status tensors_to_device(Tensor **ts, const bool *is_matrix, int n, Device dev, DType weight_dtype) {
    for (int i = 0; i < n; i++) {
        Tensor on_dev;
        TRY(tensor_copy_to_device(&on_dev, ts[i], dev, is_matrix[i] ? weight_dtype : DT_F32));
        tensor_free(ts[i]);
        *ts[i] = on_dev;
    }
    return ST_OK;
}
