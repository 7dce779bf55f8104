// causal_lm.h: one interface over the decoder language models a scorer runs
// (the LLaMA family, OPT): sessions with a KV cache for n_seq sequences, a
// shared prefix read from another session without copies, and a forward that
// appends T tokens per sequence and forms logits (the contract of
// llama_forward: left pads with mask 0, LogitsMode, logits f32 on the
// session's device or the CPU). Views (elastic levels, dropped layers,
// contextual sparsity) are the LLaMA family's; other models refuse one.
#ifndef ELASTILM_CAUSAL_LM_H
#define ELASTILM_CAUSAL_LM_H

#include <stdint.h>

#include "models/llama.h"

typedef struct CausalLMOps CausalLMOps;

typedef struct {
    const void *model;        // LlamaModel, OptModel, ...
    const CausalLMOps *ops;
    int vocab_size;           // V of the logits
} CausalLM;

struct CausalLMOps {
    const char *arch;         // "llama", "opt"
    Status (*session_new)(const CausalLM *lm, int n_seq, int cap, Device dev, void **sess);
    void (*session_free)(void *sess);
    Status (*set_view)(const CausalLM *lm, void *sess, const LlamaView *v); // v NULL: the whole model
    Status (*forward)(const CausalLM *lm, void *sess, const int32_t *ids, const int32_t *mask, int T, LogitsMode mode,
                      Tensor *logits);
    Status (*attach)(void *dst, const void *base, int n); // base: a one-sequence session of the same model
    void (*truncate)(void *sess, int n);
    void (*reset)(void *sess);
    int (*n_past)(const void *sess);
    // For a model the CausalLM owns (causal_lm_open): moved like llama_to_device, and freed.
    Status (*to_device)(void *model, Device dev, DType weight_dtype);
    void (*model_free)(void *model);
};

// The LLaMA family behind the interface (the model must outlive the CausalLM).
CausalLM causal_lm_llama(const LlamaModel *m);
// OPT (models/opt.h) behind the interface.
CausalLM causal_lm_opt(const void *opt_model);

// Loads the model at path, choosing the family: a .gguf file or a directory
// whose config.json says "model_type": "opt" (OPT) or anything else (the
// LLaMA family, which checks the config). The CausalLM owns the model.
Status causal_lm_open(CausalLM *lm, const char *path);
void causal_lm_close(CausalLM *lm);

static inline Status clm_session_new(const CausalLM *lm, int n_seq, int cap, Device dev, void **sess) {
    return lm->ops->session_new(lm, n_seq, cap, dev, sess);
}
static inline void clm_session_free(const CausalLM *lm, void *sess) {
    if (sess) lm->ops->session_free(sess);
}
static inline Status clm_set_view(const CausalLM *lm, void *sess, const LlamaView *v) {
    return lm->ops->set_view(lm, sess, v);
}
static inline Status clm_forward(const CausalLM *lm, void *sess, const int32_t *ids, const int32_t *mask, int T,
                                 LogitsMode mode, Tensor *logits) {
    return lm->ops->forward(lm, sess, ids, mask, T, mode, logits);
}

#endif
