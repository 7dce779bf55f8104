// safetensors.h: read (memory-mapped) and write safetensors files.
//
// Format: u64 little-endian header length N, N bytes of JSON
// {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
//  "__metadata__": {...}}, then the data; offsets are relative to the end of
// the header. safetensors_open validates every entry (dtype, shape, offsets in
// range, size consistent with shape, no overlaps) before anything uses it.
//
// Tensors of a dtype that the format defines but elastilm does not read (BOOL,
// U8, I8, I16, U16, U32, I64, U64, F64, F8_E4M3, F8_E5M2, F8_E8M0; e.g. the I64
// embeddings.position_ids of BERT checkpoints) do not make the file unreadable:
// they are validated like the others and listed apart, after the readable ones,
// with dtype SAFETENSORS_UNREADABLE; safetensors_view fails for them, naming the
// tensor and its dtype. A dtype the format does not define is refused at open.
#ifndef ELASTILM_SAFETENSORS_H
#define ELASTILM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/mapped_file.h"
#include "runtime/tensor.h"

// The dtype of a tensor elastilm does not read (outside DType's values: never
// pass it to tensor functions; dtype_name gives "?", the file's tag is in tag).
#define SAFETENSORS_UNREADABLE ((DType)-1)

typedef struct {
    char *name;                      // owned
    DType dtype;                     // F32, F16, BF16, I32, or SAFETENSORS_UNREADABLE
    char tag[12];                    // the dtype as the file names it ("F32", "I64", ...)
    int ndim;                        // 0..TENSOR_MAX_DIMS (0 = scalar)
    int64_t shape[TENSOR_MAX_DIMS];
    const uint8_t *data;             // into the mapped file
    size_t nbytes;
} SafeTensor;

typedef struct {
    MappedFile file;
    size_t n;                        // number of readable tensors (dtype F32, F16, BF16, I32)
    size_t n_unreadable;             // tensors of other dtypes: tensors[n .. n + n_unreadable)
    SafeTensor *tensors;             // [n + n_unreadable]: the readable ones sorted by name, then the others sorted by name
} SafetensorsFile;

Status safetensors_open(SafetensorsFile *f, const char *path);
void safetensors_close(SafetensorsFile *f);
// Any tensor by name, readable or not (check dtype before using its data); NULL when absent.
const SafeTensor *safetensors_find(const SafetensorsFile *f, const char *name);

// A CPU tensor viewing the mapped data (not owned). The data must stay mapped.
// Fails when the data is not aligned for its dtype (then copy it instead), and
// with ST_UNSUPPORTED, naming the tensor and its dtype, for an unreadable dtype.
Status safetensors_view(const SafetensorsFile *f, const SafeTensor *t, Tensor *out);

// Opens a Hugging Face checkpoint directory's files: model.safetensors, or
// every shard model.safetensors.index.json names (safetensors_dir.c). where
// (may be NULL) receives the file messages should name. On failure the
// shards opened so far are in *shards (*n_shards of them) for the caller to close.
Status safetensors_open_dir(const char *dir, SafetensorsFile **shards, int *n_shards, char *where, size_t where_n);

// A checkpoint's weight t of file f as an f32 CPU tensor: its shape checked
// against [rows, cols] (cols 0: [rows]; the message says config.json implies
// it), its dtype F32/F16/BF16; a view of aligned f32 data, else a converted copy.
Status safetensors_weight_f32(const SafetensorsFile *f, const SafeTensor *t, int64_t rows, int64_t cols, Tensor *out);

// Writes tensors (CPU, contiguous or strided) to path atomically. names[i]
// labels tensors[i]; dtypes are kept.
Status safetensors_write(const char *path, const char *const *names, const Tensor *tensors, size_t n);

#endif
