// Loading shared by both checkpoint formats: the config checks, the walk over
// every weight, the rotary table, and freeing.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "llama_internal.h"

static const char *role_name(WeightRole r) {
    static const char *names[] = {"token embedding", "final norm", "lm_head", "attention norm", "q_proj", "k_proj",
                                  "v_proj", "o_proj", "mlp norm", "gate_proj", "up_proj", "down_proj"};
    return names[r];
}

Status llama_config_check(const LlamaConfig *c, const char *path) {
#define POSITIVE(field, key) \
    if (c->field <= 0) return status_fail(ST_FORMAT, "%s: '%s' must be positive (got %d)", path, key, (int)c->field)
    POSITIVE(vocab_size, "vocab_size");
    POSITIVE(dim, "hidden_size");
    POSITIVE(ffn_dim, "intermediate_size");
    POSITIVE(n_layers, "num_hidden_layers");
    POSITIVE(n_heads, "num_attention_heads");
    POSITIVE(n_kv_heads, "num_key_value_heads");
    POSITIVE(head_dim, "head_dim");
#undef POSITIVE
    if (c->n_heads % c->n_kv_heads != 0)
        return status_fail(ST_FORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", path,
                           c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 != 0) return status_fail(ST_FORMAT, "%s: head_dim %d is odd; rotary needs it even", path, c->head_dim);
    if (!(c->rms_eps > 0.0f)) return status_fail(ST_FORMAT, "%s: rms_norm_eps must be positive", path);
    if (!(c->rope_theta > 0.0f)) return status_fail(ST_FORMAT, "%s: rope_theta must be positive", path);
    const RopeScaling *r = &c->rope_scaling;
    if (r->type != ROPE_DEFAULT && !(r->factor > 0.0f))
        return status_fail(ST_FORMAT, "%s: rope_scaling factor must be positive", path);
    if (r->type == ROPE_LLAMA3 && (r->original_max_position <= 0 || !(r->high_freq_factor > r->low_freq_factor)))
        return status_fail(ST_FORMAT,
                           "%s: llama3 rope_scaling needs original_max_position_embeddings > 0 and high_freq_factor > low_freq_factor",
                           path);
    return ST_OK;
}

void llama_rope_inv_freq(const LlamaConfig *c, float *out) {
    int half = c->head_dim / 2;
    const RopeScaling *r = &c->rope_scaling;
    for (int i = 0; i < half; i++) {
        double f = 1.0 / pow((double)c->rope_theta, (double)(2 * i) / (double)c->head_dim);
        if (r->type == ROPE_LINEAR) {
            f /= r->factor;
        } else if (r->type == ROPE_LLAMA3) {
            // Llama-3.1: long wavelengths are slowed by `factor`, short ones kept,
            // the band between them interpolated (transformers' _compute_llama3_parameters).
            double wavelen = 2.0 * M_PI / f;
            double low_wavelen = r->original_max_position / r->low_freq_factor;
            double high_wavelen = r->original_max_position / r->high_freq_factor;
            if (wavelen > low_wavelen) {
                f /= r->factor;
            } else if (wavelen >= high_wavelen) {
                double smooth = (r->original_max_position / wavelen - r->low_freq_factor) /
                                (r->high_freq_factor - r->low_freq_factor);
                f = (1.0 - smooth) * f / r->factor + smooth * f;
            }
        }
        out[i] = (float)f;
    }
}

static Status get_required(LlamaModel *m, WeightGetter get, WeightRole role, int layer, int64_t rows, int64_t cols,
                           Tensor *out, const char *path) {
    bool found = false;
    TRY(get(m, role, layer, rows, cols, out, &found));
    if (!found) {
        if (layer >= 0) return status_fail(ST_FORMAT, "%s: missing tensor: layer %d %s", path, layer, role_name(role));
        return status_fail(ST_FORMAT, "%s: missing tensor: %s", path, role_name(role));
    }
    return ST_OK;
}

