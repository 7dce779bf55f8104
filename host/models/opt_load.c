// OPT from a Hugging Face directory: config.json + model.safetensors, or the
// shards listed in model.safetensors.index.json. fp32 weights are used in
// place (views of the mapped files); f16 and bf16 ones are converted to fp32.
// Also opt_to_device, opt_free and opt_param_count.
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/json_fields.h"
#include "io/safetensors.h"
#include "opt.h"
#include "runtime/device.h"
#include "runtime/mapped_file.h"

static const Device CPU = {DEV_CPU, 0};

struct OptStorage {
    SafetensorsFile *shards; // [n_shards], kept mapped (f32 weights are views)
    int n_shards;
    char where[1200];        // what messages name: model.safetensors or the index
};

// ---- config.json -------------------------------------------------------------

enum { INT_REQUIRED = JF_REQUIRED | JF_FIRST_OF_LIST, INT_OPTIONAL = JF_FIRST_OF_LIST };

static Status parse_config(json_t *root, void *out, const char *path) {
    OptConfig *c = out;
    json_t *mt = json_object_get(root, "model_type");
    if (json_is_string(mt) && strcmp(json_string_value(mt), "opt") != 0)
        return status_fail(ST_UNSUPPORTED, "%s: model_type '%s' is not an OPT model", path, json_string_value(mt));
    TRY(json_field_int(root, "vocab_size", &c->vocab_size, INT_REQUIRED, 0, path));
    TRY(json_field_int(root, "hidden_size", &c->dim, INT_REQUIRED, 0, path));
    TRY(json_field_int(root, "num_hidden_layers", &c->n_layers, INT_REQUIRED, 0, path));
    TRY(json_field_int(root, "num_attention_heads", &c->n_heads, INT_REQUIRED, 0, path));
    TRY(json_field_int(root, "ffn_dim", &c->ffn_dim, INT_REQUIRED, 0, path));
    TRY(json_field_int(root, "max_position_embeddings", &c->max_position, INT_REQUIRED, 0, path));
    TRY(json_field_int(root, "word_embed_proj_dim", &c->embed_dim, INT_OPTIONAL, c->dim, path));
    TRY(json_field_bool(root, "do_layer_norm_before", &c->pre_norm, JF_OPTIONAL, true, path));
    bool remove_final = false;
    TRY(json_field_bool(root, "_remove_final_layer_norm", &remove_final, JF_OPTIONAL, false, path));
    c->final_norm = c->pre_norm && !remove_final;
    TRY(json_field_bool(root, "enable_bias", &c->bias, JF_OPTIONAL, true, path));
    TRY(json_field_bool(root, "layer_norm_elementwise_affine", &c->ln_affine, JF_OPTIONAL, true, path));
    TRY(json_field_bool(root, "tie_word_embeddings", &c->tie_embeddings, JF_OPTIONAL, true, path));
    TRY(json_field_int(root, "bos_token_id", &c->bos_token_id, INT_OPTIONAL, 2, path));
    TRY(json_field_int(root, "eos_token_id", &c->eos_token_id, INT_OPTIONAL, 2, path));
    TRY(json_field_int(root, "pad_token_id", &c->pad_token_id, INT_OPTIONAL, 1, path));
    const char *act;
    TRY(json_field_string(root, "activation_function", &act, JF_OPTIONAL, "relu", path));
    if (strcmp(act, "relu") == 0)
        c->act = ACT_RELU;
    else if (strcmp(act, "gelu") == 0)
        c->act = ACT_GELU;
    else
        return status_fail(ST_UNSUPPORTED, "%s: activation_function '%s' is not supported (relu, gelu)", path, act);
    c->ln_eps = 1e-5f;
#define POSITIVE(field, key) \
    if (c->field <= 0) return status_fail(ST_FORMAT, "%s: '%s' must be positive (got %d)", path, key, (int)c->field)
    POSITIVE(vocab_size, "vocab_size");
    POSITIVE(dim, "hidden_size");
    POSITIVE(ffn_dim, "ffn_dim");
    POSITIVE(n_layers, "num_hidden_layers");
    POSITIVE(n_heads, "num_attention_heads");
    POSITIVE(max_position, "max_position_embeddings");
    POSITIVE(embed_dim, "word_embed_proj_dim");
#undef POSITIVE
    if (c->dim % c->n_heads != 0)
        return status_fail(ST_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path, c->dim,
                           c->n_heads);
    c->head_dim = c->dim / c->n_heads;
    return ST_OK;
}

// ---- weights -----------------------------------------------------------------

static Status open_shards(OptStorage *sto, const char *dir) {
    return safetensors_open_dir(dir, &sto->shards, &sto->n_shards, sto->where, sizeof sto->where);
}

