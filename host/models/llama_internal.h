// llama_internal.h: what the HF and GGUF loaders share with llama_load.c.
#ifndef ELASTILM_LLAMA_INTERNAL_H
#define ELASTILM_LLAMA_INTERNAL_H

#include "io/gguf.h"
#include "io/safetensors.h"
#include "llama.h"

typedef enum {
    W_TOK_EMBD, W_FINAL_NORM, W_LM_HEAD,                     // model-level
    W_ATTN_NORM, W_WQ, W_WK, W_WV, W_WO, W_MLP_NORM, W_GATE, W_UP, W_DOWN, // per layer
} WeightRole;

struct LlamaStorage {
    SafetensorsFile *shards; // [n_shards] HF safetensors files, kept mapped (f32 weights are views)
    int n_shards;
    GgufFile gguf;           // GGUF file, kept mapped (f32 weights are views)
    bool has_gguf;
};

// A checkpoint format: finds the tensor for (role, layer), checks that its
// shape is [rows, cols] (cols = 0: the 1-d shape [rows]) and returns it as an
// fp32 CPU tensor (a view of the mapped file when possible). *found is false
// for an absent tensor (then *out is untouched and the status is ST_OK).
typedef Status (*WeightGetter)(LlamaModel *m, WeightRole role, int layer, int64_t rows, int64_t cols, Tensor *out,
                               bool *found);

Status llama_config_check(const LlamaConfig *c, const char *path);
Status llama_load_weights(LlamaModel *m, WeightGetter get, const char *path);

Status llama_load_hf(LlamaModel *m, const char *dir);
Status llama_load_gguf(LlamaModel *m, const char *path);

// Parses a Hugging Face config.json (already read into text) into c.
Status llama_config_from_json(LlamaConfig *c, const char *text, const char *path);

#endif
