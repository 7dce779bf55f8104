// gguf.c: a validating GGUF (v2/v3, little-endian) reader over a memory map.
//
// Layout (all integers little-endian):
//   magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
//   n_kv x      { string key | u32 value type | value }
//   n_tensors x { string name | u32 n_dims | u64 ne[n_dims] | u32 ggml type | u64 offset }
//   padding to general.alignment | tensor data (offsets relative to this point)
// where a string is { u64 length | bytes } and an array value is
// { u32 element type | u64 count | elements }, elements possibly arrays themselves.
//
// Every read goes through a bounds-checked Cursor, and every count is compared
// with the bytes left in the file before anything is allocated for it.
#include "io/gguf.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/half.h"

enum {
    GGUF_MAGIC = 0x46554747u,      // "GGUF" read as a little-endian u32
    GGUF_DEFAULT_ALIGNMENT = 32,
    GGUF_MAX_DIMS = 4,
    GGUF_MAX_ARRAY_DEPTH = 32,     // nested arrays deeper than this are rejected
    GGUF_MIN_KV_BYTES = 8 + 4 + 1, // empty key, value type, smallest value
    GGUF_MIN_TI_BYTES = 8 + 4 + 8 + 4 + 8, // empty name, n_dims, one ne, type, offset
    QK = 32,                       // values per block of Q4_0, Q4_1, Q8_0
};

// ---------------------------------------------------------------------------
// Bounds-checked cursor

typedef struct {
    const uint8_t *data; // [size] the whole mapped file
    uint64_t size;       // bytes in the file
    uint64_t pos;        // next byte to read
    const char *path;    // for messages
    char what[192];      // what is being read, e.g. "reading tensor info 12 of 272"
} Cursor;

static uint64_t cursor_left(const Cursor *c) { return c->size - c->pos; }

static Status cursor_truncated(const Cursor *c) {
    return status_fail(ST_FORMAT, "%s: truncated GGUF header (%s)", c->path, c->what);
}

static Status cursor_take(Cursor *c, uint64_t n, const uint8_t **out) {
    if (n > cursor_left(c)) return cursor_truncated(c);
    *out = c->data + c->pos;
    c->pos += n;
    return ST_OK;
}