Status llama_load_weights(LlamaModel *m, WeightGetter get, const char *path) {
    const LlamaConfig *c = &m->cfg;
    int64_t D = c->dim, F = c->ffn_dim, V = c->vocab_size, QD = (int64_t)c->n_heads * c->head_dim,
            KVD = (int64_t)c->n_kv_heads * c->head_dim;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    m->inv_freq = malloc((size_t)(c->head_dim / 2) * sizeof(float));
    if (!m->layers || !m->inv_freq) return status_fail(ST_OOM, "%s: out of memory", path);
    llama_rope_inv_freq(c, m->inv_freq);
    TRY(get_required(m, get, W_TOK_EMBD, -1, V, D, &m->tok_embd, path));
    TRY(get_required(m, get, W_FINAL_NORM, -1, D, 0, &m->final_norm, path));
    if (m->cfg.tie_embeddings) {
        m->lm_head = m->tok_embd;
        m->lm_head.owns = false;
    } else {
        TRY(get_required(m, get, W_LM_HEAD, -1, V, D, &m->lm_head, path));
    }
    for (int l = 0; l < c->n_layers; l++) {
        LlamaLayer *ly = &m->layers[l];
        TRY(get_required(m, get, W_ATTN_NORM, l, D, 0, &ly->attn_norm, path));
        TRY(get_required(m, get, W_WQ, l, QD, D, &ly->wq, path));
        TRY(get_required(m, get, W_WK, l, KVD, D, &ly->wk, path));
        TRY(get_required(m, get, W_WV, l, KVD, D, &ly->wv, path));
        TRY(get_required(m, get, W_WO, l, D, QD, &ly->wo, path));
        TRY(get_required(m, get, W_MLP_NORM, l, D, 0, &ly->mlp_norm, path));
        TRY(get_required(m, get, W_GATE, l, F, D, &ly->w_gate, path));
        TRY(get_required(m, get, W_UP, l, F, D, &ly->w_up, path));
        TRY(get_required(m, get, W_DOWN, l, D, F, &ly->w_down, path));
    }
    return ST_OK;
}

static bool is_directory(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

Status llama_load(LlamaModel *m, const char *path) {
    memset(m, 0, sizeof *m);
    m->storage = calloc(1, sizeof *m->storage);
    if (!m->storage) return status_fail(ST_OOM, "%s: out of memory", path);
    Status st;
    if (is_directory(path)) {
        m->format = FORMAT_HF;
        st = llama_load_hf(m, path);
    } else {
        m->format = FORMAT_GGUF;
        st = llama_load_gguf(m, path);
    }
    if (st != ST_OK) llama_free(m);
    return st;
}

void llama_free(LlamaModel *m) {
    if (m->layers) {
        for (int l = 0; l < m->cfg.n_layers; l++) {
            LlamaLayer *ly = &m->layers[l];
            Tensor *ts[] = {&ly->attn_norm, &ly->wq, &ly->wk, &ly->wv, &ly->wo,
                            &ly->mlp_norm, &ly->w_gate, &ly->w_up, &ly->w_down};
            for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) tensor_free(ts[i]);
        }
        free(m->layers);
    }
    tensor_free(&m->lm_head); // before tok_embd: when tied it does not own its memory
    tensor_free(&m->tok_embd);
    tensor_free(&m->final_norm);
    free(m->inv_freq);
    tensor_free(&m->inv_freq_dev);
    if (m->storage) {
        for (int i = 0; i < m->storage->n_shards; i++) safetensors_close(&m->storage->shards[i]);
        free(m->storage->shards);
        if (m->storage->has_gguf) gguf_close(&m->storage->gguf);
        free(m->storage);
    }
    memset(m, 0, sizeof *m);
}

int64_t llama_param_count(const LlamaModel *m) {
    const LlamaConfig *c = &m->cfg;
    int64_t D = c->dim, F = c->ffn_dim, QD = (int64_t)c->n_heads * c->head_dim, KVD = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t per_layer = 2 * D + QD * D + 2 * KVD * D + D * QD + 3 * F * D;
    int64_t n = (int64_t)c->vocab_size * D + D + c->n_layers * per_layer;
    if (!c->tie_embeddings) n += (int64_t)c->vocab_size * D;
    return n;
}
