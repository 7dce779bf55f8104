#include "score.h"

#include "runtime/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 16 // candidates run together; bounds the logits buffer

typedef struct {
    int32_t *ids;  // candidate = prompt + choice, tokenized as one string
    int T;
    int32_t *bare; // the choice alone
    int l;
} Candidate;

static Status encode_ids(const Tokenizer *tok, const char *text, int32_t **ids, int *n) {
    TokenList l;
    TRY(tokenizer_encode(tok, text, strlen(text), false, &l));
    *ids = l.ids;
    *n = (int)l.n;
    l.ids = NULL;
    token_list_free(&l);
    return ST_OK;
}

static void candidates_free(Candidate *c, int n) {
    for (int i = 0; c && i < n; i++) {
        free(c[i].ids);
        free(c[i].bare);
    }
    free(c);
}

static Status build_candidates(const Scorer *s, const char *prompt, const char *const *choices, int n, Candidate **out) {
    Candidate *c = calloc((size_t)n, sizeof *c);
    if (!c) return status_fail(ST_OOM, "out of memory");
    size_t plen = strlen(prompt);
    Status st = ST_OK;
    for (int i = 0; i < n && st == ST_OK; i++) {
        size_t clen = strlen(choices[i]);
        char *text = malloc(plen + clen + 1);
        if (!text) {
            st = status_fail(ST_OOM, "out of memory");
            break;
        }
        memcpy(text, prompt, plen);
        memcpy(text + plen, choices[i], clen + 1);
        st = encode_ids(s->tok, text, &c[i].ids, &c[i].T);
        free(text);
        if (st == ST_OK) st = encode_ids(s->tok, choices[i], &c[i].bare, &c[i].l);
        if (st == ST_OK && (c[i].l == 0 || c[i].l >= c[i].T))
            st = status_fail(ST_USAGE, "choice %d ('%.40s') has %d tokens in a candidate of %d: nothing to score", i,
                             choices[i], c[i].l, c[i].T);
        if (st == ST_OK && c[i].T > s->prefix_cap)
            st = status_fail(ST_USAGE, "candidate of %d tokens exceeds the scorer's %d", c[i].T, s->prefix_cap);
    }
    if (st != ST_OK) {
        candidates_free(c, n);
        return st;
    }
    *out = c;
    return ST_OK;
}

// log_softmax(row)[id], in double for the normaliser.
static float row_logprob(const float *row, int V, int32_t id) {
    float mx = row[0];
    for (int j = 1; j < V; j++) mx = row[j] > mx ? row[j] : mx;
    double sum = 0.0;
    for (int j = 0; j < V; j++) sum += exp((double)(row[j] - mx));
    return (float)((double)(row[id] - mx) - log(sum));
}

// Fills out[c] from logits: get_row(q) returns the logits row that predicts
// candidate token q (i.e. computed at position q - 1).
typedef const float *(*RowFn)(void *ctx, int c, int q);

static void gather_scores(const Candidate *cand, int c0, int n, RowFn row, void *ctx, int V, const char *const *choices,
                          ChoiceScore *out) {
    for (int c = c0; c < c0 + n; c++) {
        const Candidate *k = &cand[c];
        double sum = 0.0;
        for (int j = 0; j < k->l; j++) sum += row_logprob(row(ctx, c, k->T - k->l + j), V, k->bare[j]);
        out[c].sum_logprob = (float)sum;
        out[c].mean_logprob = (float)(sum / k->l);
        out[c].n_tokens = k->l;
        out[c].n_bytes = (int)strlen(choices[c]);
    }
}

// ---- the artifact's path: each chunk as one left-padded batch ------------------

typedef struct {
    const Tensor *logits;
    const Candidate *cand;
    int c0, T; // first candidate of the chunk, padded length of the fed inputs
} PaddedCtx;

static const float *padded_row(void *vctx, int c, int q) {
    PaddedCtx *x = vctx;
    int pad = x->T - (x->cand[c].T - 1); // candidate c fed without its last token
    return tensor_row_f32(x->logits, (int64_t)(c - x->c0) * x->T + pad + q - 1);
}

