#include "safetensors.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The dtypes the safetensors format defines that elastilm does not read, with
// their element sizes (sub-byte formats are not listed: they stay refused).
static const struct { const char *tag; size_t size; } unreadable_dtypes[] = {
    {"BOOL", 1}, {"U8", 1}, {"I8", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}, {"F8_E8M0", 1}, {"I16", 2}, {"U16", 2},
    {"U32", 4}, {"I64", 8}, {"U64", 8}, {"F64", 8},
};

// dt and the element size; SAFETENSORS_UNREADABLE for a defined dtype elastilm does not read.
static Status parse_dtype(const char *path, const char *name, const char *s, DType *dt, size_t *size) {
    if (strcmp(s, "F32") == 0) *dt = DT_F32;
    else if (strcmp(s, "F16") == 0) *dt = DT_F16;
    else if (strcmp(s, "BF16") == 0) *dt = DT_BF16;
    else if (strcmp(s, "I32") == 0) *dt = DT_I32;
    else {
        for (size_t i = 0; i < sizeof unreadable_dtypes / sizeof *unreadable_dtypes; i++)
            if (strcmp(s, unreadable_dtypes[i].tag) == 0) {
                *dt = SAFETENSORS_UNREADABLE;
                *size = unreadable_dtypes[i].size;
                return ST_OK;
            }
        return status_fail(ST_UNSUPPORTED, "%s: tensor '%s' has dtype %s, which is not a safetensors dtype elastilm knows "
                                           "(it reads F32, F16, BF16, I32)", path, name, s);
    }
    *size = dtype_size(*dt);
    return ST_OK;
}

static const char *dtype_tag(DType dt) {
    switch (dt) {
    case DT_F32: return "F32";
    case DT_F16: return "F16";
    case DT_BF16: return "BF16";
    case DT_I32: return "I32";
    case DT_Q8_0: break; // no safetensors dtype: such tensors are never written
    }
    return "?";
}

static int cmp_by_name(const void *a, const void *b) {
    return strcmp(((const SafeTensor *)a)->name, ((const SafeTensor *)b)->name);
}

// Readable tensors first, then by name.
static int cmp_by_kind_name(const void *a, const void *b) {
    const SafeTensor *x = a, *y = b;
    bool ux = x->dtype == SAFETENSORS_UNREADABLE, uy = y->dtype == SAFETENSORS_UNREADABLE;
    if (ux != uy) return ux ? 1 : -1;
    return strcmp(x->name, y->name);
}

static int cmp_by_offset(const void *a, const void *b) {
    const SafeTensor *x = *(const SafeTensor *const *)a, *y = *(const SafeTensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data ? 1 : 0;
}

// Reads one header entry into t (name already set).
static Status parse_entry(const char *path, json_t *entry, const uint8_t *base, size_t data_size, SafeTensor *t) {
    if (!json_is_object(entry)) return status_fail(ST_FORMAT, "%s: tensor '%s': header entry is not an object", path, t->name);
    json_t *jd = json_object_get(entry, "dtype"), *js = json_object_get(entry, "shape"), *jo = json_object_get(entry, "data_offsets");
    if (!json_is_string(jd)) return status_fail(ST_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", path, t->name);
    if (!json_is_array(js)) return status_fail(ST_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", path, t->name);
    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return status_fail(ST_FORMAT, "%s: tensor '%s': \"data_offsets\" must be [begin, end]", path, t->name);
    size_t esize = 0;
    TRY(parse_dtype(path, t->name, json_string_value(jd), &t->dtype, &esize));
    snprintf(t->tag, sizeof t->tag, "%s", json_string_value(jd));
    size_t nd = json_array_size(js);
    if (nd > TENSOR_MAX_DIMS)
        return status_fail(ST_UNSUPPORTED, "%s: tensor '%s' has %zu dimensions (at most %d)", path, t->name, nd, TENSOR_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return status_fail(ST_FORMAT, "%s: tensor '%s': shape entries must be non-negative integers", path, t->name);
        t->shape[i] = json_integer_value(d);
        if (t->shape[i] != 0 && numel > (UINT64_MAX / 8) / (uint64_t)t->shape[i])
            return status_fail(ST_FORMAT, "%s: tensor '%s': shape too large", path, t->name);
        numel *= (uint64_t)t->shape[i];
    }
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (!json_is_integer(jb) || !json_is_integer(je) || json_integer_value(jb) < 0 || json_integer_value(je) < json_integer_value(jb))
        return status_fail(ST_FORMAT, "%s: tensor '%s': bad data_offsets", path, t->name);
    uint64_t begin = (uint64_t)json_integer_value(jb), end = (uint64_t)json_integer_value(je);
    if (end > data_size)
        return status_fail(ST_FORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the file (%zu data bytes)",
                           path, t->name, (unsigned long long)begin, (unsigned long long)end, data_size);
    uint64_t expect = numel * esize;
    if (end - begin != expect)
        return status_fail(ST_FORMAT, "%s: tensor '%s': %llu data bytes, but shape and dtype need %llu",
                           path, t->name, (unsigned long long)(end - begin), (unsigned long long)expect);
    t->data = base + begin;
    t->nbytes = (size_t)expect;
    return ST_OK;
}

static Status check_overlaps(const char *path, SafetensorsFile *f, size_t n) {
    if (n < 2) return ST_OK;
    const SafeTensor **order = malloc(n * sizeof *order);
    if (!order) return status_fail(ST_OOM, "%s: out of memory", path);
    for (size_t i = 0; i < n; i++) order[i] = &f->tensors[i];
    qsort(order, n, sizeof *order, cmp_by_offset);
    Status st = ST_OK;
    for (size_t i = 1; i < n && st == ST_OK; i++) {
        const SafeTensor *a = order[i - 1], *b = order[i];
        if (a->nbytes && b->nbytes && a->data + a->nbytes > b->data)
            st = status_fail(ST_FORMAT, "%s: tensors '%s' and '%s' overlap in the data section", path, a->name, b->name);
    }
    free(order);
    return st;
}

static Status parse_header(SafetensorsFile *f, json_t *root, const uint8_t *base, size_t data_size) {
    const char *path = f->file.path;
    if (!json_is_object(root)) return status_fail(ST_FORMAT, "%s: safetensors header is not a JSON object", path);
    size_t cap = json_object_size(root);
    f->tensors = calloc(cap ? cap : 1, sizeof *f->tensors);
    if (!f->tensors) return status_fail(ST_OOM, "%s: out of memory", path);
    const char *key;
    json_t *value;
    size_t n = 0; // entries so far (safetensors_close frees their names)
    json_object_foreach(root, key, value) {
        if (strcmp(key, "__metadata__") == 0) continue;
        SafeTensor *t = &f->tensors[n++];
        f->n = n;
        t->name = strdup(key);
        if (!t->name) return status_fail(ST_OOM, "%s: out of memory", path);
        TRY(parse_entry(path, value, base, data_size, t));
    }
    qsort(f->tensors, n, sizeof *f->tensors, cmp_by_kind_name);
    size_t readable = 0;
    while (readable < n && f->tensors[readable].dtype != SAFETENSORS_UNREADABLE) readable++;
    f->n = readable;
    f->n_unreadable = n - readable;
    return check_overlaps(path, f, n);
}

Status safetensors_open(SafetensorsFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    TRY(mapped_file_open(&f->file, path));
    Status st = ST_OK;
    const uint8_t *p = f->file.data;
    size_t size = f->file.size;
    uint64_t hlen = 0;
    if (size < 8) {
        st = status_fail(ST_FORMAT, "%s: truncated safetensors file (%zu bytes, no header length)", path, size);
        goto done;
    }
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > size - 8) {
        st = status_fail(ST_FORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)", path,
                         (unsigned long long)hlen, size);
        goto done;
    }
    json_error_t jerr;
    json_t *root = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        st = status_fail(ST_FORMAT, "%s: malformed header JSON (column %d: %s)", path, jerr.column, jerr.text);
        goto done;
    }
    st = parse_header(f, root, p + 8 + hlen, size - 8 - (size_t)hlen);
    json_decref(root);
done:
    if (st != ST_OK) safetensors_close(f);
    return st;
}

