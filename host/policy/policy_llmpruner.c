// LLMPruner: the permuted nested sub-model of level r = the prefill SLO with
// its LoRA, the full prompt (the artifact's `LLMPruner` mode, ARC_E.py:1511-1551).
// The anchor-free variant is the same policy over an artifact made with
// `elasticize --keep 0`.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "elastic/artifact.h"
#include "policy.h"

typedef struct {
    const LlamaModel *m;
    const char *artifact;
    bool no_lora;
    LevelView lv[9];  // levels 0.2 ... 1.0, each loaded when first asked for (a trace mixes SLOs)
    bool loaded[9];
} LlmPruner;

static Status llmpruner_open(void **state, const PolicyOpen *o) {
    LlmPruner *p = calloc(1, sizeof *p);
    if (!p) return status_fail(ST_OOM, "out of memory");
    *p = (LlmPruner){.m = o->m, .artifact = o->artifact, .no_lora = o->no_lora};
    *state = p;
    return ST_OK;
}

static Status llmpruner_decide(void *state, const PolicyRequest *rq, const Slo *slo, Decision *d) {
    (void)rq;
    LlmPruner *p = state;
    int k = (int)lround(slo->prefill * 10) - 2; // slo_parse keeps prefill on the grid
    if (k < 0 || k > 8) return status_fail(ST_USAGE, "LLMPruner: prefill SLO %g is not a level", slo->prefill);
    if (!p->loaded[k]) { // a level's widths and adapter are loaded once, when it is first asked for
        char name[32];
        level_name(slo->prefill, name, sizeof name);
        TRY(level_view_load(p->artifact, p->m, name, p->no_lora, &p->lv[k]));
        p->loaded[k] = true;
    }
    *d = (Decision){.view = &p->lv[k].view, .model_ratio = (k + 2) / 10.0, .prompt_ratio = 1.0};
    snprintf(d->what, sizeof d->what, "level %g%s", d->model_ratio, p->lv[k].has_lora ? " with its LoRA" : " without LoRA");
    return ST_OK;
}

static void llmpruner_close(void *state) {
    LlmPruner *p = state;
    if (!p) return;
    for (int k = 0; k < 9; k++)
        if (p->loaded[k]) level_view_free(&p->lv[k]);
    free(p);
}

const Policy policy_llmpruner = {
    .name = "LLMPruner",
    .summary = "the elastic level r = prefill SLO with its LoRA (elasticize --keep 0: the anchor-free variant)",
    .reordered = true,
    .needs_artifact = true,
    .open = llmpruner_open,
    .decide = llmpruner_decide,
    .close = llmpruner_close,
};
