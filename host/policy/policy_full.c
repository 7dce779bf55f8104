// full: the whole model and the whole prompt, whatever the SLO (the reference line).
#include "policy.h"

static Status full_open(void **state, const PolicyOpen *o) {
    (void)o;
    *state = NULL;
    return ST_OK;
}

static Status full_decide(void *state, const PolicyRequest *rq, const Slo *slo, Decision *d) {
    (void)state, (void)rq, (void)slo;
    *d = (Decision){.view = NULL, .prompt_ratio = 1.0, .what = "the full model"};
    return ST_OK;
}

static void full_close(void *state) { (void)state; }

const Policy policy_full = {
    .name = "full",
    .summary = "the full model and prompt at every SLO",
    .open = full_open,
    .decide = full_decide,
    .close = full_close,
};
