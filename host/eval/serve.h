// serve.h: one request served as a policy serves it. The policy decides for
// the request and its SLO; the scorer moves to the view (or the other model)
// the decision names; the decision's prompt transform compresses the system
// prompt; then the choices are scored. `eval` (one dataset under one SLO) and
// `e2e` (a trace whose requests carry their own SLOs) share this path.
#ifndef ELASTILM_SERVE_H
#define ELASTILM_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "eval/eval.h"
#include "policy/policy.h"

typedef struct {
    const Policy *policy;         // NULL: no policy (the scorer's view stays as set)
    void *state;                  // the policy's, opened by the caller
    const LlamaModel *m;          // the served model
    const Tokenizer *tok;         // its tokenizer
    Device dev;
    bool share_prefix;
    int max_tokens;               // the scorer's longest candidate
    Scorer scorer;
    bool scorer_ok;
    const CausalLM *answering;    // the model the scorer runs when it is not the served one (Off-The-Shelf)
    const LlamaView *view;        // the view the scorer runs
    char decided[sizeof ((Decision *)0)->what]; // the last decision's description ("" before the first)
} Server;

// A scorer on the served model (full view); policy may be NULL.
Status server_init(Server *s, const LlamaModel *m, const Tokenizer *tok, Device dev, bool share_prefix, int max_tokens,
                   const Policy *policy, void *state);
void server_free(Server *s);
// Runs later requests in view (no policy: eval --level).
Status server_set_view(Server *s, const LlamaView *view);

// The policy's decision for rq under slo; the scorer follows it (another model
// answers: a scorer of its own; another view: the cached prefix is dropped).
// *changed (may be NULL): the decision differs from the previous one.
Status server_decide(Server *s, const PolicyRequest *rq, const Slo *slo, Decision *d, bool *changed);

// The system prompt after the decision's prompt transform, for request number
// `request` (seeds the transform's randomness): *sys malloc'd, or NULL when the
// prompt stays as it is.
Status server_transform(const Decision *d, const EvalPrompt *p, const McQuestion *q, uint64_t request, char **sys);

#endif
