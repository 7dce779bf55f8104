// ShortGPT (Men et al. 2024): drops whole layers in ascending order of Block
// Influence BI = 1 - cos(layer input, layer output) on calibration text,
// s = min(prefill, decode). The paper averages per-token cosines; the
// artifact takes one cosine of the flattened batch (--compat artifact)
// (Layer_pruning/ShortGPT/prune_llama.py:50-78).
#include <stdlib.h>

#include "elastic/elastic.h"
#include "policy.h"

static Status shortgpt_prepare(const PolicyPrepare *p) {
    int L = p->m->cfg.n_layers;
    double *bi = malloc((size_t)L * sizeof *bi), *attn = malloc((size_t)L * sizeof *attn),
           *ffn = malloc((size_t)L * sizeof *ffn);
    int32_t *ranks = malloc((size_t)L * sizeof *ranks);
    int *order = malloc((size_t)L * sizeof *order);
    Status st = bi && attn && ffn && ranks && order ? ST_OK : status_fail(ST_OOM, "out of memory");
    if (st == ST_OK && !p->ranks) {
        st = layer_stats(p->m, p->calib, p->n_calib, p->seq, p->compat == COMPAT_ARTIFACT ? COS_FLAT : COS_PER_TOKEN,
                         bi, attn, ffn);
        if (st == ST_OK) {
            order_ascending(bi, L, order);
            for (int l = 0; l < L; l++) ranks[l] = order[l];
        }
    }
    if (st == ST_OK) st = ranked_store(p, "ShortGPT", ranks, p->ranks ? NULL : bi, "block_influence", true);
    free(bi), free(attn), free(ffn), free(ranks), free(order);
    return st;
}

static Status shortgpt_open(void **state, const PolicyOpen *o) { return ranked_open(state, o, "ShortGPT"); }

const Policy policy_shortgpt = {
    .name = "ShortGPT",
    .summary = "drops whole layers by Block Influence 1 - cos(layer input, output); s = min(prefill, decode)",
    .needs_artifact = true,
    .needs_calib = true,
    .takes_ranks = true,
    .prepare = shortgpt_prepare,
    .open = shortgpt_open,
    .decide = ranked_decide,
    .close = ranked_close,
};
