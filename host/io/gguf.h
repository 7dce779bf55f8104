// gguf.h: a reader for GGUF files (versions 2 and 3), memory-mapped.
//
// gguf_open parses and validates the whole header — metadata, tensor infos,
// alignment — and checks every tensor's data range against the file size and
// against the other tensors, so that later reads cannot run off the end.
// Dimensions follow GGML's order: ne[0] is the innermost (contiguous) one, so a
// PyTorch weight of shape [out, in] appears with ne = {in, out}.
#ifndef ELASTILM_GGUF_H
#define ELASTILM_GGUF_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/mapped_file.h"
#include "runtime/status.h"

typedef enum {
    GGUF_T_UINT8 = 0, GGUF_T_INT8 = 1, GGUF_T_UINT16 = 2, GGUF_T_INT16 = 3,
    GGUF_T_UINT32 = 4, GGUF_T_INT32 = 5, GGUF_T_FLOAT32 = 6, GGUF_T_BOOL = 7,
    GGUF_T_STRING = 8, GGUF_T_ARRAY = 9, GGUF_T_UINT64 = 10, GGUF_T_INT64 = 11,
    GGUF_T_FLOAT64 = 12,
} GgufValueType;

// The GGML tensor types this reader dequantizes; others are rejected with a
// message naming the tensor and the type.
typedef enum {
    GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q8_0 = 8, GGML_BF16 = 30,
} GgmlType;

typedef struct {
    const char *ptr; // into the mapped file, NOT NUL-terminated
    uint64_t len;
} GgufStr;

typedef struct {
    GgufValueType type;
    union {
        uint64_t u64;  // UINT8/16/32/64 and BOOL
        int64_t i64;   // INT8/16/32/64
        double f64;    // FLOAT32/64
        GgufStr str;   // STRING
        struct {
            GgufValueType elem; // element type
            uint64_t n;         // element count
            const uint8_t *data;// first element in the mapped file
            GgufStr *strs;      // for STRING arrays: n entries (owned), else NULL
        } arr;
    };
} GgufValue;

typedef struct {
    char *key; // owned, NUL-terminated
    GgufValue value;
} GgufKV;

typedef struct {
    char *name;          // owned, NUL-terminated
    uint32_t n_dims;     // 1..4
    uint64_t ne[4];      // GGML order; unused dims are 1
    uint32_t type;       // GgmlType
    uint64_t offset;     // absolute byte offset of the data in the file
    uint64_t nbytes;     // size of the data
} GgufTensorInfo;

typedef struct {
    MappedFile file;
    uint32_t version;
    uint64_t n_kv;
    GgufKV *kv;                 // [n_kv]
    uint64_t n_tensors;
    GgufTensorInfo *tensors;    // [n_tensors]
    uint64_t alignment;         // general.alignment, default 32
    uint64_t data_offset;       // start of the tensor data section
} GgufFile;

Status gguf_open(GgufFile *g, const char *path);
void gguf_close(GgufFile *g);

const GgufKV *gguf_find_kv(const GgufFile *g, const char *key);
const GgufTensorInfo *gguf_find_tensor(const GgufFile *g, const char *name);

// Typed getters: a missing key or a value of an incompatible type is an error
// naming the file and the key. Integer getters accept any integer type whose
// value fits.
Status gguf_get_u32(const GgufFile *g, const char *key, uint32_t *out);
Status gguf_get_f32(const GgufFile *g, const char *key, float *out);
Status gguf_get_str(const GgufFile *g, const char *key, GgufStr *out);
Status gguf_get_bool(const GgufFile *g, const char *key, bool *out);

const char *ggml_type_name(uint32_t type);
uint64_t gguf_tensor_numel(const GgufTensorInfo *t);

// Dequantizes (or converts) a tensor's data to numel fp32 values, in GGML
// order (ne[0] fastest), i.e. row-major [ne[n-1], ..., ne[0]].
Status gguf_tensor_to_f32(const GgufFile *g, const GgufTensorInfo *t, float *out);

// Block decoders, exposed for tests: each decodes one block of 32 values.
void gguf_dequant_q4_0(const uint8_t *block, float *out);
void gguf_dequant_q4_1(const uint8_t *block, float *out);
void gguf_dequant_q8_0(const uint8_t *block, float *out);

#endif
