// OPT behind causal_lm.h: thin calls into opt.h.
#include <stdlib.h>

#include "causal_lm.h"
#include "opt.h"

static Status session_new(const CausalLM *lm, int n_seq, int cap, Device dev, void **sess) {
    OptSession *s = malloc(sizeof *s);
    if (!s) return status_fail(ST_OOM, "out of memory");
    Status st = opt_session_init(s, lm->model, n_seq, cap, dev);
    if (st != ST_OK) {
        free(s);
        return st;
    }
    *sess = s;
    return ST_OK;
}

static void session_free(void *sess) {
    opt_session_free(sess);
    free(sess);
}

static Status set_view(const CausalLM *lm, void *sess, const LlamaView *v) {
    (void)lm, (void)sess;
    return v ? status_fail(ST_UNSUPPORTED, "OPT runs whole: views (levels, dropped layers, sparsity) are the LLaMA "
                                           "family's")
             : ST_OK;
}

static Status forward(const CausalLM *lm, void *sess, const int32_t *ids, const int32_t *mask, int T, LogitsMode mode,
                      Tensor *logits) {
    return opt_forward(lm->model, sess, ids, mask, T, mode, logits);
}

static Status attach(void *dst, const void *base, int n) { return opt_session_attach(dst, base, n); }
static void truncate_to(void *sess, int n) { opt_session_truncate(sess, n); }
static void reset(void *sess) { opt_session_reset(sess); }
static int n_past(const void *sess) { return ((const OptSession *)sess)->n_past; }
static Status to_device(void *model, Device dev, DType dt) { return opt_to_device(model, dev, dt); }
static void model_free(void *model) {
    opt_free(model);
    free(model);
}

static const CausalLMOps opt_ops = {"opt",  session_new, session_free, set_view,  forward,   attach,
                                    truncate_to, reset,  n_past,       to_device, model_free};

CausalLM causal_lm_opt(const void *opt_model) {
    const OptModel *m = opt_model;
    return (CausalLM){m, &opt_ops, m->cfg.vocab_size};
}
