// A Hugging Face BERT / MobileBERT directory -> Encoder: config.json (model
// type, sizes, head from "architectures" + id2label) and model.safetensors
// through io/safetensors (names with or without the "bert." / "mobilebert."
// prefix; F32, F16 or BF16, copied into the model's own f32 buffer; tensors the
// table does not name, such as the I64 embeddings.position_ids, are not read).
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encoder_internal.h"
#include "io/safetensors.h"
#include "runtime/mapped_file.h"

static Status get_int(json_t *root, const char *key, int *out, bool required, int fallback, const char *path) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required) return status_fail(ST_FORMAT, "%s: missing key '%s'", path, key);
        *out = fallback;
        return ST_OK;
    }
    if (!json_is_integer(v) || json_integer_value(v) < -1 || json_integer_value(v) > (1 << 30))
        return status_fail(ST_FORMAT, "%s: key '%s' must be an integer", path, key);
    *out = (int)json_integer_value(v);
    return ST_OK;
}

static Status get_float(json_t *root, const char *key, float *out, float fallback, const char *path) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = fallback;
        return ST_OK;
    }
    if (!json_is_number(v)) return status_fail(ST_FORMAT, "%s: key '%s' must be a number", path, key);
    *out = (float)json_number_value(v);
    return ST_OK;
}

static Status get_bool(json_t *root, const char *key, bool *out, bool fallback, const char *path) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = fallback;
        return ST_OK;
    }
    if (!json_is_boolean(v)) return status_fail(ST_FORMAT, "%s: key '%s' must be true or false", path, key);
    *out = json_is_true(v);
    return ST_OK;
}

static Status get_string(json_t *root, const char *key, const char **out, const char *fallback, const char *path) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = fallback;
        return ST_OK;
    }
    if (!json_is_string(v)) return status_fail(ST_FORMAT, "%s: key '%s' must be a string", path, key);
    *out = json_string_value(v);
    return ST_OK;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

// The head from "architectures" and the label count from id2label / num_labels.
static Status parse_head(json_t *root, EncoderConfig *c, const char *path) {
    json_t *arch = json_object_get(root, "architectures");
    c->head = HEAD_NONE;
    if (arch && !json_is_null(arch)) {
        if (!json_is_array(arch)) return status_fail(ST_FORMAT, "%s: key 'architectures' must be a list", path);
        size_t i;
        json_t *a;
        json_array_foreach(arch, i, a) {
            if (!json_is_string(a)) return status_fail(ST_FORMAT, "%s: key 'architectures' must list strings", path);
            const char *s = json_string_value(a);
            if (ends_with(s, "ForTokenClassification")) c->head = HEAD_TOKEN;
            else if (ends_with(s, "ForSequenceClassification")) c->head = HEAD_SEQUENCE;
            if (c->head != HEAD_NONE) break;
        }
    }
    if (c->head == HEAD_NONE) return ST_OK;
    json_t *id2label = json_object_get(root, "id2label");
    if (id2label && !json_is_null(id2label)) {
        if (!json_is_object(id2label)) return status_fail(ST_FORMAT, "%s: key 'id2label' must be an object", path);
        c->num_labels = (int)json_object_size(id2label);
    } else {
        TRY(get_int(root, "num_labels", &c->num_labels, false, 2, path));
    }
    if (c->num_labels <= 0) return status_fail(ST_FORMAT, "%s: key 'id2label' names no label", path);
    return ST_OK;
}