static uint64_t load_le(const uint8_t *p, int nbytes) {
    uint64_t v = 0;
    for (int i = nbytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static Status cursor_uint(Cursor *c, int nbytes, uint64_t *out) {
    const uint8_t *p = NULL;
    TRY(cursor_take(c, (uint64_t)nbytes, &p));
    *out = load_le(p, nbytes);
    return ST_OK;
}

static Status cursor_u32(Cursor *c, uint32_t *out) {
    uint64_t v = 0;
    TRY(cursor_uint(c, 4, &v));
    *out = (uint32_t)v;
    return ST_OK;
}

static Status cursor_u64(Cursor *c, uint64_t *out) { return cursor_uint(c, 8, out); }

static Status cursor_str(Cursor *c, GgufStr *out) {
    uint64_t len = 0;
    TRY(cursor_u64(c, &len));
    if (len > cursor_left(c))
        return status_fail(ST_FORMAT,
                           "%s: truncated GGUF header (string length %" PRIu64
                           " exceeds the %" PRIu64 " bytes left; %s)",
                           c->path, len, cursor_left(c), c->what);
    const uint8_t *p = NULL;
    TRY(cursor_take(c, len, &p));
    out->ptr = (const char *)p;
    out->len = len;
    return ST_OK;
}

// An owned, NUL-terminated copy of a key or tensor name (kind says which).
// Control bytes, NUL included, are rejected: names are looked up as C strings
// and quoted in one-line messages.
static Status str_dup(const Cursor *c, GgufStr s, const char *kind, char **out) {
    for (uint64_t i = 0; i < s.len; i++) {
        unsigned char ch = (unsigned char)s.ptr[i];
        if (ch < 0x20 || ch == 0x7f)
            return status_fail(ST_FORMAT, "%s: %s contains control byte 0x%02x (%s)", c->path, kind,
                               ch, c->what);
    }
    char *copy = malloc(s.len + 1);
    if (!copy) return status_fail(ST_OOM, "%s: out of memory (%s)", c->path, c->what);
    if (s.len > 0) memcpy(copy, s.ptr, s.len);
    copy[s.len] = '\0';
    *out = copy;
    return ST_OK;
}

// ---------------------------------------------------------------------------
// Metadata values

static const char *value_type_name(uint32_t type) {
    static const char *names[] = {"uint8", "int8",  "uint16", "int16", "uint32",
                                  "int32", "float32", "bool", "string", "array",
                                  "uint64", "int64", "float64"};
    return type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

// Bytes of one value of a fixed-size type; 0 for strings, arrays and unknown types.
static uint64_t value_fixed_size(uint32_t type) {
    switch (type) {
    case GGUF_T_UINT8: case GGUF_T_INT8: case GGUF_T_BOOL: return 1;
    case GGUF_T_UINT16: case GGUF_T_INT16: return 2;
    case GGUF_T_UINT32: case GGUF_T_INT32: case GGUF_T_FLOAT32: return 4;
    case GGUF_T_UINT64: case GGUF_T_INT64: case GGUF_T_FLOAT64: return 8;
    default: return 0;
    }
}

// The fewest bytes a value of this type occupies; 0 for unknown types.
static uint64_t value_min_size(uint32_t type) {
    if (type == GGUF_T_STRING) return 8;  // length
    if (type == GGUF_T_ARRAY) return 12;  // element type, count
    return value_fixed_size(type);
}

static bool type_is_unsigned(uint32_t t) {
    return t == GGUF_T_UINT8 || t == GGUF_T_UINT16 || t == GGUF_T_UINT32 || t == GGUF_T_UINT64;
}

static bool type_is_signed(uint32_t t) {
    return t == GGUF_T_INT8 || t == GGUF_T_INT16 || t == GGUF_T_INT32 || t == GGUF_T_INT64;
}

// Two's-complement value of the low `nbytes` bytes of raw.
static int64_t sign_extend(uint64_t raw, uint64_t nbytes) {
    if (nbytes == 8) {
        int64_t x;
        memcpy(&x, &raw, sizeof x);
        return x;
    }
    uint64_t sign = (uint64_t)1 << (8 * nbytes - 1);
    return (int64_t)(raw ^ sign) - (int64_t)sign;
}

static Status read_scalar(Cursor *c, GgufValue *v) {
    uint64_t size = value_fixed_size(v->type), raw = 0;
    TRY(cursor_uint(c, (int)size, &raw));
    if (type_is_unsigned(v->type)) {
        v->u64 = raw;
    } else if (type_is_signed(v->type)) {
        v->i64 = sign_extend(raw, size);
    } else if (v->type == GGUF_T_BOOL) {
        if (raw > 1)
            return status_fail(ST_FORMAT, "%s: bool value %" PRIu64 " is neither 0 nor 1 (%s)",
                               c->path, raw, c->what);
        v->u64 = raw;
    } else if (v->type == GGUF_T_FLOAT32) {
        uint32_t bits = (uint32_t)raw;
        float f;
        memcpy(&f, &bits, sizeof f);
        v->f64 = f;
    } else { // FLOAT64
        memcpy(&v->f64, &raw, sizeof v->f64);
    }
    return ST_OK;
}

// Reads an array value after its type tag. With v == NULL the array (a nested
// one) is only validated and skipped; GgufValue keeps the outer array only.
static Status read_array(Cursor *c, GgufValue *v, int depth) {
    uint32_t elem = 0;
    uint64_t n = 0;
    TRY(cursor_u32(c, &elem));
    uint64_t min_size = value_min_size(elem);
    if (min_size == 0)
        return status_fail(ST_FORMAT, "%s: array has unknown element type %" PRIu32 " (%s)",
                           c->path, elem, c->what);
    TRY(cursor_u64(c, &n));
    if (n > cursor_left(c) / min_size)
        return status_fail(ST_FORMAT,
                           "%s: truncated GGUF header (array of %" PRIu64 " %s values cannot fit in the %"
                           PRIu64 " bytes left; %s)",
                           c->path, n, value_type_name(elem), cursor_left(c), c->what);
    if (v) {
        v->arr.elem = (GgufValueType)elem;
        v->arr.n = n;
        v->arr.data = c->data + c->pos;
        v->arr.strs = NULL;
    }
    uint64_t fixed = value_fixed_size(elem);
    const uint8_t *skipped = NULL;
    if (fixed) return cursor_take(c, n * fixed, &skipped); // n * fixed <= bytes left
    if (elem == GGUF_T_STRING) {
        GgufStr *strs = NULL;
        if (v && n > 0) {
            strs = calloc(n, sizeof *strs); // n <= bytes left / 8
            if (!strs) return status_fail(ST_OOM, "%s: out of memory (%s)", c->path, c->what);
            v->arr.strs = strs;
        }
        for (uint64_t i = 0; i < n; i++) {
            GgufStr s = {0};
            TRY(cursor_str(c, &s));
            if (strs) strs[i] = s;
        }
        return ST_OK;
    }
    if (depth >= GGUF_MAX_ARRAY_DEPTH)
        return status_fail(ST_FORMAT, "%s: arrays nested more than %d deep (%s)", c->path,
                           GGUF_MAX_ARRAY_DEPTH, c->what);
    for (uint64_t i = 0; i < n; i++) TRY(read_array(c, NULL, depth + 1));
    return ST_OK;
}

static Status read_kv(Cursor *c, GgufKV *kv, uint64_t i, uint64_t n_kv) {
    snprintf(c->what, sizeof c->what, "reading key-value %" PRIu64 " of %" PRIu64, i + 1, n_kv);
    GgufStr key = {0};
    TRY(cursor_str(c, &key));
    TRY(str_dup(c, key, "key", &kv->key));
    snprintf(c->what, sizeof c->what, "reading the value of key '%.120s'", kv->key);
    uint32_t type = 0;
    TRY(cursor_u32(c, &type));
    if (value_min_size(type) == 0)
        return status_fail(ST_FORMAT, "%s: key '%s' has unknown value type %" PRIu32, c->path,
                           kv->key, type);
    kv->value.type = (GgufValueType)type;
    if (type == GGUF_T_ARRAY) return read_array(c, &kv->value, 0);
    if (type == GGUF_T_STRING) return cursor_str(c, &kv->value.str);
    return read_scalar(c, &kv->value);
}

// ---------------------------------------------------------------------------
// GGML tensor types

const char *ggml_type_name(uint32_t type) {
    switch (type) {
    case 0: return "F32";      case 1: return "F16";      case 2: return "Q4_0";
    case 3: return "Q4_1";     case 6: return "Q5_0";     case 7: return "Q5_1";
    case 8: return "Q8_0";     case 9: return "Q8_1";     case 10: return "Q2_K";
    case 11: return "Q3_K";    case 12: return "Q4_K";    case 13: return "Q5_K";
    case 14: return "Q6_K";    case 15: return "Q8_K";    case 16: return "IQ2_XXS";
    case 17: return "IQ2_XS";  case 18: return "IQ3_XXS"; case 19: return "IQ1_S";
    case 20: return "IQ4_NL";  case 21: return "IQ3_S";   case 22: return "IQ2_S";
    case 23: return "IQ4_XS";  case 24: return "I8";      case 25: return "I16";
    case 26: return "I32";     case 27: return "I64";     case 28: return "F64";
    case 29: return "IQ1_M";   case 30: return "BF16";    case 34: return "TQ1_0";
    case 35: return "TQ2_0";   case 39: return "MXFP4";   case 40: return "NVFP4";
    case 41: return "Q1_0";
    default: return "unknown";
    }
}

// Values per block and bytes per block of the types this reader handles;
// false for any other type.
static bool ggml_type_layout(uint32_t type, uint64_t *block_values, uint64_t *block_bytes) {
    switch (type) {
    case GGML_F32: *block_values = 1; *block_bytes = 4; return true;
    case GGML_F16: *block_values = 1; *block_bytes = 2; return true;
    case GGML_BF16: *block_values = 1; *block_bytes = 2; return true;
    case GGML_Q4_0: *block_values = QK; *block_bytes = 2 + QK / 2; return true;
    case GGML_Q4_1: *block_values = QK; *block_bytes = 2 + 2 + QK / 2; return true;
    case GGML_Q8_0: *block_values = QK; *block_bytes = 2 + QK; return true;
    default: return false;
    }
}

uint64_t gguf_tensor_numel(const GgufTensorInfo *t) {
    uint64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims && d < GGUF_MAX_DIMS; d++) n *= t->ne[d];
    return n;
}

// Checks a tensor's shape and type and computes its byte size into *nbytes.
static Status tensor_nbytes(const char *path, const GgufTensorInfo *t, uint64_t *nbytes) {
    uint64_t numel = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (t->ne[d] == 0)
            return status_fail(ST_FORMAT, "%s: tensor '%s' has ne[%" PRIu32 "] = 0", path, t->name, d);
        if (__builtin_mul_overflow(numel, t->ne[d], &numel) || numel > (uint64_t)INT64_MAX)
            return status_fail(ST_FORMAT, "%s: tensor '%s' has too many elements", path, t->name);
    }
    uint64_t block_values = 1, block_bytes = 0;
    if (!ggml_type_layout(t->type, &block_values, &block_bytes)) {
        const char *name = ggml_type_name(t->type);
        if (strcmp(name, "unknown") == 0)
            return status_fail(ST_UNSUPPORTED,
                               "%s: tensor '%s' has GGML type %" PRIu32 ", which elastilm does not know",
                               path, t->name, t->type);
        return status_fail(ST_UNSUPPORTED,
                           "%s: tensor '%s' has GGML type %s (%" PRIu32 "), which elastilm does not read",
                           path, t->name, name, t->type);
    }
    if (t->ne[0] % block_values != 0)
        return status_fail(ST_FORMAT,
                           "%s: tensor '%s' of type %s has ne[0] = %" PRIu64
                           ", not a multiple of its block size %" PRIu64,
                           path, t->name, ggml_type_name(t->type), t->ne[0], block_values);
    if (__builtin_mul_overflow(numel / block_values, block_bytes, nbytes))
        return status_fail(ST_FORMAT, "%s: tensor '%s' is too large", path, t->name);
    return ST_OK;
}

// ---------------------------------------------------------------------------
// Header sections

static Status read_header(Cursor *c, GgufFile *g, uint64_t *n_tensors, uint64_t *n_kv) {
    snprintf(c->what, sizeof c->what, "reading the magic");
    const uint8_t *magic = NULL;
    TRY(cursor_take(c, 4, &magic));
    if (load_le(magic, 4) != GGUF_MAGIC)
        return status_fail(ST_FORMAT,
                           "%s: not a GGUF file (magic bytes %02x %02x %02x %02x, expected 'GGUF')",
                           c->path, magic[0], magic[1], magic[2], magic[3]);
    snprintf(c->what, sizeof c->what, "reading the version");
    TRY(cursor_u32(c, &g->version));
    if (g->version != 2 && g->version != 3) {
        uint32_t swapped = __builtin_bswap32(g->version);
        if (swapped == 2 || swapped == 3)
            return status_fail(ST_UNSUPPORTED, "%s: big-endian GGUF files are not supported", c->path);
        return status_fail(ST_UNSUPPORTED, "%s: GGUF version %" PRIu32 " is not supported (only 2 and 3)",
                           c->path, g->version);
    }
    snprintf(c->what, sizeof c->what, "reading the tensor count");
    TRY(cursor_u64(c, n_tensors));
    snprintf(c->what, sizeof c->what, "reading the key-value count");
    TRY(cursor_u64(c, n_kv));
    if (*n_kv > cursor_left(c) / GGUF_MIN_KV_BYTES)
        return status_fail(ST_FORMAT, "%s: GGUF header claims %" PRIu64 " key-values, more than the %"
                           PRIu64 " bytes left can hold (corrupt or truncated file)",
                           c->path, *n_kv, cursor_left(c));
    if (*n_tensors > cursor_left(c) / GGUF_MIN_TI_BYTES)
        return status_fail(ST_FORMAT, "%s: GGUF header claims %" PRIu64 " tensor infos, more than the %"
                           PRIu64 " bytes left can hold (corrupt or truncated file)",
                           c->path, *n_tensors, cursor_left(c));
    return ST_OK;
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

// Fails if two of names[0..n) are equal; kind ("key", "tensor name") is for the message.
static Status check_unique(const char *path, const char **names, uint64_t n, const char *kind) {
    qsort(names, n, sizeof *names, compare_strings);
    for (uint64_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) == 0)
            return status_fail(ST_FORMAT, "%s: duplicate %s '%s'", path, kind, names[i]);
    return ST_OK;
}

static Status read_kvs(Cursor *c, GgufFile *g, uint64_t n_kv) {
    if (n_kv == 0) return ST_OK;
    g->kv = calloc(n_kv, sizeof *g->kv); // n_kv <= file size / 13
    if (!g->kv) return status_fail(ST_OOM, "%s: out of memory for %" PRIu64 " key-values", c->path, n_kv);
    g->n_kv = n_kv;
    for (uint64_t i = 0; i < n_kv; i++) TRY(read_kv(c, &g->kv[i], i, n_kv));
    const char **keys = malloc(n_kv * sizeof *keys);
    if (!keys) return status_fail(ST_OOM, "%s: out of memory checking keys", c->path);
    for (uint64_t i = 0; i < n_kv; i++) keys[i] = g->kv[i].key;
    Status st = check_unique(c->path, keys, n_kv, "key");
    free(keys);
    return st;
}

static Status read_alignment(GgufFile *g) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const GgufKV *kv = gguf_find_kv(g, "general.alignment");
    if (!kv) return ST_OK;
    if (kv->value.type != GGUF_T_UINT32)
        return status_fail(ST_FORMAT, "%s: key 'general.alignment' has type %s, expected uint32",
                           g->file.path, value_type_name(kv->value.type));
    uint64_t a = kv->value.u64;
    if (a == 0 || (a & (a - 1)) != 0)
        return status_fail(ST_FORMAT, "%s: key 'general.alignment' = %" PRIu64
                           " is not a nonzero power of two", g->file.path, a);
    g->alignment = a;
    return ST_OK;
}

