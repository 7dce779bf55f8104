// Typed getters over the fields of a JSON object (json_fields.h).
#include "io/json_fields.h"

Status json_fields_parse(const char *text, const char *path, Status (*parse)(json_t *root, void *out, const char *path),
                         void *out) {
    json_error_t err;
    json_t *root = json_loads(text, 0, &err);
    if (!root) return status_fail(ST_FORMAT, "%s: malformed JSON (line %d: %s)", path, err.line, err.text);
    Status st = json_is_object(root) ? parse(root, out, path) : status_fail(ST_FORMAT, "%s: not a JSON object", path);
    json_decref(root);
    return st;
}

typedef enum { KIND_INT, KIND_NUMBER, KIND_BOOL, KIND_STRING } Kind;

// The field's value of the given kind into *v; NULL for an absent or null field
// (a failure when it is required).
static Status field(json_t *obj, const char *key, int flags, Kind kind, const char *path, json_t **v) {
    static const char *const want[] = {"an integer", "a number", "true or false", "a string"};
    *v = json_object_get(obj, key);
    if (*v && json_is_null(*v)) *v = NULL;
    if (!*v) return (flags & JF_REQUIRED) ? status_fail(ST_FORMAT, "%s: missing key '%s'", path, key) : ST_OK;
    if (kind == KIND_INT && (flags & JF_FIRST_OF_LIST) && json_is_array(*v) && json_array_size(*v) > 0)
        *v = json_array_get(*v, 0);
    bool ok;
    switch (kind) {
    case KIND_INT:
        ok = json_is_integer(*v) && json_integer_value(*v) >= -1 && json_integer_value(*v) <= (1 << 30);
        break;
    case KIND_NUMBER: ok = json_is_number(*v); break;
    case KIND_BOOL: ok = json_is_boolean(*v); break;
    default: ok = json_is_string(*v); break;
    }
    return ok ? ST_OK : status_fail(ST_FORMAT, "%s: key '%s' must be %s", path, key, want[kind]);
}

Status json_field_int(json_t *obj, const char *key, int *out, int flags, int fallback, const char *path) {
    json_t *v;
    TRY(field(obj, key, flags, KIND_INT, path, &v));
    *out = v ? (int)json_integer_value(v) : fallback;
    return ST_OK;
}

Status json_field_float(json_t *obj, const char *key, float *out, int flags, float fallback, const char *path) {
    json_t *v;
    TRY(field(obj, key, flags, KIND_NUMBER, path, &v));
    *out = v ? (float)json_number_value(v) : fallback;
    return ST_OK;
}

Status json_field_bool(json_t *obj, const char *key, bool *out, int flags, bool fallback, const char *path) {
    json_t *v;
    TRY(field(obj, key, flags, KIND_BOOL, path, &v));
    *out = v ? json_is_true(v) : fallback;
    return ST_OK;
}

Status json_field_string(json_t *obj, const char *key, const char **out, int flags, const char *fallback,
                         const char *path) {
    json_t *v;
    TRY(field(obj, key, flags, KIND_STRING, path, &v));
    *out = v ? json_string_value(v) : fallback;
    return ST_OK;
}
