// GGUF (llama.cpp) checkpoints: llama.* metadata -> LlamaConfig, tensors
// dequantized to fp32. llama.cpp's converter permutes the rows of the Q and K
// projections so that rotary pairs are adjacent (interleaved layout); they are
// permuted back here, so the model computes exactly what the Hugging Face
// checkpoint computes with rotate_half.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama_internal.h"

static void gguf_name(WeightRole role, int layer, char *buf, size_t n) {
    static const char *layer_fmt[] = {
        [W_ATTN_NORM] = "blk.%d.attn_norm.weight", [W_WQ] = "blk.%d.attn_q.weight",
        [W_WK] = "blk.%d.attn_k.weight",           [W_WV] = "blk.%d.attn_v.weight",
        [W_WO] = "blk.%d.attn_output.weight",      [W_MLP_NORM] = "blk.%d.ffn_norm.weight",
        [W_GATE] = "blk.%d.ffn_gate.weight",       [W_UP] = "blk.%d.ffn_up.weight",
        [W_DOWN] = "blk.%d.ffn_down.weight",
    };
    switch (role) {
    case W_TOK_EMBD: snprintf(buf, n, "token_embd.weight"); break;
    case W_FINAL_NORM: snprintf(buf, n, "output_norm.weight"); break;
    case W_LM_HEAD: snprintf(buf, n, "output.weight"); break;
    default: snprintf(buf, n, layer_fmt[role], layer); break;
    }
}

// Rows of head h come as (i, half) pairs, i < hd/2: GGUF row h*hd + 2i + half
// holds Hugging Face row h*hd + half*hd/2 + i.
static Status unpermute_rows(Tensor *w, int n_heads, int head_dim) {
    int64_t cols = w->shape[1];
    size_t row_bytes = (size_t)cols * sizeof(float);
    float *tmp = malloc(row_bytes * (size_t)head_dim);
    if (!tmp) return status_fail(ST_OOM, "out of memory");
    for (int h = 0; h < n_heads; h++) {
        float *head = tensor_row_f32(w, (int64_t)h * head_dim);
        memcpy(tmp, head, row_bytes * (size_t)head_dim);
        for (int i = 0; i < head_dim / 2; i++)
            for (int half = 0; half < 2; half++)
                memcpy(head + (int64_t)(half * head_dim / 2 + i) * cols, tmp + (int64_t)(2 * i + half) * cols, row_bytes);
    }
    free(tmp);
    return ST_OK;
}

static Status gguf_get(LlamaModel *m, WeightRole role, int layer, int64_t rows, int64_t cols, Tensor *out, bool *found) {
    const GgufFile *g = &m->storage->gguf;
    char name[96];
    gguf_name(role, layer, name, sizeof name);
    const GgufTensorInfo *t = gguf_find_tensor(g, name);
    *found = t != NULL;
    if (!t) return ST_OK;
    // GGML lists the innermost dimension first: a [rows, cols] weight is ne = {cols, rows}.
    bool ok = cols ? (t->n_dims == 2 && t->ne[0] == (uint64_t)cols && t->ne[1] == (uint64_t)rows)
                   : (t->n_dims == 1 && t->ne[0] == (uint64_t)rows);
    if (!ok) {
        char have[96];
        int used = 0;
        for (uint32_t i = 0; i < t->n_dims; i++)
            used += snprintf(have + used, sizeof have - (size_t)used, i ? ", %llu" : "%llu", (unsigned long long)t->ne[i]);
        if (cols)
            return status_fail(ST_FORMAT, "%s: tensor '%s' has ne [%s], the llama.* metadata implies [%lld, %lld]",
                               g->file.path, name, have, (long long)cols, (long long)rows);
        return status_fail(ST_FORMAT, "%s: tensor '%s' has ne [%s], the llama.* metadata implies [%lld]", g->file.path,
                           name, have, (long long)rows);
    }
    int64_t shape[2] = {rows, cols};
    TRY(tensor_alloc(out, DT_F32, (Device){DEV_CPU, 0}, cols ? 2 : 1, shape));
    TRY(gguf_tensor_to_f32(g, t, out->data));
    if (role == W_WQ) return unpermute_rows(out, m->cfg.n_heads, m->cfg.head_dim);
    if (role == W_WK) return unpermute_rows(out, m->cfg.n_kv_heads, m->cfg.head_dim);
    return ST_OK;
}

static Status get_u32_or(const GgufFile *g, const char *key, int *out, int fallback) {
    if (!gguf_find_kv(g, key)) {
        *out = fallback;
        return ST_OK;
    }
    uint32_t v;
    TRY(gguf_get_u32(g, key, &v));
    *out = (int)v;
    return ST_OK;
}

static Status read_rope_scaling(const GgufFile *g, LlamaConfig *c) {
    const GgufKV *kv = gguf_find_kv(g, "llama.rope.scaling.type");
    if (!kv) return ST_OK;
    GgufStr type;
    TRY(gguf_get_str(g, "llama.rope.scaling.type", &type));
    if (type.len == 4 && memcmp(type.ptr, "none", 4) == 0) return ST_OK;
    if (type.len == 6 && memcmp(type.ptr, "linear", 6) == 0) {
        c->rope_scaling.type = ROPE_LINEAR;
        return gguf_get_f32(g, "llama.rope.scaling.factor", &c->rope_scaling.factor);
    }
    return status_fail(ST_UNSUPPORTED, "%s: llama.rope.scaling.type '%.*s' is not supported (none, linear)", g->file.path,
                       (int)type.len, type.ptr);
}

