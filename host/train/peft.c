// peft adapter directories.
#include "peft.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/safetensors.h"
#include "runtime/mapped_file.h"

void peft_key_in(const LoraTargetTable *tt, char *buf, size_t n, int layer, int t, char which) {
    char path[256];
    snprintf(path, sizeof path, tt->module_paths[t], layer);
    if (snprintf(buf, n, "base_model.model.%s.lora_%c.weight", path, which) >= (int)n && n > 0) buf[n - 1] = 0;
}

void peft_key(char *buf, size_t n, int layer, LoraTarget t, char which) {
    peft_key_in(&lora_llama_targets, buf, n, layer, t, which);
}

static Status make_dir(const char *dir) {
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return status_fail(ST_IO, "%s: cannot create directory: %s", dir, strerror(errno));
    return ST_OK;
}

static Status write_config(const LoraSet *s, const char *path, const char *base_model) {
    json_t *targets = json_array();
    for (int t = 0; t < s->n_targets; t++)
        if (s->cfg.targets & (1u << t)) json_array_append_new(targets, json_string(s->tt->names[t]));
    json_t *cfg = json_object();
    json_object_set_new(cfg, "peft_type", json_string("LORA"));
    json_object_set_new(cfg, "task_type", json_string(s->tt->peft_task_type));
    json_object_set_new(cfg, "base_model_name_or_path", base_model ? json_string(base_model) : json_null());
    json_object_set_new(cfg, "r", json_integer(s->cfg.rank));
    json_object_set_new(cfg, "lora_alpha", json_real(s->cfg.alpha));
    json_object_set_new(cfg, "lora_dropout", json_real(s->cfg.dropout));
    json_object_set_new(cfg, "target_modules", targets);
    json_object_set_new(cfg, "bias", json_string("none"));
    json_object_set_new(cfg, "fan_in_fan_out", json_false());
    json_object_set_new(cfg, "inference_mode", json_true());
    json_object_set_new(cfg, "init_lora_weights", json_true());
    json_object_set_new(cfg, "use_rslora", json_false());
    json_object_set_new(cfg, "use_dora", json_false());
    char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(cfg);
    if (!text) return status_fail(ST_OOM, "%s: cannot serialise the adapter config", path);
    Status st = write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

Status peft_export(const LoraSet *s, const char *dir, const char *base_model) {
    TRY(make_dir(dir));
    int n = 0;
    for (int l = 0; l < s->n_layers; l++)
        for (int t = 0; t < s->n_targets; t++) n += lora_adapter(s, l, t)->in ? 2 : 0;
    char **names = calloc((size_t)n + 1, sizeof *names);
    Tensor *ts = calloc((size_t)n + 1, sizeof *ts);
    Status st = names && ts ? ST_OK : status_fail(ST_OOM, "out of memory");
    int k = 0;
    for (int l = 0; st == ST_OK && l < s->n_layers; l++)
        for (int t = 0; st == ST_OK && t < s->n_targets; t++) {
            const LoraAdapter *a = lora_adapter(s, l, t);
            if (!a->in) continue;
            for (int w = 0; w < 2; w++) {
                names[k] = malloc(160);
                if (!names[k]) {
                    st = status_fail(ST_OOM, "out of memory");
                    break;
                }
                peft_key_in(s->tt, names[k], 160, l, t, w ? 'B' : 'A');
                ts[k++] = w ? a->B : a->A;
            }
        }
    char path[4096];
    if (st == ST_OK) {
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
        st = safetensors_write(path, (const char *const *)names, ts, (size_t)k);
    }
    if (st == ST_OK) {
        snprintf(path, sizeof path, "%s/adapter_config.json", dir);
        st = write_config(s, path, base_model);
    }
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names);
    free(ts);
    return st;
}

// ---- import ---------------------------------------------------------------------

