// Labelled texts -> [CLS] pieces [SEP] sequences with per-piece targets.
#include "score_data.h"

#include <stdlib.h>
#include <string.h>

Status score_special_ids(const Tokenizer *enc, int32_t *cls, int32_t *sep, int32_t *pad) {
    const char *names[3] = {"[CLS]", "[SEP]", "[PAD]"};
    int32_t *out[3] = {cls, sep, pad};
    for (int i = 0; i < 3; i++)
        if ((*out[i] = tokenizer_token_id(enc, names[i])) < 0)
            return status_fail(ST_UNSUPPORTED, "the encoder's vocabulary has no %s token (a BERT vocabulary is needed)",
                               names[i]);
    return ST_OK;
}

void score_data_free(ScoreData *d) {
    free(d->ids), free(d->targets), free(d->start);
    *d = (ScoreData){0};
}

static Status grow(ScoreData *d, int64_t *cap, int64_t need) {
    if (need <= *cap) return ST_OK;
    int64_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    int32_t *a = realloc(d->ids, (size_t)c * sizeof *a);
    if (!a) return status_fail(ST_OOM, "out of memory for score-head data");
    d->ids = a;
    int32_t *b = realloc(d->targets, (size_t)c * sizeof *b);
    if (!b) return status_fail(ST_OOM, "out of memory for score-head data");
    d->targets = b;
    *cap = c;
    return ST_OK;
}

Status score_data_build(ScoreData *d, const LabelSet *s, const Tokenizer *enc, int max_len, bool compat) {
    *d = (ScoreData){0};
    if (max_len < 3) return status_fail(ST_USAGE, "sequence length %d: at least 3 ([CLS] piece [SEP])", max_len);
    int32_t cls, sep, pad;
    TRY(score_special_ids(enc, &cls, &sep, &pad));
    if (!(d->start = malloc(((size_t)s->n + 1) * sizeof *d->start))) return status_fail(ST_OOM, "out of memory");
    int64_t cap = 0, N = 0;
    Status st = ST_OK;
    for (int i = 0; st == ST_OK && i < s->n; i++) {
        const LabelledText *x = &s->items[i];
        TokenList l = {0};
        st = tokenizer_encode(enc, x->text, (size_t)x->len, false, &l);
        if (st != ST_OK) break;
        int n = (int)l.n < max_len - 2 ? (int)l.n : max_len - 2;
        int len = compat ? max_len : n + 2;
        st = grow(d, &cap, N + len);
        if (st != ST_OK) {
            token_list_free(&l);
            break;
        }
        int32_t *ids = d->ids + N, *tg = d->targets + N;
        ids[0] = cls, tg[0] = compat ? 1 : -100;
        for (int t = 0, k = 0; t < n; t++) {
            while (k < x->n_spans && x->spans[k].end <= l.starts[t]) k++;
            bool in = k < x->n_spans && x->spans[k].start <= l.starts[t];
            ids[1 + t] = l.ids[t];
            tg[1 + t] = in ? x->spans[k].label : -100;
        }
        ids[n + 1] = sep, tg[n + 1] = compat ? 1 : -100;
        for (int t = n + 2; t < len; t++) ids[t] = pad, tg[t] = 1;
        token_list_free(&l);
        d->start[i] = (int32_t)N;
        N += len;
    }
    if (st != ST_OK) return score_data_free(d), st;
    d->n = s->n, d->start[s->n] = (int32_t)N, d->n_tokens = N;
    d->cls = cls, d->sep = sep, d->pad = pad;
    for (int64_t t = 0; t < N; t++) d->n_counted += d->targets[t] >= 0;
    if (d->n_counted == 0) {
        score_data_free(d);
        return status_fail(ST_FORMAT, "no labelled WordPiece in the data (do the spans cover the text?)");
    }
    return ST_OK;
}