static Status score_unshared(Scorer *s, Candidate *cand, int n, const char *const *choices, ChoiceScore *out) {
    int V = s->lm.vocab_size;
    for (int c0 = 0; c0 < n; c0 += CHUNK) {
        int m = n - c0 < CHUNK ? n - c0 : CHUNK, T = 0;
        for (int c = c0; c < c0 + m; c++) T = cand[c].T - 1 > T ? cand[c].T - 1 : T;
        int32_t *ids = calloc((size_t)m * (size_t)T, sizeof *ids), *mask = calloc((size_t)m * (size_t)T, sizeof *mask);
        void *sess = NULL;
        Tensor logits = {0};
        Status st = ids && mask ? ST_OK : status_fail(ST_OOM, "out of memory");
        for (int c = c0; st == ST_OK && c < c0 + m; c++) {
            int len = cand[c].T - 1, pad = T - len;
            memcpy(ids + (size_t)(c - c0) * T + pad, cand[c].ids, (size_t)len * sizeof *ids);
            for (int t = 0; t < len; t++) mask[(size_t)(c - c0) * T + pad + t] = 1;
        }
        if (st == ST_OK) st = clm_session_new(&s->lm, m, T, s->dev, &sess);
        if (st == ST_OK && s->view) st = clm_set_view(&s->lm, sess, s->view);
        if (st == ST_OK) st = tensor_alloc_2d(&logits, DT_F32, (Device){DEV_CPU, 0}, (int64_t)m * T, V);
        if (st == ST_OK) st = clm_forward(&s->lm, sess, ids, mask, T, LOGITS_ALL, &logits);
        clm_session_free(&s->lm, sess);
        if (st == ST_OK) {
            PaddedCtx ctx = {&logits, cand, c0, T};
            gather_scores(cand, c0, m, padded_row, &ctx, V, choices, out);
            s->tokens_run += (long)m * T;
        }
        tensor_free(&logits);
        free(ids);
        free(mask);
        TRY(st);
    }
    return ST_OK;
}

// ---- the shared-prefix path ------------------------------------------------------

// Tokens every candidate shares, short enough that every scored token's
// prediction (at position T - l - 1 and later) falls after it.
static int shared_split(const Candidate *cand, int n) {
    int split = cand[0].T - cand[0].l - 1;
    for (int c = 0; c < n; c++) {
        int limit = cand[c].T - cand[c].l - 1;
        if (limit < split) split = limit;
        int k = 0;
        while (k < split && k < cand[c].T && cand[c].ids[k] == cand[0].ids[k]) k++;
        split = k;
    }
    return split < 0 ? 0 : split;
}

// Brings the cached prefix to ids[0:n], reusing what it already holds.
static Status prefix_extend(Scorer *s, const int32_t *ids, int n) {
    if (!s->prefix) {
        TRY(clm_session_new(&s->lm, 1, s->prefix_cap, s->dev, &s->prefix));
        if (s->view) TRY(clm_set_view(&s->lm, s->prefix, s->view));
    }
    int keep = 0, cached = s->lm.ops->n_past(s->prefix);
    while (keep < n && keep < cached && s->prefix_ids[keep] == ids[keep]) keep++;
    s->lm.ops->truncate(s->prefix, keep);
    if (keep < n) {
        TRY(clm_forward(&s->lm, s->prefix, ids + keep, NULL, n - keep, LOGITS_NONE, NULL));
        memcpy(s->prefix_ids + keep, ids + keep, (size_t)(n - keep) * sizeof *ids);
        s->tokens_run += n - keep;
    }
    return ST_OK;
}

typedef struct {
    const Tensor *logits;
    int c0, R, split;
} SharedCtx;

static const float *shared_row(void *vctx, int c, int q) {
    SharedCtx *x = vctx;
    return tensor_row_f32(x->logits, (int64_t)(c - x->c0) * x->R + (q - 1 - x->split));
}

static Status score_shared(Scorer *s, Candidate *cand, int n, const char *const *choices, ChoiceScore *out) {
    int V = s->lm.vocab_size, split = shared_split(cand, n);
    TRY(prefix_extend(s, cand[0].ids, split));
    for (int c0 = 0; c0 < n; c0 += CHUNK) {
        int m = n - c0 < CHUNK ? n - c0 : CHUNK, R = 0;
        for (int c = c0; c < c0 + m; c++) R = cand[c].T - 1 - split > R ? cand[c].T - 1 - split : R;
        // the remainders, right-padded: real tokens stay contiguous after the prefix
        int32_t *ids = calloc((size_t)m * (size_t)R, sizeof *ids), *mask = calloc((size_t)m * (size_t)R, sizeof *mask);
        void *sess = NULL;
        Tensor logits = {0};
        Status st = ids && mask ? ST_OK : status_fail(ST_OOM, "out of memory");
        for (int c = c0; st == ST_OK && c < c0 + m; c++) {
            int len = cand[c].T - 1 - split;
            memcpy(ids + (size_t)(c - c0) * R, cand[c].ids + split, (size_t)len * sizeof *ids);
            for (int t = 0; t < len; t++) mask[(size_t)(c - c0) * R + t] = 1;
        }
        if (st == ST_OK) st = clm_session_new(&s->lm, m, R, s->dev, &sess);
        if (st == ST_OK && s->view) st = clm_set_view(&s->lm, sess, s->view);
        if (st == ST_OK) st = s->lm.ops->attach(sess, s->prefix, split);
        if (st == ST_OK) st = tensor_alloc_2d(&logits, DT_F32, (Device){DEV_CPU, 0}, (int64_t)m * R, V);
        if (st == ST_OK) st = clm_forward(&s->lm, sess, ids, mask, R, LOGITS_ALL, &logits);
        clm_session_free(&s->lm, sess);
        if (st == ST_OK) {
            SharedCtx ctx = {&logits, c0, R, split};
            gather_scores(cand, c0, m, shared_row, &ctx, V, choices, out);
            s->tokens_run += (long)m * R;
        }
        tensor_free(&logits);
        free(ids);
        free(mask);
        TRY(st);
    }
    return ST_OK;
}

