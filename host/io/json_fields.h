// json_fields.h: typed getters for the fields of a JSON object read from a file
// (a Hugging Face config.json), with the file's path in every message:
//   "<path>: missing key 'k'"               a required field is absent or null
//   "<path>: key 'k' must be an integer"    (a number, true or false, a string)
// An absent or null field that is not required takes the fallback. Strings
// point into the JSON value (valid while the object is).
#ifndef ELASTILM_JSON_FIELDS_H
#define ELASTILM_JSON_FIELDS_H

#include <jansson.h>
#include <stdbool.h>

#include "runtime/status.h"

enum {
    JF_OPTIONAL = 0,
    JF_REQUIRED = 1 << 0,
    JF_FIRST_OF_LIST = 1 << 1, // an integer field may be a non-empty list: its first element (Llama-3's eos ids)
};

// Parses text as a JSON object and hands it to parse(root, out, path); the
// object is freed after. Fails with "<path>: malformed JSON (line L: ...)" or
// "<path>: not a JSON object" before parse runs.
Status json_fields_parse(const char *text, const char *path, Status (*parse)(json_t *root, void *out, const char *path),
                         void *out);

// An int in [-1, 2^30].
Status json_field_int(json_t *obj, const char *key, int *out, int flags, int fallback, const char *path);
Status json_field_float(json_t *obj, const char *key, float *out, int flags, float fallback, const char *path);
Status json_field_bool(json_t *obj, const char *key, bool *out, int flags, bool fallback, const char *path);
Status json_field_string(json_t *obj, const char *key, const char **out, int flags, const char *fallback,
                         const char *path);

#endif
