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
#include "io/json_fields.h"
#include "io/safetensors.h"
#include "runtime/mapped_file.h"

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
        TRY(json_field_int(root, "num_labels", &c->num_labels, JF_OPTIONAL, 2, path));
    }
    if (c->num_labels <= 0) return status_fail(ST_FORMAT, "%s: key 'id2label' names no label", path);
    json_t *groups = json_object_get(root, "elastilm_label_groups");
    if (groups && !json_is_null(groups)) {
        if (!json_is_array(groups) || json_array_size(groups) < 1 || json_array_size(groups) > ENC_MAX_GROUPS)
            return status_fail(ST_FORMAT, "%s: key 'elastilm_label_groups' must list 1..%d group sizes", path,
                               ENC_MAX_GROUPS);
        c->n_groups = (int)json_array_size(groups);
        for (int g = 0; g < c->n_groups; g++) {
            json_t *v = json_array_get(groups, (size_t)g);
            if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > (1 << 20))
                return status_fail(ST_FORMAT, "%s: elastilm_label_groups[%d] must be a positive integer", path, g);
            c->group_size[g] = (int)json_integer_value(v);
        }
    }
    return ST_OK;
}

static Status parse_config(json_t *root, void *out, const char *path) {
    EncoderConfig *c = out;
    json_t *mt = json_object_get(root, "model_type");
    if (!json_is_string(mt)) return status_fail(ST_FORMAT, "%s: missing key 'model_type'", path);
    const char *type = json_string_value(mt);
    if (strcmp(type, "bert") == 0) c->arch = ENC_BERT;
    else if (strcmp(type, "mobilebert") == 0) c->arch = ENC_MOBILEBERT;
    else return status_fail(ST_UNSUPPORTED, "%s: model_type '%s' is not a BERT-family model (bert, mobilebert)", path,
                            type);
    TRY(json_field_int(root, "vocab_size", &c->vocab_size, JF_REQUIRED, 0, path));
    TRY(json_field_int(root, "hidden_size", &c->dim, JF_REQUIRED, 0, path));
    TRY(json_field_int(root, "num_hidden_layers", &c->n_layers, JF_REQUIRED, 0, path));
    TRY(json_field_int(root, "num_attention_heads", &c->n_heads, JF_REQUIRED, 0, path));
    TRY(json_field_int(root, "intermediate_size", &c->ffn_dim, JF_REQUIRED, 0, path));
    TRY(json_field_int(root, "max_position_embeddings", &c->max_position, JF_OPTIONAL, 512, path));
    TRY(json_field_int(root, "type_vocab_size", &c->type_vocab, JF_OPTIONAL, 2, path));
    TRY(json_field_int(root, "pad_token_id", &c->pad_token_id, JF_OPTIONAL, 0, path));
    TRY(json_field_float(root, "layer_norm_eps", &c->ln_eps, JF_OPTIONAL, 1e-12f, path));
    const char *act, *pet;
    TRY(json_field_string(root, "hidden_act", &act, JF_OPTIONAL, c->arch == ENC_BERT ? "gelu" : "relu", path));
    if (strcmp(act, "gelu") == 0) c->act = ACT_GELU;
    else if (strcmp(act, "relu") == 0) c->act = ACT_RELU;
    else return status_fail(ST_UNSUPPORTED, "%s: hidden_act '%s' is not supported (gelu, relu)", path, act);
    TRY(json_field_string(root, "position_embedding_type", &pet, JF_OPTIONAL, "absolute", path));
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
        TRY(json_field_int(root, "embedding_size", &c->embedding_size, JF_OPTIONAL, 128, path));
        TRY(json_field_int(root, "intra_bottleneck_size", &intra, JF_OPTIONAL, 128, path));
        TRY(json_field_bool(root, "use_bottleneck", &c->use_bottleneck, JF_OPTIONAL, true, path));
        TRY(json_field_int(root, "true_hidden_size", &c->inner, JF_OPTIONAL, c->use_bottleneck ? intra : c->dim, path));
        TRY(json_field_int(root, "num_feedforward_networks", &c->n_ffn, JF_OPTIONAL, 4, path));
        TRY(json_field_bool(root, "trigram_input", &c->trigram, JF_OPTIONAL, true, path));
        TRY(json_field_bool(root, "key_query_shared_bottleneck", &c->kq_shared_bottleneck, JF_OPTIONAL, true, path));
        TRY(json_field_bool(root, "use_bottleneck_attention", &c->use_bottleneck_attention, JF_OPTIONAL, false, path));
        TRY(json_field_string(root, "normalization_type", &norm, JF_OPTIONAL, "no_norm", path));
        if (strcmp(norm, "no_norm") == 0) c->no_norm = true;
        else if (strcmp(norm, "layer_norm") == 0) c->no_norm = false;
        else return status_fail(ST_UNSUPPORTED, "%s: normalization_type '%s' is not supported (no_norm, layer_norm)",
                                path, norm);
        TRY(json_field_bool(root, "classifier_activation", &c->pooler, JF_OPTIONAL, true, path));
        if (c->use_bottleneck && intra != c->inner)
            return status_fail(ST_FORMAT, "%s: intra_bottleneck_size %d differs from true_hidden_size %d", path, intra,
                               c->inner);
        c->head_dim = c->n_heads > 0 ? c->inner / c->n_heads : 0;
    }
    TRY(parse_head(root, c, path));
    TRY(encoder_config_check(c, path));
    // whether the weights include pooler.dense: BERT's classes build it except for a token head;
    // MobileBERT's with classifier_activation, except for a token head (MobileBertForTokenClassification
    // has no pooler; with classifier_activation false the sequence head reads [CLS] directly)
    c->pooler = c->head != HEAD_TOKEN && (c->arch == ENC_BERT || c->pooler);
    return json_field_bool(root, "elastilm_pooler", &c->pooler, JF_OPTIONAL, c->pooler, path);
}

Status encoder_config_parse(EncoderConfig *c, const char *text, const char *what) {
    memset(c, 0, sizeof *c);
    return json_fields_parse(text, what, parse_config, c);
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