static Status read_config(const LoraTargetTable *tt, const char *path, LoraConfig *cfg) {
    char *text = NULL;
    size_t len = 0;
    TRY(read_text_file(path, &text, &len));
    json_error_t err;
    json_t *root = json_loadb(text, len, 0, &err);
    free(text);
    if (!root) return status_fail(ST_FORMAT, "%s:%d: malformed JSON: %s", path, err.line, err.text);
    Status st = ST_OK;
    const char *type = json_string_value(json_object_get(root, "peft_type"));
    json_t *r = json_object_get(root, "r"), *alpha = json_object_get(root, "lora_alpha");
    json_t *drop = json_object_get(root, "lora_dropout"), *targets = json_object_get(root, "target_modules");
    const char *bias = json_string_value(json_object_get(root, "bias"));
    if (!type || strcmp(type, "LORA")) st = status_fail(ST_UNSUPPORTED, "%s: peft_type is not \"LORA\"", path);
    else if (!json_is_integer(r) || json_integer_value(r) <= 0 || json_integer_value(r) > 65536)
        st = status_fail(ST_FORMAT, "%s: key 'r' must be an integer in [1, 65536]", path);
    else if (!json_is_number(alpha)) st = status_fail(ST_FORMAT, "%s: key 'lora_alpha' must be a number", path);
    else if (json_is_true(json_object_get(root, "use_rslora")) || json_is_true(json_object_get(root, "use_dora")) ||
             json_is_true(json_object_get(root, "fan_in_fan_out")) || (bias && strcmp(bias, "none")))
        st = status_fail(ST_UNSUPPORTED, "%s: only plain LoRA is supported (no rslora, DoRA, fan_in_fan_out or biases)", path);
    else if (json_object_get(root, "rank_pattern") && json_object_size(json_object_get(root, "rank_pattern")) > 0)
        st = status_fail(ST_UNSUPPORTED, "%s: per-module ranks (rank_pattern) are not supported", path);
    if (st == ST_OK) {
        cfg->rank = (int)json_integer_value(r);
        cfg->alpha = (float)json_number_value(alpha);
        cfg->dropout = json_is_number(drop) ? (float)json_number_value(drop) : 0.0f;
        cfg->targets = 0;
        size_t i;
        json_t *v;
        if (json_is_string(targets)) st = lora_parse_targets_in(tt, json_string_value(targets), &cfg->targets);
        else if (json_is_array(targets))
            json_array_foreach(targets, i, v) {
                unsigned one = 0;
                if (!json_is_string(v) || lora_parse_targets_in(tt, json_string_value(v), &one) != ST_OK) {
                    st = status_fail(ST_UNSUPPORTED, "%s: target module %s is not a %s projection", path,
                                     json_is_string(v) ? json_string_value(v) : "(not a string)", tt->model);
                    break;
                }
                cfg->targets |= one;
            }
        else st = status_fail(ST_FORMAT, "%s: key 'target_modules' must be a list of module names", path);
        if (st != ST_OK && strstr(status_message(), path) == NULL)
            st = status_wrap(st, "%s: target_modules", path);
    }
    json_decref(root);
    return st;
}

static Status load_matrix(const SafetensorsFile *f, const char *path, const char *key, Tensor *dst) {
    const SafeTensor *st = safetensors_find(f, key);
    if (!st) return status_fail(ST_FORMAT, "%s: tensor '%s' is missing", path, key);
    if (st->ndim != 2 || st->shape[0] != dst->shape[0] || st->shape[1] != dst->shape[1])
        return status_fail(ST_FORMAT, "%s: tensor '%s' has shape [%lld, %lld], expected [%lld, %lld]", path, key,
                           st->ndim > 0 ? (long long)st->shape[0] : 0LL, st->ndim > 1 ? (long long)st->shape[1] : 0LL,
                           (long long)dst->shape[0], (long long)dst->shape[1]);
    if (st->dtype != DT_F32 && st->dtype != DT_F16 && st->dtype != DT_BF16)
        return status_fail(ST_FORMAT, "%s: tensor '%s' has dtype %s; adapters must be F32, F16 or BF16", path, key,
                           st->tag);
    Tensor src = tensor_wrap((void *)st->data, st->dtype, (Device){DEV_CPU, 0}, 2, st->shape);
    return tensor_copy_convert(dst, &src);
}

Status peft_import_table(LoraSet *s, const LoraTargetTable *tt, const void *shape_ctx, int n_layers, const char *dir) {
    char path[4096];
    LoraConfig cfg;
    memset(s, 0, sizeof *s);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    TRY(read_config(tt, path, &cfg));
    Status init = lora_init_table(s, tt, shape_ctx, n_layers, &cfg, 0);
    if (init != ST_OK) return status_wrap(ST_FORMAT, "%s: r / lora_dropout", path);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    SafetensorsFile f;
    Status st = safetensors_open(&f, path);
    if (st != ST_OK) {
        lora_free(s);
        return st;
    }
    char key[160];
    for (int l = 0; st == ST_OK && l < n_layers; l++)
        for (int t = 0; st == ST_OK && t < tt->n; t++) {
            LoraAdapter *a = lora_adapter(s, l, t);
            if (!a->in) continue;
            peft_key_in(tt, key, sizeof key, l, t, 'A');
            st = load_matrix(&f, path, key, &a->A);
            if (st != ST_OK) break;
            peft_key_in(tt, key, sizeof key, l, t, 'B');
            st = load_matrix(&f, path, key, &a->B);
        }
    safetensors_close(&f);
    if (st != ST_OK) lora_free(s);
    return st;
}

Status peft_import(LoraSet *s, const LlamaConfig *c, const LlamaWidth *widths, const char *dir) {
    LlamaShapeCtx ctx = {c, widths};
    return peft_import_table(s, &lora_llama_targets, &ctx, c->n_layers, dir);
}
