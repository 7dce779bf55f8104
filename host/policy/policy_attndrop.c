// AttnDrop ("What Matters in Transformers? Not All Attention is Needed", He et
// al. 2024): drops attention and FFN sub-blocks separately under a cost budget
// s = min(prefill, decode) of the 3N units a model has (attention 1, FFN 2 per layer).
//
// paper (LLM-Drop, layer_drop_norm): importance 1 - cos(x, x + Block(norm x)) per
//   token, averaged; attention and FFN blocks ranked jointly, the least
//   important dropped first until the remaining cost fits s * 3N.
// artifact (--compat artifact; Layer_pruning/AttnDrop/prune_llama.py, ARC_E.py:1753-1957):
//   attention importance 1 - cos(norm x, Attn(norm x)) over the flattened batch;
//   the first (a, m) with (N - a + 2N - 2m) / 3N <= s; the attention of the a
//   least important layers and the FFN of the first m layers of ShortGPT's
//   (flattened) Block-Influence ranking are dropped.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elastic/elastic.h"
#include "policy.h"

static Status attndrop_prepare(const PolicyPrepare *p) {
    int L = p->m->cfg.n_layers;
    bool given = p->ranks != NULL;
    if (given && p->compat != COMPAT_ARTIFACT)
        return status_fail(ST_USAGE, "AttnDrop: published lists (--ranks) are the artifact's; add --compat artifact "
                                     "(the paper's joint ranking needs the importance values)");
    if (given && !p->ffn_ranks)
        return status_fail(ST_USAGE, "AttnDrop --ranks: give the FFN list too (--ffn-ranks; the artifact uses "
                                     "ShortGPT's layer ranks, or the same list for llama3-instruct)");
    double *bi = malloc((size_t)L * sizeof *bi), *attn = malloc((size_t)L * sizeof *attn),
           *ffn = malloc((size_t)L * sizeof *ffn);
    int32_t *ar = malloc((size_t)L * sizeof *ar), *fr = malloc((size_t)L * sizeof *fr);
    int *order = malloc((size_t)L * sizeof *order);
    Status st = bi && attn && ffn && ar && fr && order ? ST_OK : status_fail(ST_OOM, "out of memory");
    if (st == ST_OK && given) {
        st = ranks_check(p->ranks, p->n_ranks, L, "--ranks");
        if (st == ST_OK) st = ranks_check(p->ffn_ranks, p->n_ffn_ranks, L, "--ffn-ranks");
        if (st == ST_OK) memcpy(ar, p->ranks, (size_t)L * sizeof *ar), memcpy(fr, p->ffn_ranks, (size_t)L * sizeof *fr);
    } else if (st == ST_OK) {
        bool art = p->compat == COMPAT_ARTIFACT;
        st = layer_stats(p->m, p->calib, p->n_calib, p->seq, art ? COS_FLAT : COS_PER_TOKEN, bi, attn, ffn);
        if (st == ST_OK && art) memcpy(ffn, bi, (size_t)L * sizeof *ffn); // FFNs by ShortGPT's ranking
        if (st == ST_OK) {
            order_ascending(attn, L, order);
            for (int l = 0; l < L; l++) ar[l] = order[l];
            order_ascending(ffn, L, order);
            for (int l = 0; l < L; l++) fr[l] = order[l];
        }
    }
    if (st == ST_OK) {
        printf("AttnDrop (%s) attention", compat_name(p->compat));
        print_list_i32(" ranks (ascending importance)", ar, L);
        printf("AttnDrop (%s) FFN", compat_name(p->compat));
        print_list_i32(" ranks (ascending importance)", fr, L);
        const char *in[] = {"attn_ranks", "ffn_ranks"}, *fn[] = {"attn_importance", "ffn_importance"};
        const int32_t *iv[] = {ar, fr};
        const double *fv[] = {attn, ffn};
        st = policy_write_arrays(p->artifact, &p->m->cfg, "AttnDrop", p->compat, given ? "given" : "computed", L, in,
                                 iv, 2, fn, fv, given ? 0 : 2);
    }
    free(bi), free(attn), free(ffn), free(ar), free(fr), free(order);
    return st;
}

typedef struct {
    Compat compat;
    int32_t *attn_ranks, *ffn_ranks; // [L] ascending importance
    int *joint;                      // [2L] paper: blocks in ascending importance (l = attention of l, L + l = FFN of l)
    BlockView bv;
} AttnDrop;

