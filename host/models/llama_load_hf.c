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
    return safetensors_weight_f32(file, t, rows, cols, out);
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
