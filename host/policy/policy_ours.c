// Ours: ElastiLM itself (spec §3.3). For each request and SLO the TLM's
// decision head picks a prompt ratio p and a model ratio r (two argmaxes over
// "[0X] <0Y> " + the request), the guard keeps the pair feasible in double
// precision (r changes, p never does), the score head compresses the system
// prompt to p, and the elastic level r with its LoRA answers.
//
// Paper (default): the decision reads the request with its question (the
// system prompt, then the query; when too long the system prompt's end gives
// way); the compression keeps the score head's most important tokens.
// --compat artifact: the decision reads the unformatted query template (so it
// ignores the question), cut at 512 tokens; the compression is the artifact's
// (tlm_compress_compat). The decision head itself is what `tlm decision`
// trained (its --compat decides the label rule and the SLO-token rows).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elastic/artifact.h"
#include "policy.h"
#include "tlm/decision.h"
#include "tlm/prompt_compress.h"
#include "tlm/tlm_store.h"

typedef struct {
    const LlamaModel *m;
    const char *artifact;
    bool no_lora, compat;
    Encoder dec, score;            // the decision head and the score head
    bool dec_ok, score_ok;
    Tokenizer *dec_tok, *score_tok, *llm_tok;
    EncoderSession *session;       // the decision head's
    int32_t *ids;                  // [max_len]
    int max_len;
    PromptCompressor *pc;
    LevelView views[TLM_N_MODEL];  // loaded when first chosen
    bool loaded[TLM_N_MODEL];
} Ours;

static void ours_close(void *state) {
    Ours *o = state;
    if (!o) return;
    for (int j = 0; j < TLM_N_MODEL; j++)
        if (o->loaded[j]) level_view_free(&o->views[j]);
    prompt_compressor_free(o->pc);
    encoder_session_free(o->session);
    free(o->ids);
    if (o->dec_ok) encoder_free(&o->dec);
    if (o->score_ok) encoder_free(&o->score);
    tokenizer_free(o->dec_tok), tokenizer_free(o->score_tok), tokenizer_free(o->llm_tok);
    free(o);
}

static Status ours_open(void **state, const PolicyOpen *po) {
    Ours *o = calloc(1, sizeof *o);
    if (!o) return status_fail(ST_OOM, "out of memory");
    *o = (Ours){.m = po->m, .artifact = po->artifact, .no_lora = po->no_lora, .compat = po->compat == COMPAT_ARTIFACT};
    const char *tlm = po->tlm ? po->tlm : po->artifact;
    Status st = tlm_store_load(tlm, TLM_DECISION_GROUP, &o->dec, &o->dec_tok);
    o->dec_ok = st == ST_OK;
    char what[4200];
    snprintf(what, sizeof what, "%s: %s", tlm, TLM_DECISION_GROUP);
    if (st == ST_OK) st = tlm_decision_check(&o->dec, o->dec_tok, what);
    if (st == ST_OK) st = tlm_store_load(tlm, TLM_SCORE_GROUP, &o->score, &o->score_tok);
    o->score_ok = st == ST_OK;
    if (st == ST_OK) st = tokenizer_load_for_model(&o->llm_tok, po->model_path);
    if (st == ST_OK) {
        PromptCompressorConfig cfg = {.method = PC_SCORE, .compat = o->compat, .tlm = &o->score, .enc = o->score_tok,
                                      .llm_tok = o->llm_tok, .seed = 42, .max_len = 512};
        st = prompt_compressor_new(&o->pc, &cfg);
    }
    o->max_len = o->dec.cfg.max_position < 512 ? o->dec.cfg.max_position : 512;
    if (st == ST_OK) st = encoder_session_new(&o->session, &o->dec, o->max_len);
    if (st == ST_OK && !(o->ids = malloc((size_t)o->max_len * sizeof *o->ids))) st = status_fail(ST_OOM, "out of memory");
    if (st != ST_OK) {
        ours_close(o);
        return st;
    }
    *state = o;
    return ST_OK;
}

// The decision text's two parts: the system prompt and the query, formatted
// with the question (paper) or the unformatted template (the artifact).
static Status decision_parts(const Ours *o, const PolicyRequest *rq, char **tail) {
    if (o->compat) {
        *tail = strdup(rq->query ? rq->query : "");
    } else {
        *tail = tlm_decision_query(rq->query ? rq->query : "", rq->question ? rq->question : "");
    }
    return *tail ? ST_OK : status_fail(ST_OOM, "out of memory");
}

static Status ours_decide(void *state, const PolicyRequest *rq, const Slo *slo, Decision *d) {
    Ours *o = state;
    if (!rq->system || !rq->query)
        return status_fail(ST_USAGE, "Ours decides from the request's system prompt and query (none given)");
    char prefix[16], *tail;
    TRY(tlm_slo_prefix(slo->prefill, slo->decode, prefix));
    TRY(decision_parts(o, rq, &tail));
    int n, pi, ri;
    Status st = tlm_decision_encode(o->dec_tok, prefix, rq->system, tail, o->max_len, !o->compat, o->ids, &n);
    free(tail);
    TRY(st);
    TRY(tlm_decide(o->session, o->ids, n, &pi, &ri));
    int rg = tlm_guard(pi, ri, slo->prefill, slo->decode);
    if (!o->loaded[rg]) {
        char name[32];
        level_name(TLM_MODEL_RATIOS[rg], name, sizeof name);
        TRY(level_view_load(o->artifact, o->m, name, o->no_lora, &o->views[rg]));
        o->loaded[rg] = true;
    }
    double p = TLM_PROMPT_RATIOS[pi], r = TLM_MODEL_RATIOS[rg];
    *d = (Decision){.view = &o->views[rg].view, .model_ratio = r, .prompt_ratio = p, .compress = o->pc};
    snprintf(d->what, sizeof d->what, "p %g, level %g%s%s", p, r, o->views[rg].has_lora ? " with its LoRA" : "",
             rg != ri ? " (guarded)" : "");
    return ST_OK;
}

const Policy policy_ours = {
    .name = "Ours",
    .summary = "ElastiLM: the TLM's decision head picks (prompt ratio, level) per request and SLO, guarded; the score "
               "head compresses the system prompt; the level with its LoRA answers",
    .reordered = true,
    .needs_artifact = true,
    .open = ours_open,
    .decide = ours_decide,
    .close = ours_close,
};
