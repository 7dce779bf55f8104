// Hugging Face config.json -> LlamaConfig. Both the transformers 4 layout
// (rope_theta + rope_scaling) and the transformers 5 one (rope_parameters)
// are read.
#include <jansson.h>
#include <string.h>

#include "io/json_fields.h"
#include "llama_internal.h"

// Integer fields may be lists (their first element), as Llama-3's eos_token_id.
enum { INT_REQUIRED = JF_REQUIRED | JF_FIRST_OF_LIST, INT_OPTIONAL = JF_FIRST_OF_LIST };

// rope_scaling (v4) or rope_parameters (v5): {"rope_type" | "type": ..., "factor": ..., ...}
static Status parse_rope(json_t *obj, const char *key, LlamaConfig *c, const char *path) {
    if (!obj || json_is_null(obj)) return ST_OK;
    if (!json_is_object(obj)) return status_fail(ST_FORMAT, "%s: key '%s' must be an object", path, key);
    json_t *jt = json_object_get(obj, "rope_type");
    if (!jt) jt = json_object_get(obj, "type");
    const char *type = json_is_string(jt) ? json_string_value(jt) : "default";
    RopeScaling *r = &c->rope_scaling;
    if (json_object_get(obj, "rope_theta"))
        TRY(json_field_float(obj, "rope_theta", &c->rope_theta, JF_REQUIRED, 0, path));
    if (strcmp(type, "default") == 0) {
        r->type = ROPE_DEFAULT;
    } else if (strcmp(type, "linear") == 0) {
        r->type = ROPE_LINEAR;
        TRY(json_field_float(obj, "factor", &r->factor, JF_REQUIRED, 0, path));
    } else if (strcmp(type, "llama3") == 0) {
        r->type = ROPE_LLAMA3;
        TRY(json_field_float(obj, "factor", &r->factor, JF_REQUIRED, 0, path));
        TRY(json_field_float(obj, "low_freq_factor", &r->low_freq_factor, JF_REQUIRED, 0, path));
        TRY(json_field_float(obj, "high_freq_factor", &r->high_freq_factor, JF_REQUIRED, 0, path));
        TRY(json_field_int(obj, "original_max_position_embeddings", &r->original_max_position, INT_REQUIRED, 0, path));
    } else {
        return status_fail(ST_UNSUPPORTED, "%s: %s type '%s' is not supported (default, linear, llama3)", path, key, type);
    }
    return ST_OK;
}

static Status parse_config(json_t *root, void *out, const char *path) {
    LlamaConfig *c = out;
    json_t *mt = json_object_get(root, "model_type");
    if (!json_is_string(mt)) return status_fail(ST_FORMAT, "%s: missing key 'model_type'", path);
    if (strcmp(json_string_value(mt), "llama") != 0)
        return status_fail(ST_UNSUPPORTED, "%s: model_type '%s' is not a LLaMA-family model", path, json_string_value(mt));
    TRY(json_field_int(root, "vocab_size", &c->vocab_size, INT_REQUIRED, 0, path));
    TRY(json_field_int(root, "hidden_size", &c->dim, INT_REQUIRED, 0, path));
    TRY(json_field_int(root, "intermediate_size", &c->ffn_dim, INT_REQUIRED, 0, path));
    TRY(json_field_int(root, "num_hidden_layers", &c->n_layers, INT_REQUIRED, 0, path));
    TRY(json_field_int(root, "num_attention_heads", &c->n_heads, INT_REQUIRED, 0, path));
    TRY(json_field_int(root, "num_key_value_heads", &c->n_kv_heads, INT_OPTIONAL, c->n_heads, path));
    TRY(json_field_int(root, "head_dim", &c->head_dim, INT_OPTIONAL, c->n_heads > 0 ? c->dim / c->n_heads : 0, path));
    TRY(json_field_int(root, "max_position_embeddings", &c->max_position, INT_OPTIONAL, 2048, path));
    TRY(json_field_float(root, "rms_norm_eps", &c->rms_eps, JF_REQUIRED, 0, path));
    TRY(json_field_float(root, "rope_theta", &c->rope_theta, JF_OPTIONAL, 10000.0f, path));
    TRY(json_field_bool(root, "tie_word_embeddings", &c->tie_embeddings, JF_OPTIONAL, false, path));
    TRY(json_field_int(root, "bos_token_id", &c->bos_token_id, INT_OPTIONAL, -1, path));
    TRY(json_field_int(root, "eos_token_id", &c->eos_token_id, INT_OPTIONAL, -1, path));
    TRY(parse_rope(json_object_get(root, "rope_scaling"), "rope_scaling", c, path));
    TRY(parse_rope(json_object_get(root, "rope_parameters"), "rope_parameters", c, path));
    bool bias = false;
    TRY(json_field_bool(root, "attention_bias", &bias, JF_OPTIONAL, false, path));
    if (bias) return status_fail(ST_UNSUPPORTED, "%s: attention_bias = true is not supported", path);
    TRY(json_field_bool(root, "mlp_bias", &bias, JF_OPTIONAL, false, path));
    if (bias) return status_fail(ST_UNSUPPORTED, "%s: mlp_bias = true is not supported", path);
    json_t *act = json_object_get(root, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0))
        return status_fail(ST_UNSUPPORTED, "%s: hidden_act must be \"silu\"", path);
    return llama_config_check(c, path);
}

Status llama_config_from_json(LlamaConfig *c, const char *text, const char *path) {
    memset(c, 0, sizeof *c);
    return json_fields_parse(text, path, parse_config, c);
}
