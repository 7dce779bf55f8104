#include "serve.h"

#include <stdio.h>
#include <string.h>

#include "tlm/prompt_compress.h"

Status server_init(Server *s, const LlamaModel *m, const Tokenizer *tok, Device dev, bool share_prefix, int max_tokens,
                   const Policy *policy, void *state) {
    memset(s, 0, sizeof *s);
    *s = (Server){.policy = policy, .state = state, .m = m, .tok = tok, .dev = dev, .share_prefix = share_prefix,
                  .max_tokens = max_tokens};
    TRY(scorer_init(&s->scorer, m, tok, dev, share_prefix, max_tokens));
    s->scorer_ok = true;
    return ST_OK;
}

void server_free(Server *s) {
    if (s->scorer_ok) scorer_free(&s->scorer);
    s->scorer_ok = false;
}

Status server_set_view(Server *s, const LlamaView *view) {
    s->view = view;
    return scorer_set_view(&s->scorer, view);
}

Status server_decide(Server *s, const PolicyRequest *rq, const Slo *slo, Decision *d, bool *changed) {
    memset(d, 0, sizeof *d);
    if (changed) *changed = false;
    if (!s->policy) return status_fail(ST_USAGE, "server_decide: no policy");
    TRY(s->policy->decide(s->state, rq, slo, d));
    if (d->lm != s->answering) { // another model answers: a scorer of its own
        CausalLM served = causal_lm_llama(s->m);
        if (s->scorer_ok) scorer_free(&s->scorer);
        s->scorer_ok = false;
        TRY(scorer_init_lm(&s->scorer, d->lm ? d->lm : &served, d->lm ? d->tok : s->tok, s->dev, s->share_prefix,
                           s->max_tokens));
        s->scorer_ok = true;
        s->answering = d->lm;
        s->view = NULL;
    }
    // a policy may rewrite one view in place (LaCo, the layer baselines): a new
    // decision re-sets it even when the pointer is the same, so no cached prefix
    // of the old content is reused
    bool differs = d->view != s->view || strcmp(d->what, s->decided) != 0;
    if (differs) TRY(server_set_view(s, d->view));
    if (differs) snprintf(s->decided, sizeof s->decided, "%s", d->what);
    if (changed) *changed = differs;
    return ST_OK;
}

Status server_transform(const Decision *d, const EvalPrompt *p, const McQuestion *q, uint64_t request, char **sys) {
    *sys = NULL;
    if (!d->compress) return ST_OK;
    if (d->system_rate) // the system prompt at its own rate (LLMLingua-2 as the artifact calls it)
        return prompt_compress(d->compress, p->system, 0, d->prompt_ratio, request, sys, NULL);
    // ElastiLM's ratio of the whole prompt
    return prompt_compress_request(d->compress, p, q->question, (const char *const *)q->choices, q->n_choices,
                                   d->prompt_ratio, request, sys, NULL);
}