static Status config_from_gguf(const GgufFile *g, LlamaConfig *c) {
    const char *path = g->file.path;
    GgufStr arch;
    TRY(gguf_get_str(g, "general.architecture", &arch));
    if (arch.len != 5 || memcmp(arch.ptr, "llama", 5) != 0)
        return status_fail(ST_UNSUPPORTED, "%s: general.architecture '%.*s' is not llama", path, (int)arch.len, arch.ptr);
    uint32_t u;
    TRY(gguf_get_u32(g, "llama.embedding_length", &u)); c->dim = (int)u;
    TRY(gguf_get_u32(g, "llama.feed_forward_length", &u)); c->ffn_dim = (int)u;
    TRY(gguf_get_u32(g, "llama.block_count", &u)); c->n_layers = (int)u;
    TRY(gguf_get_u32(g, "llama.attention.head_count", &u)); c->n_heads = (int)u;
    TRY(get_u32_or(g, "llama.attention.head_count_kv", &c->n_kv_heads, c->n_heads));
    TRY(get_u32_or(g, "llama.attention.key_length", &c->head_dim, c->n_heads > 0 ? c->dim / c->n_heads : 0));
    TRY(get_u32_or(g, "llama.context_length", &c->max_position, 2048));
    TRY(gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &c->rms_eps));
    c->rope_theta = 10000.0f;
    if (gguf_find_kv(g, "llama.rope.freq_base")) TRY(gguf_get_f32(g, "llama.rope.freq_base", &c->rope_theta));
    TRY(read_rope_scaling(g, c));
    const GgufTensorInfo *embd = gguf_find_tensor(g, "token_embd.weight");
    if (!embd || embd->n_dims != 2) return status_fail(ST_FORMAT, "%s: missing tensor 'token_embd.weight'", path);
    TRY(get_u32_or(g, "llama.vocab_size", &c->vocab_size, (int)embd->ne[1]));
    c->tie_embeddings = gguf_find_tensor(g, "output.weight") == NULL;
    TRY(get_u32_or(g, "tokenizer.ggml.bos_token_id", &c->bos_token_id, -1));
    TRY(get_u32_or(g, "tokenizer.ggml.eos_token_id", &c->eos_token_id, -1));
    return llama_config_check(c, path);
}

// Llama-3.1-style scaling is stored by llama.cpp as per-frequency divisors.
static Status apply_rope_freqs(LlamaModel *m) {
    const GgufFile *g = &m->storage->gguf;
    const GgufTensorInfo *t = gguf_find_tensor(g, "rope_freqs.weight");
    if (!t) return ST_OK;
    int half = m->cfg.head_dim / 2;
    if (t->n_dims != 1 || t->ne[0] != (uint64_t)half)
        return status_fail(ST_FORMAT, "%s: tensor 'rope_freqs.weight' must have %d entries", g->file.path, half);
    float *factors = malloc((size_t)half * sizeof(float));
    if (!factors) return status_fail(ST_OOM, "out of memory");
    Status st = gguf_tensor_to_f32(g, t, factors);
    for (int i = 0; st == ST_OK && i < half; i++) {
        if (!(factors[i] > 0.0f))
            st = status_fail(ST_FORMAT, "%s: tensor 'rope_freqs.weight' has a non-positive factor", g->file.path);
        else
            m->inv_freq[i] /= factors[i];
    }
    free(factors);
    if (st == ST_OK) m->cfg.rope_scaling.type = ROPE_FREQ_FACTORS;
    return st;
}

static void note_types(LlamaModel *m) {
    const GgufFile *g = &m->storage->gguf;
    bool seen[64] = {false};
    m->source_dtype[0] = '\0';
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        uint32_t ty = g->tensors[i].type;
        if (ty >= 64 || seen[ty]) continue;
        seen[ty] = true;
        size_t used = strlen(m->source_dtype);
        snprintf(m->source_dtype + used, sizeof m->source_dtype - used, "%s%s", used ? "+" : "", ggml_type_name(ty));
    }
}

static void note_tokenizer(LlamaModel *m) {
    GgufStr model;
    const GgufFile *g = &m->storage->gguf;
    if (!gguf_find_kv(g, "tokenizer.ggml.model") || gguf_get_str(g, "tokenizer.ggml.model", &model) != ST_OK) return;
    const char *kind = "unknown";
    if (model.len == 4 && memcmp(model.ptr, "gpt2", 4) == 0) kind = "byte-level BPE";
    else if (model.len == 5 && memcmp(model.ptr, "llama", 5) == 0) kind = "SentencePiece-style BPE";
    else if (model.len == 4 && memcmp(model.ptr, "bert", 4) == 0) kind = "WordPiece";
    snprintf(m->tokenizer_kind, sizeof m->tokenizer_kind, "%s (gguf '%.*s')", kind, (int)(model.len > 16 ? 16 : model.len),
             model.ptr);
}

Status llama_load_gguf(LlamaModel *m, const char *path) {
    TRY(gguf_open(&m->storage->gguf, path));
    m->storage->has_gguf = true;
    TRY(config_from_gguf(&m->storage->gguf, &m->cfg));
    note_types(m);
    note_tokenizer(m);
    TRY(llama_load_weights(m, gguf_get, path));
    return apply_rope_freqs(m);
}
