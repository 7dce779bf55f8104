// A model, or a subset of its layers, as a Hugging Face directory:
// config.json + model.safetensors (fp32).
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/safetensors.h"
#include "llama.h"
#include "runtime/mapped_file.h"

// config.json of m with n_layers layers.
static Status write_config(const LlamaModel *m, int n_layers, const char *path) {
    const LlamaConfig *c = &m->cfg;
    json_t *j = json_object();
    json_object_set_new(j, "architectures", json_pack("[s]", "LlamaForCausalLM"));
    json_object_set_new(j, "model_type", json_string("llama"));
    json_object_set_new(j, "vocab_size", json_integer(c->vocab_size));
    json_object_set_new(j, "hidden_size", json_integer(c->dim));
    json_object_set_new(j, "intermediate_size", json_integer(c->ffn_dim));
    json_object_set_new(j, "num_hidden_layers", json_integer(n_layers));
    json_object_set_new(j, "num_attention_heads", json_integer(c->n_heads));
    json_object_set_new(j, "num_key_value_heads", json_integer(c->n_kv_heads));
    json_object_set_new(j, "head_dim", json_integer(c->head_dim));
    json_object_set_new(j, "max_position_embeddings", json_integer(c->max_position));
    json_object_set_new(j, "rms_norm_eps", json_real(c->rms_eps));
    json_object_set_new(j, "rope_theta", json_real(c->rope_theta));
    json_object_set_new(j, "tie_word_embeddings", json_boolean(c->tie_embeddings));
    json_object_set_new(j, "hidden_act", json_string("silu"));
    json_object_set_new(j, "attention_bias", json_false());
    json_object_set_new(j, "mlp_bias", json_false());
    json_object_set_new(j, "torch_dtype", json_string("float32"));
    if (c->bos_token_id >= 0) json_object_set_new(j, "bos_token_id", json_integer(c->bos_token_id));
    if (c->eos_token_id >= 0) json_object_set_new(j, "eos_token_id", json_integer(c->eos_token_id));
    const RopeScaling *r = &c->rope_scaling;
    if (r->type == ROPE_LINEAR)
        json_object_set_new(j, "rope_scaling", json_pack("{s:s, s:f}", "rope_type", "linear", "factor", r->factor));
    else if (r->type == ROPE_LLAMA3)
        json_object_set_new(j, "rope_scaling",
                            json_pack("{s:s, s:f, s:f, s:f, s:i}", "rope_type", "llama3", "factor", r->factor,
                                      "low_freq_factor", r->low_freq_factor, "high_freq_factor", r->high_freq_factor,
                                      "original_max_position_embeddings", r->original_max_position));
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(j);
    if (!text) return status_fail(ST_OOM, "out of memory");
    Status st = write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

// keep: ascending layer indices in 0..L-1, at least one.
static Status check_keep(const LlamaConfig *c, const int *keep, int n_keep) {
    if (n_keep < 1) return status_fail(ST_USAGE, "export: no layers to keep");
    for (int i = 0; i < n_keep; i++) {
        if (keep[i] < 0 || keep[i] >= c->n_layers)
            return status_fail(ST_USAGE, "export: layer %d is outside 0..%d", keep[i], c->n_layers - 1);
        if (i > 0 && keep[i] <= keep[i - 1])
            return status_fail(ST_USAGE, "export: layer %d after layer %d: the kept layers must ascend", keep[i],
                               keep[i - 1]);
    }
    return ST_OK;
}

Status llama_export_hf(const LlamaModel *m, const char *dir) { return llama_export_hf_layers(m, NULL, 0, dir); }

Status llama_export_hf_layers(const LlamaModel *m, const int *keep, int n_keep, const char *dir) {
    const LlamaConfig *c = &m->cfg;
    TRY(llama_require_f32(m, "export"));
    if (keep) TRY(check_keep(c, keep, n_keep));
    else n_keep = c->n_layers;
    if (c->rope_scaling.type == ROPE_FREQ_FACTORS)
        return status_fail(ST_UNSUPPORTED, "export: the model's rope uses GGUF per-frequency factors, which a Hugging "
                                           "Face config cannot express");
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return status_fail(ST_IO, "%s: cannot create: %s", dir, strerror(errno));
    int n = 3 + 9 * n_keep;
    char **names = calloc((size_t)n, sizeof *names);
    Tensor *ts = calloc((size_t)n, sizeof *ts);
    Status st = names && ts ? ST_OK : status_fail(ST_OOM, "out of memory");
    int k = 0;
    static const char *layer_names[] = {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj",
                                        "self_attn.v_proj", "self_attn.o_proj", "post_attention_layernorm",
                                        "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};
    for (int i = 0; st == ST_OK && i < n; i++)
        if (!(names[i] = malloc(96))) st = status_fail(ST_OOM, "out of memory");
    if (st == ST_OK) {
        snprintf(names[k], 96, "model.embed_tokens.weight"), ts[k++] = m->tok_embd;
        snprintf(names[k], 96, "model.norm.weight"), ts[k++] = m->final_norm;
        if (!c->tie_embeddings) snprintf(names[k], 96, "lm_head.weight"), ts[k++] = m->lm_head;
        for (int l = 0; l < n_keep; l++) { // kept layer keep[l] becomes layer l
            const LlamaLayer *ly = &m->layers[keep ? keep[l] : l];
            const Tensor *w[] = {&ly->attn_norm, &ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->mlp_norm,
                                 &ly->w_gate, &ly->w_up, &ly->w_down};
            for (int i = 0; i < 9; i++) {
                snprintf(names[k], 96, "model.layers.%d.%s.weight", l, layer_names[i]);
                ts[k++] = *w[i];
            }
        }
    }
    char path[4096];
    if (st == ST_OK) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        st = safetensors_write(path, (const char *const *)names, ts, (size_t)k);
    }
    if (st == ST_OK) {
        snprintf(path, sizeof path, "%s/config.json", dir);
        st = write_config(m, n_keep, path);
    }
    for (int i = 0; names && i < n; i++) free(names[i]);
    free(names);
    free(ts);
    return st;
}