static Status read_tensor_info(Cursor *c, GgufTensorInfo *t, uint64_t i, uint64_t n) {
    snprintf(c->what, sizeof c->what, "reading tensor info %" PRIu64 " of %" PRIu64, i + 1, n);
    GgufStr name = {0};
    TRY(cursor_str(c, &name));
    TRY(str_dup(c, name, "tensor name", &t->name));
    snprintf(c->what, sizeof c->what, "reading tensor info %" PRIu64 " of %" PRIu64 ", '%.120s'",
             i + 1, n, t->name);
    TRY(cursor_u32(c, &t->n_dims));
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return status_fail(ST_FORMAT, "%s: tensor '%s' has %" PRIu32 " dimensions (GGUF allows 1 to 4)",
                           c->path, t->name, t->n_dims);
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) TRY(cursor_u64(c, &t->ne[d]));
    TRY(cursor_u32(c, &t->type));
    TRY(cursor_u64(c, &t->offset)); // relative to the data section until placed
    return tensor_nbytes(c->path, t, &t->nbytes);
}

static Status read_tensor_infos(Cursor *c, GgufFile *g, uint64_t n) {
    if (n == 0) return ST_OK;
    g->tensors = calloc(n, sizeof *g->tensors); // n <= file size / 32
    if (!g->tensors) return status_fail(ST_OOM, "%s: out of memory for %" PRIu64 " tensor infos", c->path, n);
    g->n_tensors = n;
    for (uint64_t i = 0; i < n; i++) TRY(read_tensor_info(c, &g->tensors[i], i, n));
    const char **names = malloc(n * sizeof *names);
    if (!names) return status_fail(ST_OOM, "%s: out of memory checking tensor names", c->path);
    for (uint64_t i = 0; i < n; i++) names[i] = g->tensors[i].name;
    Status st = check_unique(c->path, names, n, "tensor name");
    free(names);
    return st;
}