static void attndrop_close(void *state) {
    AttnDrop *d = state;
    if (!d) return;
    free(d->attn_ranks), free(d->ffn_ranks), free(d->joint);
    block_view_free(&d->bv);
    free(d);
}

static Status attndrop_open(void **state, const PolicyOpen *o) {
    int L = o->m->cfg.n_layers;
    AttnDrop *d = calloc(1, sizeof *d);
    if (!d) return status_fail(ST_OOM, "out of memory");
    d->compat = o->compat;
    d->attn_ranks = malloc((size_t)L * sizeof *d->attn_ranks);
    d->ffn_ranks = malloc((size_t)L * sizeof *d->ffn_ranks);
    d->joint = malloc(2 * (size_t)L * sizeof *d->joint);
    double *imp = malloc(2 * (size_t)L * sizeof *imp);
    Status st = d->attn_ranks && d->ffn_ranks && d->joint && imp ? block_view_init(&d->bv, L)
                                                                  : status_fail(ST_OOM, "out of memory");
    if (st == ST_OK) st = policy_read_i32(o->artifact, &o->m->cfg, "AttnDrop", o->compat, "attn_ranks", L, d->attn_ranks);
    if (st == ST_OK) st = policy_read_i32(o->artifact, &o->m->cfg, "AttnDrop", o->compat, "ffn_ranks", L, d->ffn_ranks);
    if (st == ST_OK) st = ranks_check(d->attn_ranks, L, L, o->artifact);
    if (st == ST_OK) st = ranks_check(d->ffn_ranks, L, L, o->artifact);
    if (st == ST_OK && o->compat == COMPAT_PAPER) {
        st = policy_read_f64(o->artifact, &o->m->cfg, "AttnDrop", o->compat, "attn_importance", L, imp);
        if (st == ST_OK) st = policy_read_f64(o->artifact, &o->m->cfg, "AttnDrop", o->compat, "ffn_importance", L, imp + L);
        if (st == ST_OK) order_ascending(imp, 2 * L, d->joint); // ties: attention first, then by layer
    }
    free(imp);
    if (st != ST_OK) {
        attndrop_close(d);
        return st;
    }
    *state = d;
    return ST_OK;
}

static Status attndrop_decide(void *state, const PolicyRequest *rq, const Slo *slo, Decision *out) {
    (void)rq;
    AttnDrop *d = state;
    int L = d->bv.n_layers;
    double s = slo_min(slo);
    block_view_reset(&d->bv);
    int n_attn = 0, n_ffn = 0;
    if (d->compat == COMPAT_ARTIFACT) {
        if (!attndrop_budget(L, s, &n_attn, &n_ffn)) return status_fail(ST_USAGE, "AttnDrop: no budget fits s = %g", s);
        for (int i = 0; i < n_attn; i++) d->bv.blocks[d->attn_ranks[i]] &= (uint8_t)~LAYER_ATTN;
        for (int i = 0; i < n_ffn; i++) d->bv.blocks[d->ffn_ranks[i]] &= (uint8_t)~LAYER_FFN;
    } else {
        int cost = 3 * L;
        for (int i = 0; i < 2 * L && cost > s * 3 * L + 1e-9; i++) {
            int b = d->joint[i];
            if (b < L) d->bv.blocks[b] &= (uint8_t)~LAYER_ATTN, cost -= 1, n_attn++;
            else d->bv.blocks[b - L] &= (uint8_t)~LAYER_FFN, cost -= 2, n_ffn++;
        }
    }
    *out = (Decision){.view = &d->bv.view, .prompt_ratio = 1.0};
    snprintf(out->what, sizeof out->what, "drop %d attention and %d FFN blocks of %d layers (s = %g)", n_attn, n_ffn, L,
             s);
    return ST_OK;
}

const Policy policy_attndrop = {
    .name = "AttnDrop",
    .summary = "drops attention and FFN sub-blocks under a cost budget (attention 1, FFN 2); s = min(prefill, decode)",
    .needs_artifact = true,
    .needs_calib = true,
    .takes_ranks = true,
    .prepare = attndrop_prepare,
    .open = attndrop_open,
    .decide = attndrop_decide,
    .close = attndrop_close,
};
