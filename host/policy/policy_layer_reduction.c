// LayerReduction: drops whole layers in ascending order of the anchor
// calibration's layer-skip loss (the loss with only that layer skipped: the
// layers whose removal hurts least go first), s = min(prefill, decode)
// (ARC_E.py:1560-1570).
#include <stdio.h>
#include <stdlib.h>

#include "elastic/artifact.h"
#include "elastic/elastic.h"
#include "policy.h"

static Status lr_prepare(const PolicyPrepare *p) {
    int L = p->m->cfg.n_layers;
    double *loss = malloc((size_t)L * sizeof *loss), base = 0;
    int32_t *ranks = malloc((size_t)L * sizeof *ranks);
    int *order = malloc((size_t)L * sizeof *order);
    uint8_t *anchor = malloc((size_t)L);
    Status st = loss && ranks && order && anchor ? ST_OK : status_fail(ST_OOM, "out of memory");
    Artifact a = {0};
    if (st == ST_OK && !p->ranks) {
        if (p->calib) { // computed afresh on the batch given
            st = anchors_select(p->m, p->calib, p->n_calib, p->seq, 0, &base, loss, order, anchor);
        } else { // the skip losses elasticize recorded
            st = artifact_read(p->artifact, &p->m->cfg, &a);
            if (st == ST_OK && !a.skip_loss)
                st = status_fail(ST_USAGE, "%s has no layer-skip losses (its anchors were given): pass --calib",
                                 p->artifact);
            for (int l = 0; st == ST_OK && l < L; l++) loss[l] = a.skip_loss[l];
            if (st == ST_OK) order_ascending(loss, L, order);
        }
        for (int l = 0; st == ST_OK && l < L; l++) ranks[l] = order[l];
    }
    // the ranks do not depend on --compat; both variants read the same list
    for (int c = COMPAT_PAPER; st == ST_OK && c <= COMPAT_ARTIFACT; c++) {
        PolicyPrepare q = *p;
        q.compat = (Compat)c;
        st = ranked_store(&q, "LayerReduction", ranks, p->ranks ? NULL : loss, "skip_loss", c == COMPAT_PAPER);
    }
    artifact_free(&a);
    free(loss), free(ranks), free(order), free(anchor);
    return st;
}

static Status lr_open(void **state, const PolicyOpen *o) { return ranked_open(state, o, "LayerReduction"); }

const Policy policy_layer_reduction = {
    .name = "LayerReduction",
    .summary = "drops whole layers by the anchor calibration's layer-skip loss; s = min(prefill, decode)",
    .needs_artifact = true,
    .takes_ranks = true,
    .prepare = lr_prepare,
    .open = lr_open,
    .decide = ranked_decide,
    .close = ranked_close,
};
