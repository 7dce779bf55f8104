// A Hugging Face checkpoint directory's safetensors files: model.safetensors,
// or the shards that model.safetensors.index.json's weight_map names.
#include <jansson.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"

// The shard file names: model.safetensors, or the distinct values of the index's weight_map.
static Status list_shards(const char *dir, char ***names, int *n, char *where, size_t where_n) {
    char path[1200];
    *names = NULL;
    *n = 0;
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (access(path, F_OK) != 0) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (access(path, F_OK) != 0)
            return status_fail(ST_IO, "%s: no model.safetensors or model.safetensors.index.json", dir);
        if (where) snprintf(where, where_n, "%s", path);
        *names = malloc(sizeof **names);
        if (!*names || !((*names)[0] = strdup("model.safetensors"))) return status_fail(ST_OOM, "out of memory");
        *n = 1;
        return ST_OK;
    }
    if (where) snprintf(where, where_n, "%s", path);
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) return status_fail(ST_FORMAT, "%s: malformed JSON (line %d: %s)", path, err.line, err.text);
    json_t *map = json_object_get(root, "weight_map");
    Status st = ST_OK;
    if (!json_is_object(map)) {
        st = status_fail(ST_FORMAT, "%s: missing key 'weight_map'", path);
    } else {
        *names = calloc(json_object_size(map) + 1, sizeof **names);
        if (!*names) st = status_fail(ST_OOM, "out of memory");
        const char *key;
        json_t *v;
        json_object_foreach(map, key, v) {
            if (st != ST_OK) break;
            const char *f = json_string_value(v);
            if (!f || strchr(f, '/')) {
                st = status_fail(ST_FORMAT, "%s: weight_map entry '%s' is not a file name in the directory", path, key);
                break;
            }
            bool seen = false;
            for (int i = 0; i < *n && !seen; i++) seen = strcmp((*names)[i], f) == 0;
            if (!seen && !((*names)[(*n)++] = strdup(f))) st = status_fail(ST_OOM, "out of memory");
        }
    }
    json_decref(root);
    return st;
}

Status safetensors_open_dir(const char *dir, SafetensorsFile **shards, int *n_shards, char *where, size_t where_n) {
    *shards = NULL;
    *n_shards = 0;
    char **names;
    int n;
    Status st = list_shards(dir, &names, &n, where, where_n);
    if (st == ST_OK && n > 0 && !(*shards = calloc((size_t)n, sizeof **shards))) st = status_fail(ST_OOM, "out of memory");
    for (int i = 0; st == ST_OK && i < n; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        st = safetensors_open(&(*shards)[i], path);
        if (st == ST_OK) (*n_shards)++;
    }
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names);
    return st; // on failure the shards opened so far stay in *shards (*n_shards of them) for the caller to close
}

static void shape_str(const int64_t *shape, int ndim, char *buf, size_t n) {
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

Status safetensors_weight_f32(const SafetensorsFile *f, const SafeTensor *t, int64_t rows, int64_t cols, Tensor *out) {
    int64_t want[2] = {rows, cols};
    int want_ndim = cols ? 2 : 1;
    if (t->ndim != want_ndim || t->shape[0] != rows || (cols && t->shape[1] != cols)) {
        char have_s[64], want_s[64];
        shape_str(t->shape, t->ndim, have_s, sizeof have_s);
        shape_str(want, want_ndim, want_s, sizeof want_s);
        return status_fail(ST_FORMAT, "%s: tensor '%s' has shape %s, config.json implies %s", f->file.path, t->name,
                           have_s, want_s);
    }
    if (t->dtype != DT_F32 && t->dtype != DT_F16 && t->dtype != DT_BF16)
        return status_fail(ST_FORMAT, "%s: tensor '%s' has dtype %s; weights must be F32, F16 or BF16", f->file.path,
                           t->name, t->tag);
    if (t->dtype == DT_F32 && (uintptr_t)t->data % 4 == 0) return safetensors_view(f, t, out);
    TRY(tensor_alloc(out, DT_F32, (Device){DEV_CPU, 0}, t->ndim, t->shape));
    if (t->dtype == DT_F32) { // unaligned fp32: copy bytes
        memcpy(out->data, t->data, t->nbytes);
        return ST_OK;
    }
    Tensor src = tensor_wrap((void *)t->data, t->dtype, (Device){DEV_CPU, 0}, t->ndim, t->shape);
    return tensor_copy_convert(out, &src);
}