// The tensor `name` (under decoder: "model.decoder.", "decoder." or no prefix;
// top-level: as given) checked for shape [rows, cols] (cols 0: [rows]) as an
// fp32 CPU tensor. Absent and required: ST_FORMAT naming the file and the
// tensor; absent and optional: *out stays empty.
static Status get_tensor(const OptModel *m, const char *name, bool in_decoder, int64_t rows, int64_t cols,
                         bool required, Tensor *out) {
    static const char *prefixes[] = {"model.decoder.", "decoder.", ""};
    const OptStorage *sto = m->storage;
    const SafetensorsFile *file = NULL;
    const SafeTensor *t = NULL;
    char full[200];
    for (int p = 0; p < (in_decoder ? 3 : 1) && !t; p++) {
        snprintf(full, sizeof full, "%s%s", in_decoder ? prefixes[p] : "", name);
        for (int i = 0; i < sto->n_shards && !t; i++) {
            file = &sto->shards[i];
            t = safetensors_find(file, full);
        }
    }
    if (!t) {
        if (!required) return ST_OK;
        return status_fail(ST_FORMAT, "%s: missing tensor '%s%s'", sto->where, in_decoder ? "model.decoder." : "",
                           name);
    }
    return safetensors_weight_f32(file, t, rows, cols, out);
}

// A LayerNorm's weight and bias, or ones and zeros when it has none (layer_norm_elementwise_affine false).
static Status get_norm(const OptModel *m, const char *prefix, Tensor *w, Tensor *b) {
    int64_t D = m->cfg.dim;
    if (!m->cfg.ln_affine) {
        TRY(tensor_alloc_1d(w, DT_F32, CPU, D));
        TRY(tensor_alloc_1d(b, DT_F32, CPU, D));
        for (int64_t i = 0; i < D; i++) ((float *)w->data)[i] = 1.0f;
        return ST_OK;
    }
    char name[160];
    snprintf(name, sizeof name, "%s.weight", prefix);
    TRY(get_tensor(m, name, true, D, 0, true, w));
    snprintf(name, sizeof name, "%s.bias", prefix);
    return get_tensor(m, name, true, D, 0, true, b);
}

// A Linear's weight [rows, cols] and, with enable_bias, its bias [rows].
static Status get_linear(const OptModel *m, const char *prefix, int64_t rows, int64_t cols, Tensor *w, Tensor *b) {
    char name[160];
    snprintf(name, sizeof name, "%s.weight", prefix);
    TRY(get_tensor(m, name, true, rows, cols, true, w));
    if (!m->cfg.bias) return ST_OK;
    snprintf(name, sizeof name, "%s.bias", prefix);
    return get_tensor(m, name, true, rows, 0, true, b);
}

static Status load_weights(OptModel *m) {
    const OptConfig *c = &m->cfg;
    int64_t D = c->dim, F = c->ffn_dim, V = c->vocab_size, E = c->embed_dim;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return status_fail(ST_OOM, "out of memory");
    TRY(get_tensor(m, "embed_tokens.weight", true, V, E, true, &m->tok_embd));
    TRY(get_tensor(m, "embed_positions.weight", true, (int64_t)c->max_position + 2, D, true, &m->pos_embd));
    if (E != D) {
        TRY(get_tensor(m, "project_in.weight", true, D, E, true, &m->project_in));
        TRY(get_tensor(m, "project_out.weight", true, E, D, true, &m->project_out));
    }
    if (c->final_norm) TRY(get_norm(m, "final_layer_norm", &m->final_w, &m->final_b));
    if (c->tie_embeddings) {
        m->lm_head = m->tok_embd;
        m->lm_head.owns = false;
    } else {
        TRY(get_tensor(m, "lm_head.weight", false, V, E, true, &m->lm_head));
    }
    for (int l = 0; l < c->n_layers; l++) {
        OptLayer *ly = &m->layers[l];
        char p[96];
#define PFX(what) (snprintf(p, sizeof p, "layers.%d.%s", l, what), p)
        TRY(get_norm(m, PFX("self_attn_layer_norm"), &ly->ln1_w, &ly->ln1_b));
        TRY(get_linear(m, PFX("self_attn.q_proj"), D, D, &ly->wq, &ly->bq));
        TRY(get_linear(m, PFX("self_attn.k_proj"), D, D, &ly->wk, &ly->bk));
        TRY(get_linear(m, PFX("self_attn.v_proj"), D, D, &ly->wv, &ly->bv));
        TRY(get_linear(m, PFX("self_attn.out_proj"), D, D, &ly->wo, &ly->bo));
        TRY(get_norm(m, PFX("final_layer_norm"), &ly->ln2_w, &ly->ln2_b));
        TRY(get_linear(m, PFX("fc1"), F, D, &ly->w1, &ly->b1));
        TRY(get_linear(m, PFX("fc2"), D, F, &ly->w2, &ly->b2));
#undef PFX
    }
    return ST_OK;
}

static void note_dtypes(OptModel *m) {
    bool seen[4] = {false};
    for (int i = 0; i < m->storage->n_shards; i++)
        for (size_t j = 0; j < m->storage->shards[i].n; j++) {
            DType d = m->storage->shards[i].tensors[j].dtype;
            if ((int)d >= 0 && (int)d < 4) seen[d] = true;
        }
    m->source_dtype[0] = '\0';
    for (int d = 0; d < 4; d++) {
        if (!seen[d]) continue;
        if (m->source_dtype[0]) strncat(m->source_dtype, "+", sizeof m->source_dtype - strlen(m->source_dtype) - 1);
        strncat(m->source_dtype, dtype_name((DType)d), sizeof m->source_dtype - strlen(m->source_dtype) - 1);
    }
}

