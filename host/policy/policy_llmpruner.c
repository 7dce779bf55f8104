// LLMPruner: the permuted nested sub-model of level r = the prefill SLO with
// its LoRA, the full prompt (the artifact's `LLMPruner` mode, ARC_E.py:1511-1551).
// The anchor-free variant is the same policy over an artifact made with
// `elasticize --keep 0`.
#include <stdio.h>
#include <stdlib.h>

#include "elastic/artifact.h"
#include "policy.h"

typedef struct {
    const LlamaModel *m;
    const char *artifact;
    bool no_lora;
    double level;   // the level loaded in lv (0 = none yet)
    LevelView lv;
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
    if (p->level != slo->prefill) { // a level's widths and adapter are loaded once, when it is first asked for
        char name[32];
        level_name(slo->prefill, name, sizeof name);
        level_view_free(&p->lv);
        p->level = 0;
        TRY(level_view_load(p->artifact, p->m, name, p->no_lora, &p->lv));
        p->level = slo->prefill;
    }
    *d = (Decision){.view = &p->lv.view, .model_ratio = p->level, .prompt_ratio = 1.0};
    snprintf(d->what, sizeof d->what, "level %g%s", p->level, p->lv.has_lora ? " with its LoRA" : " without LoRA");
    return ST_OK;
}

static void llmpruner_close(void *state) {
    LlmPruner *p = state;
    if (!p) return;
    level_view_free(&p->lv);
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
