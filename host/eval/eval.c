#include "eval.h"

#include <stdlib.h>
#include <string.h>

Status eval_parse_metric(const char *name, Metric *m) {
    if (!name || strcmp(name, "artifact") == 0) *m = METRIC_ARTIFACT;
    else if (strcmp(name, "acc") == 0) *m = METRIC_ACC;
    else if (strcmp(name, "acc_norm") == 0) *m = METRIC_ACC_NORM;
    else return status_fail(ST_USAGE, "--metric: expected artifact, acc or acc_norm, got '%s'", name);
    return ST_OK;
}

const char *eval_metric_name(Metric m) {
    return m == METRIC_ACC ? "acc" : m == METRIC_ACC_NORM ? "acc_norm" : "artifact";
}

static float metric_value(Metric m, const ChoiceScore *c) {
    switch (m) {
    case METRIC_ARTIFACT: return c->mean_logprob;
    case METRIC_ACC: return c->sum_logprob;
    case METRIC_ACC_NORM: return c->sum_logprob / (float)(c->n_bytes > 0 ? c->n_bytes : 1);
    }
    return c->mean_logprob;
}

// The Octopus guard (Octopus.py:2216-2221, see prompts.c): while the rendered
// prompt's tokens (special tokens included) + 1 exceed 1900, drop the second
// "\n\n"-separated block. The artifact dies when one block is left; so do we,
// with a message.
static Status octopus_guard(const Tokenizer *tok, char *prompt) {
    for (;;) {
        TokenList l;
        TRY(tokenizer_encode(tok, prompt, strlen(prompt), true, &l));
        size_t n = l.n;
        token_list_free(&l);
        if (n + 1 <= 1900) return ST_OK;
        char *first = strstr(prompt, "\n\n");
        if (!first) return status_fail(ST_USAGE, "Octopus prompt of %zu tokens cannot be shortened below 1900", n);
        char *second = strstr(first + 2, "\n\n");
        if (second) memmove(first, second, strlen(second) + 1); // block 0, then from the next separator on
        else first[0] = '\0';                                   // block 1 was the last: drop it
    }
}

// Argmax (first maximum wins); Octopus counts a hit when the answer ranks in
// the top five, ties going to the earlier choice as torch.topk orders them.
static bool judge(DatasetId ds, const float *score, int n, int answer, int *pred) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (score[i] > score[best]) best = i;
    *pred = best;
    if (answer < 0) return false;
    if (ds != DS_OCTOPUS) return best == answer;
    int above = 0;
    for (int i = 0; i < n; i++)
        if (score[i] > score[answer] || (score[i] == score[answer] && i < answer)) above++;
    return above < 5;
}

Status eval_render(const Tokenizer *tok, const EvalPrompt *p, DatasetId ds, const McQuestion *q, char **text) {
    *text = eval_prompt_render(p, q->question);
    if (!*text) return status_fail(ST_OOM, "out of memory");
    Status st = ds == DS_OCTOPUS ? octopus_guard(tok, *text) : ST_OK;
    if (st != ST_OK) {
        free(*text);
        *text = NULL;
    }
    return st;
}

Status eval_question(Scorer *s, const EvalPrompt *p, DatasetId ds, const McQuestion *q, Metric metric, EvalResult *out) {
    memset(out, 0, sizeof *out);
    char *text = NULL;
    TRY(eval_render(s->tok, p, ds, q, &text));
    ChoiceScore *cs = malloc((size_t)q->n_choices * sizeof *cs);
    out->scores = malloc((size_t)q->n_choices * sizeof *out->scores);
    Status st = cs && out->scores ? ST_OK : status_fail(ST_OOM, "out of memory");
    if (st == ST_OK) st = scorer_score(s, text, (const char *const *)q->choices, q->n_choices, cs);
    if (st == ST_OK) {
        for (int c = 0; c < q->n_choices; c++) out->scores[c] = metric_value(metric, &cs[c]);
        out->correct = judge(ds, out->scores, q->n_choices, q->answer, &out->pred);
    } else {
        free(out->scores);
        out->scores = NULL;
    }
    free(cs);
    free(text);
    return st;
}