void safetensors_close(SafetensorsFile *f) {
    for (size_t i = 0; f->tensors && i < f->n + f->n_unreadable; i++) free(f->tensors[i].name);
    free(f->tensors);
    mapped_file_close(&f->file);
    memset(f, 0, sizeof *f);
}

const SafeTensor *safetensors_find(const SafetensorsFile *f, const char *name) {
    SafeTensor key = {.name = (char *)name};
    const SafeTensor *t = f->n ? bsearch(&key, f->tensors, f->n, sizeof *f->tensors, cmp_by_name) : NULL;
    if (!t && f->n_unreadable)
        t = bsearch(&key, f->tensors + f->n, f->n_unreadable, sizeof *f->tensors, cmp_by_name);
    return t;
}

Status safetensors_view(const SafetensorsFile *f, const SafeTensor *t, Tensor *out) {
    if (t->dtype == SAFETENSORS_UNREADABLE)
        return status_fail(ST_UNSUPPORTED, "%s: tensor '%s' has dtype %s, which elastilm does not read (F32, F16, BF16, I32)",
                           f->file.path, t->name, t->tag);
    if ((uintptr_t)t->data % dtype_size(t->dtype) != 0)
        return status_fail(ST_FORMAT, "%s: tensor '%s' is not aligned for %s", f->file.path, t->name, dtype_name(t->dtype));
    int64_t scalar_shape[1] = {1};
    *out = tensor_wrap((void *)t->data, t->dtype, (Device){DEV_CPU, 0}, t->ndim ? t->ndim : 1,
                       t->ndim ? t->shape : scalar_shape);
    return ST_OK;
}

Status safetensors_write(const char *path, const char *const *names, const Tensor *tensors, size_t n) {
    json_t *root = json_object();
    size_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        const Tensor *t = &tensors[i];
        size_t bytes = (size_t)tensor_numel(t) * dtype_size(t->dtype);
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) json_array_append_new(shape, json_integer(t->shape[d]));
        json_object_set_new(root, names[i],
                            json_pack("{s:s, s:o, s:[I,I]}", "dtype", dtype_tag(t->dtype), "shape", shape, "data_offsets",
                                      (json_int_t)offset, (json_int_t)(offset + bytes)));
        offset += bytes;
    }
    char *header = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    if (!header) return status_fail(ST_OOM, "%s: cannot build header", path);
    size_t hlen = strlen(header), padded = (hlen + 7) / 8 * 8; // pad with spaces to 8-byte alignment
    size_t total = 8 + padded + offset;
    uint8_t *buf = malloc(total);
    if (!buf) {
        free(header);
        return status_fail(ST_OOM, "%s: out of memory", path);
    }
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, header, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    free(header);
    uint8_t *data = buf + 8 + padded;
    Status st = ST_OK;
    for (size_t i = 0; i < n && st == ST_OK; i++) {
        const Tensor *t = &tensors[i];
        Tensor dst = tensor_wrap(data, t->dtype, (Device){DEV_CPU, 0}, t->ndim, t->shape);
        st = tensor_copy_convert(&dst, t);
        data += (size_t)tensor_numel(t) * dtype_size(t->dtype);
    }
    if (st == ST_OK) st = write_file_atomic(path, buf, total);
    free(buf);
    return st;
}