Status scorer_init(Scorer *s, const LlamaModel *m, const Tokenizer *tok, Device dev, bool share_prefix, int max_tokens) {
    CausalLM lm = causal_lm_llama(m);
    return scorer_init_lm(s, &lm, tok, dev, share_prefix, max_tokens);
}

Status scorer_init_lm(Scorer *s, const CausalLM *lm, const Tokenizer *tok, Device dev, bool share_prefix,
                      int max_tokens) {
    memset(s, 0, sizeof *s);
    s->lm = *lm;
    s->tok = tok;
    s->dev = dev;
    s->share_prefix = share_prefix;
    s->prefix_cap = max_tokens;
    s->prefix_ids = malloc((size_t)max_tokens * sizeof *s->prefix_ids);
    return s->prefix_ids ? ST_OK : status_fail(ST_OOM, "out of memory");
}

Status scorer_set_view(Scorer *s, const LlamaView *view) {
    s->view = view;
    if (!s->prefix) return ST_OK;
    s->lm.ops->reset(s->prefix); // the cached prefix belongs to the old view
    return clm_set_view(&s->lm, s->prefix, view);
}

void scorer_free(Scorer *s) {
    clm_session_free(&s->lm, s->prefix);
    free(s->prefix_ids);
    memset(s, 0, sizeof *s);
}

Status scorer_score(Scorer *s, const char *prompt, const char *const *choices, int n_choices, ChoiceScore *out) {
    if (n_choices <= 0) return status_fail(ST_USAGE, "no choices to score");
    Candidate *cand = NULL;
    TRY(build_candidates(s, prompt, choices, n_choices, &cand));
    Status st = s->share_prefix ? score_shared(s, cand, n_choices, choices, out)
                                : score_unshared(s, cand, n_choices, choices, out);
    candidates_free(cand, n_choices);
    return st;
}

Status scorer_count_tokens(const Scorer *s, const char *text, int *n) {
    int32_t *ids = NULL;
    TRY(encode_ids(s->tok, text, &ids, n));
    free(ids);
    return ST_OK;
}

Status scorer_prefill(Scorer *s, const char *prompt, int *n_tokens, double *prefill_ms, double *decode_ms) {
    int32_t *ids = NULL;
    int n = 0;
    TRY(encode_ids(s->tok, prompt, &ids, &n));
    Status st = n > 0 && n < s->prefix_cap ? ST_OK
                                           : status_fail(ST_USAGE, "a prompt of %d tokens: the scorer takes 1 ... %d", n,
                                                         s->prefix_cap - 1);
    if (st == ST_OK && !s->prefix) {
        st = clm_session_new(&s->lm, 1, s->prefix_cap, s->dev, &s->prefix);
        if (st == ST_OK && s->view) st = clm_set_view(&s->lm, s->prefix, s->view);
    }
    Tensor logits = {0};
    if (st == ST_OK) st = tensor_alloc_2d(&logits, DT_F32, (Device){DEV_CPU, 0}, 1, s->lm.vocab_size);
    double t0 = 0, t1 = 0, t2 = 0;
    if (st == ST_OK) {
        s->lm.ops->reset(s->prefix);
        t0 = time_now();
        st = clm_forward(&s->lm, s->prefix, ids, NULL, n, LOGITS_LAST, &logits);
        t1 = time_now();
    }
    if (st == ST_OK) { // one decode step with the greedy token, then back to the prompt
        const float *row = tensor_row_f32(&logits, 0);
        int32_t next = 0;
        for (int j = 1; j < s->lm.vocab_size; j++)
            if (row[j] > row[next]) next = j;
        st = clm_forward(&s->lm, s->prefix, &next, NULL, 1, LOGITS_LAST, &logits);
        t2 = time_now();
        s->lm.ops->truncate(s->prefix, n);
    }
    if (st == ST_OK) {
        memcpy(s->prefix_ids, ids, (size_t)n * sizeof *ids);
        s->tokens_run += n + 1;
        *n_tokens = n;
        *prefill_ms = (t1 - t0) * 1e3;
        *decode_ms = (t2 - t1) * 1e3;
    } else if (s->prefix) {
        s->lm.ops->reset(s->prefix);
    }
    tensor_free(&logits);
    free(ids);
    return st;
}
