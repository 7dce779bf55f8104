// causal_lm_open: a model of either family from a path.
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "causal_lm.h"
#include "opt.h"

// config.json's model_type, or "" (a GGUF file, no config, no such key).
static void model_type(const char *path, char *out, size_t n) {
    out[0] = '\0';
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode)) return;
    char cfg[4200];
    snprintf(cfg, sizeof cfg, "%s/config.json", path);
    json_t *j = json_load_file(cfg, 0, NULL);
    const char *t = json_string_value(json_object_get(j, "model_type"));
    if (t) snprintf(out, n, "%s", t);
    json_decref(j);
}

Status causal_lm_open(CausalLM *lm, const char *path) {
    memset(lm, 0, sizeof *lm);
    char type[64];
    model_type(path, type, sizeof type);
    if (!strcmp(type, "opt")) {
        OptModel *m = malloc(sizeof *m);
        if (!m) return status_fail(ST_OOM, "out of memory");
        Status st = opt_load(m, path);
        if (st != ST_OK) {
            free(m);
            return st;
        }
        *lm = causal_lm_opt(m);
        return ST_OK;
    }
    LlamaModel *m = malloc(sizeof *m);
    if (!m) return status_fail(ST_OOM, "out of memory");
    Status st = llama_load(m, path);
    if (st != ST_OK) {
        free(m);
        return st;
    }
    *lm = causal_lm_llama(m);
    return ST_OK;
}

void causal_lm_close(CausalLM *lm) {
    if (lm->model) lm->ops->model_free((void *)lm->model);
    memset(lm, 0, sizeof *lm);
}