// Turns t->offset from relative to absolute and checks the data lies in the file.
static Status place_tensor(const GgufFile *g, GgufTensorInfo *t) {
    if (t->offset % g->alignment != 0)
        return status_fail(ST_FORMAT, "%s: tensor '%s' offset %" PRIu64
                           " is not a multiple of the alignment %" PRIu64,
                           g->file.path, t->name, t->offset, g->alignment);
    uint64_t start, end;
    if (__builtin_add_overflow(g->data_offset, t->offset, &start) ||
        __builtin_add_overflow(start, t->nbytes, &end) || end > g->file.size)
        return status_fail(ST_FORMAT, "%s: tensor '%s' data (%" PRIu64 " bytes at offset %" PRIu64
                           " of the data section at %" PRIu64 ") runs past the end of the file (%zu bytes)",
                           g->file.path, t->name, t->nbytes, t->offset, g->data_offset, g->file.size);
    t->offset = start;
    return ST_OK;
}

static int compare_offsets(const void *a, const void *b) {
    const GgufTensorInfo *x = *(const GgufTensorInfo *const *)a, *y = *(const GgufTensorInfo *const *)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

static Status check_no_overlap(const GgufFile *g) {
    if (g->n_tensors < 2) return ST_OK;
    const GgufTensorInfo **sorted = malloc(g->n_tensors * sizeof *sorted);
    if (!sorted) return status_fail(ST_OOM, "%s: out of memory checking tensor offsets", g->file.path);
    for (uint64_t i = 0; i < g->n_tensors; i++) sorted[i] = &g->tensors[i];
    qsort(sorted, g->n_tensors, sizeof *sorted, compare_offsets);
    Status st = ST_OK;
    for (uint64_t i = 1; i < g->n_tensors && st == ST_OK; i++) {
        const GgufTensorInfo *a = sorted[i - 1], *b = sorted[i];
        if (a->offset + a->nbytes > b->offset) // both ends are within the file
            st = status_fail(ST_FORMAT, "%s: tensors '%s' (bytes %" PRIu64 "..%" PRIu64 ") and '%s' (bytes %"
                             PRIu64 "..%" PRIu64 ") overlap", g->file.path, a->name, a->offset,
                             a->offset + a->nbytes, b->name, b->offset, b->offset + b->nbytes);
    }
    free(sorted);
    return st;
}

static Status gguf_parse(GgufFile *g) {
    Cursor c = {.data = g->file.data, .size = g->file.size, .path = g->file.path};
    uint64_t n_tensors = 0, n_kv = 0;
    TRY(read_header(&c, g, &n_tensors, &n_kv));
    TRY(read_kvs(&c, g, n_kv));
    TRY(read_alignment(g));
    TRY(read_tensor_infos(&c, g, n_tensors));
    g->data_offset = (c.pos + g->alignment - 1) / g->alignment * g->alignment;
    for (uint64_t i = 0; i < g->n_tensors; i++) TRY(place_tensor(g, &g->tensors[i]));
    return check_no_overlap(g);
}

Status gguf_open(GgufFile *g, const char *path) {
    memset(g, 0, sizeof *g);
    Status st = mapped_file_open(&g->file, path);
    if (st == ST_OK) st = gguf_parse(g);
    if (st != ST_OK) gguf_close(g);
    return st;
}

void gguf_close(GgufFile *g) {
    for (uint64_t i = 0; i < g->n_kv; i++) {
        free(g->kv[i].key);
        if (g->kv[i].value.type == GGUF_T_ARRAY) free(g->kv[i].value.arr.strs);
    }
    free(g->kv);
    for (uint64_t i = 0; i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->tensors);
    mapped_file_close(&g->file);
    memset(g, 0, sizeof *g);
}

// ---------------------------------------------------------------------------
// Lookups and typed getters

const GgufKV *gguf_find_kv(const GgufFile *g, const char *key) {
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (strcmp(g->kv[i].key, key) == 0) return &g->kv[i];
    return NULL;
}

const GgufTensorInfo *gguf_find_tensor(const GgufFile *g, const char *name) {
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

static Status find_required(const GgufFile *g, const char *key, const GgufKV **out) {
    *out = gguf_find_kv(g, key);
    if (!*out) return status_fail(ST_FORMAT, "%s: missing key '%s'", g->file.path, key);
    return ST_OK;
}

static Status wrong_type(const GgufFile *g, const GgufKV *kv, const char *expected) {
    return status_fail(ST_FORMAT, "%s: key '%s' has type %s, expected %s", g->file.path, kv->key,
                       value_type_name(kv->value.type), expected);
}

Status gguf_get_u32(const GgufFile *g, const char *key, uint32_t *out) {
    const GgufKV *kv;
    TRY(find_required(g, key, &kv));
    const GgufValue *v = &kv->value;
    if (type_is_unsigned(v->type) && v->u64 <= UINT32_MAX) {
        *out = (uint32_t)v->u64;
        return ST_OK;
    }
    if (type_is_signed(v->type) && v->i64 >= 0 && v->i64 <= (int64_t)UINT32_MAX) {
        *out = (uint32_t)v->i64;
        return ST_OK;
    }
    if (type_is_unsigned(v->type))
        return status_fail(ST_FORMAT, "%s: key '%s' = %" PRIu64 " does not fit in a uint32",
                           g->file.path, key, v->u64);
    if (type_is_signed(v->type))
        return status_fail(ST_FORMAT, "%s: key '%s' = %" PRId64 " does not fit in a uint32",
                           g->file.path, key, v->i64);
    return wrong_type(g, kv, "an integer");
}

Status gguf_get_f32(const GgufFile *g, const char *key, float *out) {
    const GgufKV *kv;
    TRY(find_required(g, key, &kv));
    if (kv->value.type != GGUF_T_FLOAT32 && kv->value.type != GGUF_T_FLOAT64)
        return wrong_type(g, kv, "float32 or float64");
    double x = kv->value.f64;
    if (isfinite(x) && fabs(x) > FLT_MAX)
        return status_fail(ST_FORMAT, "%s: key '%s' = %g does not fit in a float32", g->file.path, key, x);
    *out = (float)x;
    return ST_OK;
}

Status gguf_get_str(const GgufFile *g, const char *key, GgufStr *out) {
    const GgufKV *kv;
    TRY(find_required(g, key, &kv));
    if (kv->value.type != GGUF_T_STRING) return wrong_type(g, kv, "string");
    *out = kv->value.str;
    return ST_OK;
}

Status gguf_get_bool(const GgufFile *g, const char *key, bool *out) {
    const GgufKV *kv;
    TRY(find_required(g, key, &kv));
    if (kv->value.type != GGUF_T_BOOL) return wrong_type(g, kv, "bool");
    *out = kv->value.u64 != 0;
    return ST_OK;
}

// ---------------------------------------------------------------------------
// Dequantization
//
// Products are written as separate multiply and add; under -std=c11 GCC does
// not contract them into FMAs (-ffp-contract=off), so results match GGML's
// reference dequantization (and gguf-py's numpy one) bit for bit.

static uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

void gguf_dequant_q4_0(const uint8_t *block, float *out) {
    float d = f16_to_f32(load_u16(block));
    const uint8_t *qs = block + 2;
    for (int j = 0; j < QK / 2; j++) {
        out[j] = (float)((qs[j] & 0x0F) - 8) * d;
        out[j + QK / 2] = (float)((qs[j] >> 4) - 8) * d;
    }
}

void gguf_dequant_q4_1(const uint8_t *block, float *out) {
    float d = f16_to_f32(load_u16(block)), m = f16_to_f32(load_u16(block + 2));
    const uint8_t *qs = block + 4;
    for (int j = 0; j < QK / 2; j++) {
        out[j] = (float)(qs[j] & 0x0F) * d + m;
        out[j + QK / 2] = (float)(qs[j] >> 4) * d + m;
    }
}

void gguf_dequant_q8_0(const uint8_t *block, float *out) {
    float d = f16_to_f32(load_u16(block));
    const int8_t *qs = (const int8_t *)(block + 2);
    for (int j = 0; j < QK; j++) out[j] = (float)qs[j] * d;
}

typedef void (*BlockDecoder)(const uint8_t *block, float *out);

enum { PARALLEL_MIN_VALUES = 1 << 16 }; // smaller tensors are not worth waking threads

static void decode_blocks(const uint8_t *src, int64_t n_blocks, uint64_t block_bytes,
                          BlockDecoder decode, float *out) {
#pragma omp parallel for schedule(static) if (n_blocks * QK >= PARALLEL_MIN_VALUES)
    for (int64_t b = 0; b < n_blocks; b++) decode(src + (uint64_t)b * block_bytes, out + b * QK);
}

static void convert_halves(const uint8_t *src, int64_t n, bool brain, float *out) {
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_VALUES)
    for (int64_t i = 0; i < n; i++) {
        uint16_t h = load_u16(src + 2 * i);
        out[i] = brain ? bf16_to_f32(h) : f16_to_f32(h);
    }
}

Status gguf_tensor_to_f32(const GgufFile *g, const GgufTensorInfo *t, float *out) {
    if (t->n_dims < 1 || t->n_dims > GGUF_MAX_DIMS)
        return status_fail(ST_FORMAT, "%s: tensor '%s' info does not match the file", g->file.path, t->name);
    uint64_t nbytes = 0;
    TRY(tensor_nbytes(g->file.path, t, &nbytes));
    if (nbytes != t->nbytes || t->offset > g->file.size || nbytes > g->file.size - t->offset)
        return status_fail(ST_FORMAT, "%s: tensor '%s' info does not match the file", g->file.path, t->name);
    const uint8_t *src = g->file.data + t->offset;
    int64_t n = (int64_t)gguf_tensor_numel(t);
    switch (t->type) {
    case GGML_F32: memcpy(out, src, nbytes); break; // the file is little-endian, as is every target
    case GGML_F16: convert_halves(src, n, false, out); break;
    case GGML_BF16: convert_halves(src, n, true, out); break;
    case GGML_Q4_0: decode_blocks(src, n / QK, 2 + QK / 2, gguf_dequant_q4_0, out); break;
    case GGML_Q4_1: decode_blocks(src, n / QK, 4 + QK / 2, gguf_dequant_q4_1, out); break;
    case GGML_Q8_0: decode_blocks(src, n / QK, 2 + QK, gguf_dequant_q8_0, out); break;
    default: break; // tensor_nbytes rejected every other type
    }
    return ST_OK;
}
