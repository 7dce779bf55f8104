// The decoder forwards' shared input checks, cache stores, index uploads and logits buffers.
#include "decoder_io.h"

#include <stdlib.h>

#include "ops/ops.h"
#include "runtime/device.h"

Status decoder_session_check(Device dev, Device model_dev, int n_seq, int cap, const char *to_device) {
    if (!ops_backend_available(dev.kind))
        return status_fail(ST_UNSUPPORTED, "no usable CUDA device or no CUDA backend in this build; use the CPU");
    if (dev.kind != model_dev.kind || dev.index != model_dev.index)
        return status_fail(ST_USAGE, "a session on %s needs the model's weights there (%s)",
                           dev.kind == DEV_CPU ? "the CPU" : "a CUDA device", to_device);
    if (n_seq <= 0 || cap <= 0) return status_fail(ST_USAGE, "a session needs at least one sequence and one position");
    return ST_OK;
}

Status decoder_cache_alloc(const DecoderCache *c, int n_layers, int n_seq, int cap, int64_t width, Device dev) {
    *c->k = calloc((size_t)n_layers, sizeof **c->k);
    *c->v = calloc((size_t)n_layers, sizeof **c->v);
    *c->mask = calloc((size_t)n_seq * (size_t)cap, sizeof **c->mask);
    *c->pos = calloc((size_t)n_seq * (size_t)cap, sizeof **c->pos);
    if (!*c->k || !*c->v || !*c->mask || !*c->pos) return status_fail(ST_OOM, "out of memory for the KV cache");
    for (int l = 0; l < n_layers; l++) {
        TRY(tensor_alloc_2d(&(*c->k)[l], DT_F32, dev, (int64_t)n_seq * cap, width));
        TRY(tensor_alloc_2d(&(*c->v)[l], DT_F32, dev, (int64_t)n_seq * cap, width));
    }
    if (dev.kind != DEV_CPU) {
        TRY(tensor_alloc_1d(c->mask_dev, DT_I32, dev, (int64_t)n_seq * cap));
        TRY(tensor_alloc_1d(c->idx_dev, DT_I32, dev, 2 * (int64_t)n_seq * cap));
    }
    return ST_OK;
}

void decoder_cache_free(const DecoderCache *c, int n_layers) {
    for (int l = 0; *c->k && l < n_layers; l++) tensor_free(&(*c->k)[l]);
    for (int l = 0; *c->v && l < n_layers; l++) tensor_free(&(*c->v)[l]);
    free(*c->k), free(*c->v), free(*c->mask), free(*c->pos);
    *c->k = *c->v = NULL;
    *c->mask = *c->pos = NULL;
    tensor_free(c->mask_dev);
    tensor_free(c->idx_dev);
}

Status decoder_check_io(int vocab, int n_seq, int T, int own_past, int cap, const int32_t *ids, const int32_t *mask,
                        LogitsMode mode, const Tensor *logits, Device dev) {
    if (T <= 0) return status_fail(ST_USAGE, "forward: no tokens");
    if (own_past + T > cap)
        return status_fail(ST_USAGE, "forward: %d cached + %d new tokens exceed the session's capacity of %d", own_past,
                           T, cap);
    int64_t N = (int64_t)n_seq * T;
    for (int64_t i = 0; i < N; i++) {
        if (ids[i] < 0 || ids[i] >= vocab)
            return status_fail(ST_USAGE, "token id %d (sequence %lld, position %lld) is outside the vocabulary [0, %d)",
                               ids[i], (long long)(i / T), (long long)(i % T), vocab);
        if (mask && mask[i] != 0 && mask[i] != 1)
            return status_fail(ST_USAGE, "attention mask values must be 0 or 1 (got %d)", mask[i]);
    }
    if (mode != LOGITS_NONE) {
        int64_t rows = mode == LOGITS_ALL ? N : n_seq;
        if (!logits || logits->ndim != 2 || logits->shape[0] != rows || logits->shape[1] != vocab ||
            logits->dtype != DT_F32 || (logits->dev.kind != dev.kind && logits->dev.kind != DEV_CPU) ||
            (logits->dev.kind != dev.kind && !tensor_is_contiguous(logits)))
            return status_fail(ST_USAGE, "forward: logits must be f32 [%lld, %d] on the session's device or the CPU",
                               (long long)rows, vocab);
    }
    return ST_OK;
}

void decoder_store_kv(Tensor *cache, const Tensor *rows, int n_seq, int T, int cap, int first) {
    // [n_seq, T, width] views: the new rows, and the cache rows they go to (sequence stride cap rows)
    Tensor dst = tensor_rows(cache, first, T), src = *rows;
    int64_t ld_dst = cache->stride[0], ld_src = src.stride[0], width = src.shape[1];
    dst.ndim = src.ndim = 3;
    dst.shape[0] = src.shape[0] = n_seq, dst.shape[1] = src.shape[1] = T, dst.shape[2] = src.shape[2] = width;
    dst.stride[0] = (int64_t)cap * ld_dst, dst.stride[1] = ld_dst, dst.stride[2] = 1;
    src.stride[0] = (int64_t)T * ld_src, src.stride[1] = ld_src, src.stride[2] = 1;
    op_copy(&dst, &src);
}

Status decoder_upload_index(Device dev, const int32_t *ids, const int32_t *pos, const int32_t *mask, int n_seq, int T,
                            int cap, int first, Tensor *idx_dev, Tensor *mask_dev, const int32_t **ids_out,
                            const int32_t **pos_out, const int32_t **mask_out) {
    int64_t N = (int64_t)n_seq * T;
    if (dev.kind == DEV_CPU) {
        *ids_out = ids, *pos_out = pos, *mask_out = mask;
        return ST_OK;
    }
    int32_t *d = idx_dev->data;
    TRY(device_copy_to(dev, d, ids, (size_t)N * sizeof *d));
    TRY(device_copy_to(dev, d + N, pos, (size_t)N * sizeof *d));
    TRY(device_copy_to_2d(dev, (int32_t *)mask_dev->data + first, (size_t)cap * sizeof(int32_t), mask + first,
                          (size_t)cap * sizeof(int32_t), (size_t)T * sizeof(int32_t), (size_t)n_seq));
    *ids_out = d, *pos_out = d + N, *mask_out = mask_dev->data;
    return ST_OK;
}

Status decoder_logits_begin(Device dev, LogitsMode mode, Tensor *logits, int vocab, Tensor *scratch, Tensor *out,
                            bool *copy_back) {
    *out = (Tensor){0};
    *copy_back = mode != LOGITS_NONE && logits->dev.kind != dev.kind;
    if (*copy_back) {
        int64_t rows = logits->shape[0];
        if (tensor_numel(scratch) < rows * vocab) {
            tensor_free(scratch);
            TRY(tensor_alloc_1d(scratch, DT_F32, dev, rows * vocab));
        }
        *out = tensor_wrap(scratch->data, DT_F32, dev, 2, logits->shape);
    } else if (mode != LOGITS_NONE) {
        *out = *logits;
    }
    return ST_OK;
}

void decoder_logits_done(Tensor *logits, const Tensor *out, bool copy_back) {
    if (copy_back) op_copy_to_host(logits->data, out);
}
