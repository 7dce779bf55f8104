// Hugging Face directory: config.json + model.safetensors, or the shards
// listed in model.safetensors.index.json. fp32 weights are used in place
// (views of the mapped files); fp16 and bf16 ones are converted to fp32.
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llama_internal.h"

static void hf_name(WeightRole role, int layer, char *buf, size_t n) {
    static const char *layer_fmt[] = {
        [W_ATTN_NORM] = "model.layers.%d.input_layernorm.weight",
        [W_WQ] = "model.layers.%d.self_attn.q_proj.weight",
        [W_WK] = "model.layers.%d.self_attn.k_proj.weight",
        [W_WV] = "model.layers.%d.self_attn.v_proj.weight",
        [W_WO] = "model.layers.%d.self_attn.o_proj.weight",
        [W_MLP_NORM] = "model.layers.%d.post_attention_layernorm.weight",
        [W_GATE] = "model.layers.%d.mlp.gate_proj.weight",
        [W_UP] = "model.layers.%d.mlp.up_proj.weight",
        [W_DOWN] = "model.layers.%d.mlp.down_proj.weight",
    };
    switch (role) {
    case W_TOK_EMBD: snprintf(buf, n, "model.embed_tokens.weight"); break;
    case W_FINAL_NORM: snprintf(buf, n, "model.norm.weight"); break;
    case W_LM_HEAD: snprintf(buf, n, "lm_head.weight"); break;
    default: snprintf(buf, n, layer_fmt[role], layer); break;
    }
}

static void shape_str(const int64_t *shape, int ndim, char *buf, size_t n) {
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

static Status hf_get(LlamaModel *m, WeightRole role, int layer, int64_t rows, int64_t cols, Tensor *out, bool *found) {
    char name[160];
    hf_name(role, layer, name, sizeof name);
    const SafetensorsFile *file = NULL;
    const SafeTensor *t = NULL;
    for (int i = 0; i < m->storage->n_shards && !t; i++) {
        file = &m->storage->shards[i];
        t = safetensors_find(file, name);
    }
    *found = t != NULL;
    if (!t) return ST_OK;
    int64_t want[2] = {rows, cols};
    int want_ndim = cols ? 2 : 1;
    if (t->ndim != want_ndim || t->shape[0] != rows || (cols && t->shape[1] != cols)) {
        char have_s[64], want_s[64];
        shape_str(t->shape, t->ndim, have_s, sizeof have_s);
        shape_str(want, want_ndim, want_s, sizeof want_s);
        return status_fail(ST_FORMAT, "%s: tensor '%s' has shape %s, config.json implies %s", file->file.path, name,
                           have_s, want_s);
    }
    if (t->dtype != DT_F32 && t->dtype != DT_F16 && t->dtype != DT_BF16)
        return status_fail(ST_FORMAT, "%s: tensor '%s' has dtype %s; weights must be F32, F16 or BF16", file->file.path,
                           name, t->tag);
    Tensor src;
    if (t->dtype == DT_F32 && (uintptr_t)t->data % 4 == 0) return safetensors_view(file, t, out);
    src = tensor_wrap((void *)t->data, t->dtype, (Device){DEV_CPU, 0}, t->ndim, t->shape);
    if (t->dtype == DT_F32) { // unaligned fp32: copy bytes
        TRY(tensor_alloc(out, DT_F32, (Device){DEV_CPU, 0}, t->ndim, t->shape));
        memcpy(out->data, t->data, t->nbytes);
        return ST_OK;
    }
    TRY(tensor_alloc(out, DT_F32, (Device){DEV_CPU, 0}, t->ndim, t->shape));
    return tensor_copy_convert(out, &src);
}

static Status open_shards(LlamaModel *m, const char *dir) {
    return safetensors_open_dir(dir, &m->storage->shards, &m->storage->n_shards, NULL, 0);
}

static void note_dtypes(LlamaModel *m) {
    bool seen[4] = {false};
    for (int i = 0; i < m->storage->n_shards; i++)
        for (size_t j = 0; j < m->storage->shards[i].n; j++) seen[m->storage->shards[i].tensors[j].dtype] = true;
    m->source_dtype[0] = '\0';
    for (int d = 0; d < 4; d++) {
        if (!seen[d]) continue;
        if (m->source_dtype[0]) strncat(m->source_dtype, "+", sizeof m->source_dtype - strlen(m->source_dtype) - 1);
        strncat(m->source_dtype, dtype_name((DType)d), sizeof m->source_dtype - strlen(m->source_dtype) - 1);
    }
}

Status llama_load_hf(LlamaModel *m, const char *dir) {
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text;
    TRY(read_text_file(path, &text, NULL));
    Status st = llama_config_from_json(&m->cfg, text, path);
    free(text);
    TRY(st);
    TRY(open_shards(m, dir));
    note_dtypes(m);
    return llama_load_weights(m, hf_get, dir);
}
