// The (prompt ratio x model ratio) correctness table of one request.
#include "decision_labels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct Labeler {
    LabelerConfig cfg;
    LevelView views[TLM_N_MODEL];
    int n_views;
    Scorer scorer;
    bool scorer_ok;
};

void labeler_free(Labeler *L) {
    if (!L) return;
    if (L->scorer_ok) scorer_free(&L->scorer);
    for (int j = 0; j < L->n_views; j++) level_view_free(&L->views[j]);
    free(L);
}

Status labeler_new(Labeler **out, const LabelerConfig *c) {
    *out = NULL;
    Labeler *L = calloc(1, sizeof *L);
    if (!L) return status_fail(ST_OOM, "out of memory");
    L->cfg = *c;
    Status st = ST_OK;
    for (int j = 0; st == ST_OK && j < TLM_N_MODEL; j++) {
        char name[32];
        level_name(TLM_MODEL_RATIOS[j], name, sizeof name);
        st = level_view_load(c->artifact, c->m, name, c->no_lora, &L->views[j]);
        if (st == ST_OK) L->n_views++;
        else st = status_wrap(st, "%s: level %s (the decision head's labels need all nine levels 0.2 ... 1.0)",
                              c->artifact, name);
    }
    if (st == ST_OK) st = scorer_init(&L->scorer, c->m, c->tok, c->dev, true, 8192);
    L->scorer_ok = st == ST_OK;
    if (st != ST_OK) {
        labeler_free(L);
        return st;
    }
    *out = L;
    return ST_OK;
}

// LLM tokens of prompt + choice for every choice (what scoring from scratch runs).
static Status candidate_tokens(const Scorer *s, const char *prompt, const McQuestion *q, int64_t *n) {
    *n = 0;
    size_t lp = strlen(prompt);
    for (int k = 0; k < q->n_choices; k++) {
        size_t lc = strlen(q->choices[k]);
        char *c = malloc(lp + lc + 1);
        if (!c) return status_fail(ST_OOM, "out of memory");
        memcpy(c, prompt, lp), memcpy(c + lp, q->choices[k], lc + 1);
        int t;
        Status st = scorer_count_tokens(s, c, &t);
        free(c);
        TRY(st);
        *n += t;
    }
    return ST_OK;
}

Status labeler_table(Labeler *L, const EvalPrompt *prompt, const McQuestion *q, uint64_t request, LabelResult *out) {
    memset(out, 0, sizeof *out);
    char *sys[TLM_N_PROMPT] = {0};
    int64_t cell[TLM_N_PROMPT]; // tokens of one unshared scoring at prompt ratio i
    Status st = ST_OK;
    for (int i = 0; st == ST_OK && i < TLM_N_PROMPT; i++) {
        st = prompt_compress_request(L->cfg.pc, prompt, q->question, (const char *const *)q->choices, q->n_choices,
                                     TLM_PROMPT_RATIOS[i], request, &sys[i], NULL);
        EvalPrompt qp = {.system = sys[i], .query = prompt->query};
        char *text = st == ST_OK ? eval_prompt_render(&qp, q->question) : NULL;
        if (st == ST_OK && !text) st = status_fail(ST_OOM, "out of memory");
        if (st == ST_OK) st = candidate_tokens(&L->scorer, text, q, &cell[i]);
        free(text);
    }
    long before = L->scorer.tokens_run;
    for (int j = 0; st == ST_OK && j < TLM_N_MODEL; j++) {
        st = scorer_set_view(&L->scorer, &L->views[j].view);
        for (int i = 0; st == ST_OK && i < TLM_N_PROMPT; i++) { // p from 1.0 down: neighbours share prefixes
            EvalPrompt qp = {.system = sys[i], .query = prompt->query};
            EvalResult r;
            st = eval_question(&L->scorer, &qp, DS_ARC_E /* top-1, as every dataset but Octopus */, q, METRIC_ARTIFACT,
                               &r);
            if (st == ST_OK) out->table.ok[i][j] = r.correct, free(r.scores);
        }
    }
    out->tokens_run = L->scorer.tokens_run - before;
    for (int a = 0; a < TLM_N_PREFILL_SLOS; a++)
        for (int b = 0; b < TLM_N_DECODE_SLOS; b++)
            for (int j = 0; j < TLM_N_MODEL; j++)
                for (int i = 0; i < TLM_N_PROMPT; i++)
                    if (tlm_feasible(TLM_PROMPT_RATIOS[i], TLM_MODEL_RATIOS[j], TLM_PREFILL_SLOS[a], TLM_DECODE_SLOS[b]))
                        out->tokens_artifact += cell[i];
    for (int i = 0; i < TLM_N_PROMPT; i++) free(sys[i]);
    return st;
}