static Status parse_config(EncoderConfig *c, json_t *root, const char *path) {
    if (!json_is_object(root)) return status_fail(ST_FORMAT, "%s: not a JSON object", path);
    json_t *mt = json_object_get(root, "model_type");
    if (!json_is_string(mt)) return status_fail(ST_FORMAT, "%s: missing key 'model_type'", path);
    const char *type = json_string_value(mt);
    if (strcmp(type, "bert") == 0) c->arch = ENC_BERT;
    else if (strcmp(type, "mobilebert") == 0) c->arch = ENC_MOBILEBERT;
    else return status_fail(ST_UNSUPPORTED, "%s: model_type '%s' is not a BERT-family model (bert, mobilebert)", path,
                            type);
    TRY(get_int(root, "vocab_size", &c->vocab_size, true, 0, path));
    TRY(get_int(root, "hidden_size", &c->dim, true, 0, path));
    TRY(get_int(root, "num_hidden_layers", &c->n_layers, true, 0, path));
    TRY(get_int(root, "num_attention_heads", &c->n_heads, true, 0, path));
    TRY(get_int(root, "intermediate_size", &c->ffn_dim, true, 0, path));
    TRY(get_int(root, "max_position_embeddings", &c->max_position, false, 512, path));
    TRY(get_int(root, "type_vocab_size", &c->type_vocab, false, 2, path));
    TRY(get_int(root, "pad_token_id", &c->pad_token_id, false, 0, path));
    TRY(get_float(root, "layer_norm_eps", &c->ln_eps, 1e-12f, path));
    const char *act, *pet;
    TRY(get_string(root, "hidden_act", &act, c->arch == ENC_BERT ? "gelu" : "relu", path));
    if (strcmp(act, "gelu") == 0) c->act = ACT_GELU;
    else if (strcmp(act, "relu") == 0) c->act = ACT_RELU;
    else return status_fail(ST_UNSUPPORTED, "%s: hidden_act '%s' is not supported (gelu, relu)", path, act);
    TRY(get_string(root, "position_embedding_type", &pet, "absolute", path));
    if (strcmp(pet, "absolute") != 0)
        return status_fail(ST_UNSUPPORTED, "%s: position_embedding_type '%s' is not supported (absolute)", path, pet);
    if (c->n_heads <= 0) return status_fail(ST_FORMAT, "%s: key 'num_attention_heads' must be positive", path);
    if (c->arch == ENC_BERT) {
        c->head_dim = c->dim / c->n_heads;
    } else {
        // transformers' MobileBertConfig: true_hidden_size = intra_bottleneck_size with use_bottleneck, else
        // hidden_size, unless config.json names it (then its value is kept)
        const char *norm;
        int intra;
        TRY(get_int(root, "embedding_size", &c->embedding_size, false, 128, path));
        TRY(get_int(root, "intra_bottleneck_size", &intra, false, 128, path));
        TRY(get_bool(root, "use_bottleneck", &c->use_bottleneck, true, path));
        TRY(get_int(root, "true_hidden_size", &c->inner, false, c->use_bottleneck ? intra : c->dim, path));
        TRY(get_int(root, "num_feedforward_networks", &c->n_ffn, false, 4, path));
        TRY(get_bool(root, "trigram_input", &c->trigram, true, path));
        TRY(get_bool(root, "key_query_shared_bottleneck", &c->kq_shared_bottleneck, true, path));
        TRY(get_bool(root, "use_bottleneck_attention", &c->use_bottleneck_attention, false, path));
        TRY(get_string(root, "normalization_type", &norm, "no_norm", path));
        if (strcmp(norm, "no_norm") == 0) c->no_norm = true;
        else if (strcmp(norm, "layer_norm") == 0) c->no_norm = false;
        else return status_fail(ST_UNSUPPORTED, "%s: normalization_type '%s' is not supported (no_norm, layer_norm)",
                                path, norm);
        TRY(get_bool(root, "classifier_activation", &c->pooler, true, path));
        if (c->use_bottleneck && intra != c->inner)
            return status_fail(ST_FORMAT, "%s: intra_bottleneck_size %d differs from true_hidden_size %d", path, intra,
                               c->inner);
        c->head_dim = c->n_heads > 0 ? c->inner / c->n_heads : 0;
    }
    TRY(parse_head(root, c, path));
    return encoder_config_check(c, path);
}

Status encoder_config_parse(EncoderConfig *c, const char *text, const char *what) {
    memset(c, 0, sizeof *c);
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    if (!root) return status_fail(ST_FORMAT, "%s: malformed JSON (line %d: %s)", what, err.line, err.text);
    Status st = parse_config(c, root, what);
    // whether the weights include pooler.dense: BERT's classes build it except for a token head;
    // MobileBERT's with classifier_activation, except for a token head (MobileBertForTokenClassification
    // has no pooler; with classifier_activation false the sequence head reads [CLS] directly)
    if (st == ST_OK) {
        c->pooler = c->head != HEAD_TOKEN && (c->arch == ENC_BERT || c->pooler);
        st = get_bool(root, "elastilm_pooler", &c->pooler, c->pooler, what);
    }
    json_decref(root);
    return st;
}

