// A Hugging Face checkpoint directory's safetensors files: model.safetensors,
// or the shards that model.safetensors.index.json's weight_map names.
#include <jansson.h>
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
