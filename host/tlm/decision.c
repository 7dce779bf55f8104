// The decision head: ratio tables, guard, labels, SLO tokens, encoding, argmax.
#include "decision.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/prompts.h"

// Python's literals (the artifact's lists), not 0.1 k: 0.1 * 3 != 0.3 in double.
const double TLM_PROMPT_RATIOS[TLM_N_PROMPT] = {1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1};
const double TLM_MODEL_RATIOS[TLM_N_MODEL] = {0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
const double TLM_PREFILL_SLOS[TLM_N_PREFILL_SLOS] = {0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
const double TLM_DECODE_SLOS[TLM_N_DECODE_SLOS] = {0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
const char *const TLM_SLO_TOKENS[TLM_N_SLO_TOKENS] = {"[02]", "[03]", "[04]", "[05]", "[06]", "[07]", "[08]",
                                                      "[09]", "<05>", "<06>", "<07>", "<08>", "<09>", "<10>"};

bool tlm_feasible(double p, double r, double prefill, double decode) { return p * r <= prefill && r <= decode; }

int tlm_guard(int pi, int ri, double prefill, double decode) {
    double p = TLM_PROMPT_RATIOS[pi];
    if (tlm_feasible(p, TLM_MODEL_RATIOS[ri], prefill, decode)) return ri;
    int r = TLM_N_MODEL - 1; // 1.0 when nothing qualifies
    for (int j = 0; j < TLM_N_MODEL; j++)
        if (tlm_feasible(p, TLM_MODEL_RATIOS[j], prefill, decode)) r = j; // the largest qualifying one
    return r;
}

Status tlm_slo_prefix(double prefill, double decode, char buf[16]) {
    long a = lround(prefill * 10), b = lround(decode * 10);
    if (a < 2 || a > 10 || fabs(prefill * 10 - (double)a) > 1e-6 || b < 5 || b > 10 || fabs(decode * 10 - (double)b) > 1e-6)
        return status_fail(ST_USAGE, "SLO (%g, %g) is off the decision head's grid (prefill 0.2 ... 1.0, decode 0.5 "
                                     "... 1.0)", prefill, decode);
    if (a == 10) a = 9; // run_e2e_acc.py:95: prefill 1.0 -> [09]
    snprintf(buf, 16, "%s %s ", TLM_SLO_TOKENS[a - 2], TLM_SLO_TOKENS[8 + b - 5]);
    return ST_OK;
}

bool tlm_label(const CorrectTable *t, double prefill, double decode, bool compat, int *pi, int *ri) {
    if (compat) {
        *pi = TLM_N_PROMPT - 1, *ri = TLM_N_MODEL - 1; // (0.1, 1.0)
        for (int j = 0; j < TLM_N_MODEL; j++)
            for (int i = 0; i < TLM_N_PROMPT; i++)
                if (tlm_feasible(TLM_PROMPT_RATIOS[i], TLM_MODEL_RATIOS[j], prefill, decode) && t->ok[i][j])
                    *pi = i, *ri = j;
        return true;
    }
    // cost p r compared exactly, in hundredths: (10 - i)(j + 2); feasibility stays Python's double test
    int bi = -1, bj = -1, best = 1 << 30;
    for (int j = 0; j < TLM_N_MODEL; j++)
        for (int i = 0; i < TLM_N_PROMPT; i++) {
            if (!t->ok[i][j] || !tlm_feasible(TLM_PROMPT_RATIOS[i], TLM_MODEL_RATIOS[j], prefill, decode)) continue;
            int cost = (10 - i) * (j + 2);
            if (cost < best || (cost == best && (j > bj || (j == bj && i < bi)))) best = cost, bi = i, bj = j;
        }
    if (bi < 0) return false;
    *pi = bi, *ri = bj;
    return true;
}

Status tlm_decision_init(Encoder *m, const char *tok_json, const char *what, uint64_t seed, char **tok_out) {
    *tok_out = NULL;
    Tokenizer *tok;
    TRY(tokenizer_load_json_text(&tok, tok_json, strlen(tok_json), what));
    int first = tokenizer_vocab_size(tok);
    tokenizer_free(tok);
    TRY(tokenizer_json_add_tokens(tok_json, strlen(tok_json), TLM_SLO_TOKENS, TLM_N_SLO_TOKENS, first, what, tok_out));
    int V = first + TLM_N_SLO_TOKENS > m->cfg.vocab_size ? first + TLM_N_SLO_TOKENS : m->cfg.vocab_size;
    static const int groups[2] = {TLM_N_PROMPT, TLM_N_MODEL};
    Status st = encoder_resize_vocab(m, V, seed ^ 0x5107u);
    if (st == ST_OK) st = encoder_set_head(m, HEAD_SEQUENCE, TLM_N_PROMPT + TLM_N_MODEL, seed);
    if (st == ST_OK) st = encoder_set_label_groups(m, groups, 2);
    if (st != ST_OK) {
        free(*tok_out);
        *tok_out = NULL;
    }
    return st;
}

Status tlm_decision_check(const Encoder *m, const Tokenizer *tok, const char *what) {
    const EncoderConfig *c = &m->cfg;
    if (c->head != HEAD_SEQUENCE || c->n_groups != 2 || c->group_size[0] != TLM_N_PROMPT ||
        c->group_size[1] != TLM_N_MODEL)
        return status_fail(ST_FORMAT, "%s: not a decision head (a sequence head in label groups of %d prompt and %d "
                                      "model ratios)", what, TLM_N_PROMPT, TLM_N_MODEL);
    for (int k = 0; k < TLM_N_SLO_TOKENS; k++) {
        int32_t id = tokenizer_token_id(tok, TLM_SLO_TOKENS[k]);
        if (id < 0 || id >= c->vocab_size)
            return status_fail(ST_FORMAT, "%s: the tokenizer lacks the SLO token %s (or it is outside the embedding)",
                               what, TLM_SLO_TOKENS[k]);
    }
    return ST_OK;
}

Status tlm_decision_encode(const Tokenizer *tok, const char *prefix, const char *head, const char *tail, int max_len,
                           bool keep_tail, int32_t *ids, int *n) {
    size_t lp = strlen(prefix), lh = strlen(head), lt = strlen(tail);
    char *text = malloc(lp + lh + lt + 1);
    if (!text) return status_fail(ST_OOM, "out of memory");
    memcpy(text, prefix, lp), memcpy(text + lp, head, lh), memcpy(text + lp + lh, tail, lt + 1);
    TokenList all = {0}, t = {0};
    Status st = tokenizer_encode(tok, text, lp + lh + lt, true, &all);
    free(text);
    if (st == ST_OK && all.n < 2) st = status_fail(ST_FORMAT, "the TLM's tokenizer adds no [CLS]/[SEP]");
    if (st != ST_OK) return token_list_free(&all), st;
    int budget = max_len - 2, body = (int)all.n - 2; // without [CLS] and [SEP]
    if (body <= budget) {
        memcpy(ids, all.ids, all.n * sizeof *ids);
        *n = (int)all.n;
    } else {
        int keep_t = 0;
        if (keep_tail && (st = tokenizer_encode(tok, tail, lt, false, &t)) == ST_OK && (int)t.n < budget - 2)
            keep_t = (int)t.n; // the SLO tokens and the start of the head stay too
        ids[0] = all.ids[0];
        memcpy(ids + 1, all.ids + 1, (size_t)(budget - keep_t) * sizeof *ids);
        memcpy(ids + 1 + budget - keep_t, all.ids + 1 + body - keep_t, (size_t)keep_t * sizeof *ids);
        ids[max_len - 1] = all.ids[all.n - 1];
        *n = max_len;
    }
    token_list_free(&all);
    token_list_free(&t);
    return st;
}

char *tlm_decision_query(const char *query, const char *question) {
    EvalPrompt bare = {.system = "", .query = (char *)query};
    return eval_prompt_render(&bare, question);
}

Status tlm_decide(EncoderSession *s, const int32_t *ids, int n, int *pi, int *ri) {
    float lg[TLM_N_PROMPT + TLM_N_MODEL];
    int32_t cu[2] = {0, n};
    EncoderBatch b = {.ids = ids, .cu = cu, .n_seq = 1, .n_tokens = n};
    TRY(encoder_logits(s, &b, lg));
    *pi = 0, *ri = 0;
    for (int i = 1; i < TLM_N_PROMPT; i++)
        if (lg[i] > lg[*pi]) *pi = i;
    for (int j = 1; j < TLM_N_MODEL; j++)
        if (lg[TLM_N_PROMPT + j] > lg[TLM_N_PROMPT + *ri]) *ri = j;
    return ST_OK;
}