static Status read_config(EncoderConfig *c, const char *dir) {
    char path[1200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text;
    TRY(read_text_file(path, &text, NULL));
    Status st = encoder_config_parse(c, text, path);
    free(text);
    return st;
}

static void shape_str(const int64_t *shape, int ndim, char *buf, size_t n) {
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

// The file's entry for a table name: prefixed first, then bare (the head of a
// *ForTokenClassification is saved bare beside a prefixed body). NULL when absent.
static const SafeTensor *find(const SafetensorsFile *f, const char *prefix, const char *name) {
    char full[200];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const SafeTensor *t = safetensors_find(f, full);
    if (!t && prefix[0]) t = safetensors_find(f, name);
    return t;
}

static Status copy_weight(const SafetensorsFile *f, const SafeTensor *t, Tensor *dst) {
    const char *path = f->file.path, *name = t->name;
    bool shape_ok = t->ndim == dst->ndim;
    for (int i = 0; shape_ok && i < t->ndim; i++) shape_ok = t->shape[i] == dst->shape[i];
    if (!shape_ok) {
        char have[64], want[64];
        shape_str(t->shape, t->ndim, have, sizeof have);
        shape_str(dst->shape, dst->ndim, want, sizeof want);
        return status_fail(ST_FORMAT, "%s: tensor '%s' has shape %s, config.json implies %s", path, name, have, want);
    }
    if (t->dtype != DT_F32 && t->dtype != DT_F16 && t->dtype != DT_BF16)
        return status_fail(ST_FORMAT, "%s: tensor '%s' has dtype %s; weights must be F32, F16 or BF16", path, name,
                           t->tag);
    if (t->dtype == DT_F32) { // (the mapped data need not be aligned)
        memcpy(dst->data, t->data, t->nbytes);
        return ST_OK;
    }
    // f16 / bf16: widened through an aligned copy
    Tensor src;
    TRY(tensor_alloc(&src, t->dtype, (Device){DEV_CPU, 0}, t->ndim, t->shape));
    memcpy(src.data, t->data, t->nbytes);
    Status st = tensor_copy_convert(dst, &src);
    tensor_free(&src);
    return st;
}

static Status load_weights(Encoder *m, const SafetensorsFile *f, const char *prefix) {
    int n = encoder_params(m, NULL);
    EncoderParam *ps = malloc((size_t)n * sizeof *ps);
    if (!ps) return status_fail(ST_OOM, "out of memory");
    encoder_params(m, ps);
    Status st = ST_OK;
    for (int i = 0; st == ST_OK && i < n; i++) {
        const SafeTensor *t = find(f, prefix, ps[i].name);
        // named as the file would hold it: the body with the file's prefix, the head bare
        bool head = strncmp(ps[i].name, "classifier.", 11) == 0;
        if (!t) st = status_fail(ST_FORMAT, "%s: missing tensor '%s%s'", f->file.path, head ? "" : prefix, ps[i].name);
        else st = copy_weight(f, t, ps[i].t);
    }
    free(ps);
    return st;
}

Status encoder_load(Encoder *m, const char *dir) {
    memset(m, 0, sizeof *m);
    EncoderConfig c;
    TRY(read_config(&c, dir));
    TRY(encoder_arch_check(&c));
    char path[1200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    SafetensorsFile f;
    TRY(safetensors_open(&f, path)); // (position_ids, I64, is listed and never read)
    const char *prefix = c.arch == ENC_BERT ? "bert." : "mobilebert.";
    Status st = ST_OK;
    char full[64];
    snprintf(full, sizeof full, "%sembeddings.word_embeddings.weight", prefix);
    if (!safetensors_find(&f, full)) prefix = ""; // all-MiniLM-L6-v2 and other bare *Model files
    if (!find(&f, prefix, "embeddings.word_embeddings.weight"))
        st = status_fail(ST_FORMAT, "%s: missing tensor 'embeddings.word_embeddings.weight' (with or without '%s')",
                         path, c.arch == ENC_BERT ? "bert." : "mobilebert.");
    if (st == ST_OK && c.arch == ENC_BERT) c.pooler = find(&f, prefix, "pooler.dense.weight") != NULL;
    if (st == ST_OK) st = encoder_alloc(m, &c);
    bool alloc = st == ST_OK;
    if (st == ST_OK) st = load_weights(m, &f, prefix);
    safetensors_close(&f);
    if (st != ST_OK && alloc) encoder_free(m);
    return st;
}
