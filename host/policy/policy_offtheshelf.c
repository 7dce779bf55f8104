// Off-The-Shelf: a smaller model of another family (or of the same one)
// answers when the SLO is tight (spec §6): s = min(prefill SLO, decode SLO)
// picks a rung of the model ladder (policy/ladder.h; the artifact's: s >= 0.5
// OPT-1.3B, else OPT-350M for the 1B-class model, the full model at s = 1.0,
// which --compat artifact never serves: the missing `elif`). Each rung's model
// (OPT or the LLaMA family) is loaded when first served, with its own
// tokenizer, and put where the served model's weights are, in their format.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ladder.h"
#include "policy.h"

typedef struct {
    Ladder ladder;
    bool artifact;
    CausalLM lms[LADDER_MAX];      // loaded when first served
    Tokenizer *toks[LADDER_MAX];
    bool loaded[LADDER_MAX];
    const LlamaModel *served;      // where and in what format the rungs' weights go (after place)
} OffTheShelf;

static void ots_close(void *state) {
    OffTheShelf *o = state;
    if (!o) return;
    for (int i = 0; i < LADDER_MAX; i++)
        if (o->loaded[i]) {
            causal_lm_close(&o->lms[i]);
            tokenizer_free(o->toks[i]);
        }
    free(o);
}

static Status ots_open(void **state, const PolicyOpen *po) {
    if (!po->ladder)
        return status_fail(ST_USAGE, "Off-The-Shelf picks a model from a ladder: --ladder FILE (\"<threshold> <model>\" "
                                     "lines, e.g. 1.0 full / 0.5 opt-1.3b / 0 opt-350m)");
    OffTheShelf *o = calloc(1, sizeof *o);
    if (!o) return status_fail(ST_OOM, "out of memory");
    o->artifact = po->compat == COMPAT_ARTIFACT;
    o->served = po->m;
    Status st = ladder_load(po->ladder, &o->ladder);
    if (st == ST_OK && o->artifact && ladder_pick(&o->ladder, 0.2, true) < 0)
        st = status_fail(ST_USAGE, "%s: with --compat artifact a `full` rung is never served, and no other rung is left",
                         po->ladder);
    if (st != ST_OK) {
        ots_close(o);
        return st;
    }
    *state = o;
    return ST_OK;
}

static Status ots_place(void *state, const LlamaModel *m) {
    ((OffTheShelf *)state)->served = m;
    return ST_OK;
}

// Rung i's model and tokenizer, loaded and placed like the served model.
static Status rung_load(OffTheShelf *o, int i) {
    const LadderRung *r = &o->ladder.rungs[i];
    CausalLM *lm = &o->lms[i];
    Status st = causal_lm_open(lm, r->path);
    if (st != ST_OK) return status_wrap(st, "%s:%d: the ladder's model", o->ladder.file, r->line);
    const LlamaModel *m = o->served;
    DType dt = llama_weights_dtype(m);
    if (m->dev.kind != DEV_CPU) st = lm->ops->to_device((void *)lm->model, m->dev, m->layers[0].wq.dtype);
    else if (dt != DT_F32 && !strcmp(lm->ops->arch, "llama")) st = llama_convert_weights((LlamaModel *)lm->model, dt);
    else if (dt != DT_F32)
        st = status_fail(ST_UNSUPPORTED, "%s:%d: %s runs f32 weights on the CPU (--weights f32)", o->ladder.file,
                         r->line, lm->ops->arch);
    if (st == ST_OK) st = tokenizer_load_for_model(&o->toks[i], r->path);
    if (st != ST_OK) {
        causal_lm_close(lm);
        return st;
    }
    o->loaded[i] = true;
    return ST_OK;
}

static Status ots_decide(void *state, const PolicyRequest *rq, const Slo *slo, Decision *d) {
    (void)rq;
    OffTheShelf *o = state;
    double s = slo_min(slo);
    int i = ladder_pick(&o->ladder, s, o->artifact);
    if (i < 0) return status_fail(ST_USAGE, "%s: no rung serves s = %g", o->ladder.file, s);
    const LadderRung *r = &o->ladder.rungs[i];
    *d = (Decision){.prompt_ratio = 1.0};
    if (!r->full) {
        if (!o->loaded[i]) TRY(rung_load(o, i));
        d->lm = &o->lms[i], d->tok = o->toks[i];
    }
    const char *name = r->full ? "the full model" : strrchr(r->path, '/') ? strrchr(r->path, '/') + 1 : r->path;
    snprintf(d->what, sizeof d->what, "s = %g: %.120s (the ladder's rung %g)", s, name, r->threshold);
    return ST_OK;
}

const Policy policy_offtheshelf = {
    .name = "Off-The-Shelf",
    .summary = "a smaller off-the-shelf model (OPT or LLaMA-family) from a ladder of SLO thresholds answers",
    .open = ots_open,
    .place = ots_place,
    .decide = ots_decide,
    .close = ots_close,
};
