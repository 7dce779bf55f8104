// The LLaMA family behind causal_lm.h: thin calls into llama.h.
#include <stdlib.h>

#include "causal_lm.h"

static Status session_new(const CausalLM *lm, int n_seq, int cap, Device dev, void **sess) {
    LlamaSession *s = malloc(sizeof *s);
    if (!s) return status_fail(ST_OOM, "out of memory");
    Status st = llama_session_init(s, lm->model, n_seq, cap, dev);
    if (st != ST_OK) {
        free(s);
        return st;
    }
    *sess = s;
    return ST_OK;
}

static void session_free(void *sess) {
    llama_session_free(sess);
    free(sess);
}

static Status set_view(const CausalLM *lm, void *sess, const LlamaView *v) {
    return llama_session_set_view(sess, lm->model, v);
}

static Status forward(const CausalLM *lm, void *sess, const int32_t *ids, const int32_t *mask, int T, LogitsMode mode,
                      Tensor *logits) {
    return llama_forward(lm->model, sess, ids, mask, T, mode, logits);
}

static Status attach(void *dst, const void *base, int n) { return llama_session_attach(dst, base, n); }
static void truncate_to(void *sess, int n) { llama_session_truncate(sess, n); }
static void reset(void *sess) { llama_session_reset(sess); }
static int n_past(const void *sess) { return ((const LlamaSession *)sess)->n_past; }

static Status to_device(void *model, Device dev, DType dt) { return llama_to_device(model, dev, dt); }
static void model_free(void *model) {
    llama_free(model);
    free(model);
}

static const CausalLMOps llama_ops = {"llama", session_new, session_free, set_view,  forward,
                                      attach,  truncate_to, reset,        n_past,    to_device,
                                      model_free};

CausalLM causal_lm_llama(const LlamaModel *m) { return (CausalLM){m, &llama_ops, m->cfg.vocab_size}; }