Status opt_load(OptModel *m, const char *dir) {
    memset(m, 0, sizeof *m);
    m->dev = CPU;
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text;
    TRY(read_text_file(path, &text, NULL));
    Status st = json_fields_parse(text, path, parse_config, &m->cfg);
    free(text);
    TRY(st);
    m->storage = calloc(1, sizeof *m->storage);
    if (!m->storage) return status_fail(ST_OOM, "out of memory");
    st = open_shards(m->storage, dir);
    if (st == ST_OK) {
        note_dtypes(m);
        st = load_weights(m);
    }
    if (st != ST_OK) opt_free(m);
    return st;
}

// Every weight tensor of a model with whether it is a matrix (is_matrix may be NULL).
// Absent optional tensors are skipped; a tied lm_head is not listed.
static int weight_list(OptModel *m, Tensor **out, bool *is_matrix) {
    int n = 0;
#define ADD(t, mat) \
    do { \
        if ((t)->data) { \
            if (is_matrix) is_matrix[n] = (mat); \
            out[n++] = (t); \
        } \
    } while (0)
    ADD(&m->tok_embd, true);
    ADD(&m->pos_embd, true);
    ADD(&m->project_in, true);
    ADD(&m->project_out, true);
    ADD(&m->final_w, false);
    ADD(&m->final_b, false);
    if (!m->cfg.tie_embeddings) ADD(&m->lm_head, true);
    for (int l = 0; m->layers && l < m->cfg.n_layers; l++) {
        OptLayer *y = &m->layers[l];
        Tensor *mats[] = {&y->wq, &y->wk, &y->wv, &y->wo, &y->w1, &y->w2};
        Tensor *vecs[] = {&y->ln1_w, &y->ln1_b, &y->bq, &y->bk, &y->bv, &y->bo, &y->ln2_w, &y->ln2_b, &y->b1, &y->b2};
        for (int i = 0; i < 6; i++) ADD(mats[i], true);
        for (int i = 0; i < 10; i++) ADD(vecs[i], false);
    }
#undef ADD
    return n;
}

static int weight_slots(const OptModel *m) { return 8 + 16 * m->cfg.n_layers; }

void opt_free(OptModel *m) {
    int cap = weight_slots(m);
    Tensor **ws = malloc((size_t)cap * sizeof *ws);
    if (m->cfg.tie_embeddings) memset(&m->lm_head, 0, sizeof m->lm_head); // a view of tok_embd
    if (ws) {
        int n = weight_list(m, ws, NULL);
        for (int i = 0; i < n; i++) tensor_free(ws[i]);
        free(ws);
    }
    tensor_free(&m->lm_head);
    free(m->layers);
    if (m->storage) {
        for (int i = 0; i < m->storage->n_shards; i++) safetensors_close(&m->storage->shards[i]);
        free(m->storage->shards);
        free(m->storage);
    }
    memset(m, 0, sizeof *m);
}

int64_t opt_param_count(const OptModel *m) {
    const OptConfig *c = &m->cfg;
    int64_t D = c->dim, F = c->ffn_dim, V = c->vocab_size, E = c->embed_dim;
    int64_t per_layer = 4 * D * D + 2 * F * D + (c->bias ? 4 * D + F + D : 0) + (c->ln_affine ? 4 * D : 0);
    int64_t n = V * E + ((int64_t)c->max_position + 2) * D + c->n_layers * per_layer;
    if (E != D) n += 2 * E * D;
    if (c->final_norm && c->ln_affine) n += 2 * D;
    if (!c->tie_embeddings) n += V * E;
    return n;
}


Status opt_to_device(OptModel *m, Device dev, DType weight_dtype) {
    if (dev.kind == DEV_CPU) return ST_OK;
    if (m->dev.kind != DEV_CPU) return status_fail(ST_USAGE, "opt_to_device: the model is already on a device");
    if (weight_dtype != DT_BF16 && weight_dtype != DT_F16 && weight_dtype != DT_F32)
        return status_fail(ST_USAGE, "device weights must be bf16, f16 or f32");
    int cap = weight_slots(m);
    Tensor **ws = malloc((size_t)cap * sizeof *ws);
    bool *is_matrix = malloc((size_t)cap * sizeof *is_matrix);
    if (!ws || !is_matrix) {
        free(ws), free(is_matrix);
        return status_fail(ST_OOM, "out of memory");
    }
    int n = weight_list(m, ws, is_matrix);
    Status st = tensors_to_device(ws, is_matrix, n, dev, weight_dtype);
    if (m->cfg.tie_embeddings) {
        m->lm_head = m->tok_embd;
        m->lm_head.owns = false;
    }
    if (st == ST_OK) m->dev = dev;
    free(ws), free(is_matrix);
    return st;
}
