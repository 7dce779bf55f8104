// Hugging Face config.json -> LlamaConfig. Both the transformers 4 layout
// (rope_theta + rope_scaling) and the transformers 5 one (rope_parameters)
// are read.
#include <jansson.h>
#include <string.h>

#include "llama_internal.h"

static Status get_int(json_t *root, const char *key, int *out, bool required, int fallback, const char *path) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required) return status_fail(ST_FORMAT, "%s: missing key '%s'", path, key);
        *out = fallback;
        return ST_OK;
    }
    if (json_is_array(v) && json_array_size(v) > 0) v = json_array_get(v, 0); // e.g. Llama-3's list of eos ids
    if (!json_is_integer(v) || json_integer_value(v) < -1 || json_integer_value(v) > (1 << 30))
        return status_fail(ST_FORMAT, "%s: key '%s' must be an integer", path, key);
    *out = (int)json_integer_value(v);
    return ST_OK;
}

static Status get_float(json_t *root, const char *key, float *out, bool required, float fallback, const char *path) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required) return status_fail(ST_FORMAT, "%s: missing key '%s'", path, key);
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

// rope_scaling (v4) or rope_parameters (v5): {"rope_type" | "type": ..., "factor": ..., ...}
static Status parse_rope(json_t *obj, const char *key, LlamaConfig *c, const char *path) {
    if (!obj || json_is_null(obj)) return ST_OK;
    if (!json_is_object(obj)) return status_fail(ST_FORMAT, "%s: key '%s' must be an object", path, key);
    json_t *jt = json_object_get(obj, "rope_type");
    if (!jt) jt = json_object_get(obj, "type");
    const char *type = json_is_string(jt) ? json_string_value(jt) : "default";
    RopeScaling *r = &c->rope_scaling;
    if (json_object_get(obj, "rope_theta")) TRY(get_float(obj, "rope_theta", &c->rope_theta, true, 0, path));
    if (strcmp(type, "default") == 0) {
        r->type = ROPE_DEFAULT;
    } else if (strcmp(type, "linear") == 0) {
        r->type = ROPE_LINEAR;
        TRY(get_float(obj, "factor", &r->factor, true, 0, path));
    } else if (strcmp(type, "llama3") == 0) {
        r->type = ROPE_LLAMA3;
        TRY(get_float(obj, "factor", &r->factor, true, 0, path));
        TRY(get_float(obj, "low_freq_factor", &r->low_freq_factor, true, 0, path));
        TRY(get_float(obj, "high_freq_factor", &r->high_freq_factor, true, 0, path));
        TRY(get_int(obj, "original_max_position_embeddings", &r->original_max_position, true, 0, path));
    } else {
        return status_fail(ST_UNSUPPORTED, "%s: %s type '%s' is not supported (default, linear, llama3)", path, key, type);
    }
    return ST_OK;
}

static Status parse_config(LlamaConfig *c, json_t *root, const char *path) {
    if (!json_is_object(root)) return status_fail(ST_FORMAT, "%s: not a JSON object", path);
    json_t *mt = json_object_get(root, "model_type");
    if (!json_is_string(mt)) return status_fail(ST_FORMAT, "%s: missing key 'model_type'", path);
    if (strcmp(json_string_value(mt), "llama") != 0)
        return status_fail(ST_UNSUPPORTED, "%s: model_type '%s' is not a LLaMA-family model", path, json_string_value(mt));
    TRY(get_int(root, "vocab_size", &c->vocab_size, true, 0, path));
    TRY(get_int(root, "hidden_size", &c->dim, true, 0, path));
    TRY(get_int(root, "intermediate_size", &c->ffn_dim, true, 0, path));
    TRY(get_int(root, "num_hidden_layers", &c->n_layers, true, 0, path));
    TRY(get_int(root, "num_attention_heads", &c->n_heads, true, 0, path));
    TRY(get_int(root, "num_key_value_heads", &c->n_kv_heads, false, c->n_heads, path));
    TRY(get_int(root, "head_dim", &c->head_dim, false, c->n_heads > 0 ? c->dim / c->n_heads : 0, path));
    TRY(get_int(root, "max_position_embeddings", &c->max_position, false, 2048, path));
    TRY(get_float(root, "rms_norm_eps", &c->rms_eps, true, 0, path));
    TRY(get_float(root, "rope_theta", &c->rope_theta, false, 10000.0f, path));
    TRY(get_bool(root, "tie_word_embeddings", &c->tie_embeddings, false, path));
    TRY(get_int(root, "bos_token_id", &c->bos_token_id, false, -1, path));
    TRY(get_int(root, "eos_token_id", &c->eos_token_id, false, -1, path));
    TRY(parse_rope(json_object_get(root, "rope_scaling"), "rope_scaling", c, path));
    TRY(parse_rope(json_object_get(root, "rope_parameters"), "rope_parameters", c, path));
    bool bias = false;
    TRY(get_bool(root, "attention_bias", &bias, false, path));
    if (bias) return status_fail(ST_UNSUPPORTED, "%s: attention_bias = true is not supported", path);
    TRY(get_bool(root, "mlp_bias", &bias, false, path));
    if (bias) return status_fail(ST_UNSUPPORTED, "%s: mlp_bias = true is not supported", path);
    json_t *act = json_object_get(root, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0))
        return status_fail(ST_UNSUPPORTED, "%s: hidden_act must be \"silu\"", path);
    return llama_config_check(c, path);
}

Status llama_config_from_json(LlamaConfig *c, const char *text, const char *path) {
    memset(c, 0, sizeof *c);
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    if (!root) return status_fail(ST_FORMAT, "%s: malformed JSON (line %d: %s)", path, err.line, err.text);
    Status st = parse_config(c, root, path);
    json_decref(root);
    return st;
}
