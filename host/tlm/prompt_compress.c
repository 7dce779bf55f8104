// System-prompt compression with the TLM: the ratio formula, the encoder's
// scores (cached per system prompt) and the three methods. See prompt_compress.h.
#include "prompt_compress.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rng.h"
#include "tlm/compress.h"
#include "tlm/score_data.h"

struct PromptCompressor {
    PromptCompressorConfig cfg;
    EncoderSession *sess;   // windows of max_len tokens
    int32_t cls, sep, pad, unk;
    int32_t *win_ids;       // [max_len]
    float *win_logits;      // [max_len, 2]
    // the cached system prompt
    char *text;
    size_t len;
    TokenList pieces;       // its encoder pieces (no special tokens)
    float *p_keep;          // [pieces.n] softmax(logits)[1]
    float *enc_logit1;      // [n_enc] class-1 logits over the windows [CLS] w [SEP], specials included
    size_t n_enc;
    int32_t *llm_ids;       // [S] the LLM ids with its special tokens (compat)
    long S;
    // llmlingua2: the classifier's output per chunk of the cached prompt (the
    // chunks do not depend on the rate, so each runs once)
    struct ChunkScores {
        char *chunk;
        size_t len;
        Lingua2Scores sc;
    } *chunks;
    int n_chunks;
};

static void chunks_clear(PromptCompressor *c) {
    for (int i = 0; i < c->n_chunks; i++) free(c->chunks[i].chunk), lingua2_scores_free(&c->chunks[i].sc);
    free(c->chunks);
    c->chunks = NULL, c->n_chunks = 0;
}

// A deep copy of src into dst (malloc'd, as the callback contract wants).
static Status scores_copy(Lingua2Scores *dst, const Lingua2Scores *src) {
    memset(dst, 0, sizeof *dst);
    dst->tokens = calloc(src->n ? src->n : 1, sizeof *dst->tokens);
    dst->probs = malloc((src->n ? src->n : 1) * sizeof *dst->probs);
    if (!dst->tokens || !dst->probs) return lingua2_scores_free(dst), status_fail(ST_OOM, "out of memory");
    dst->n = src->n;
    memcpy(dst->probs, src->probs, src->n * sizeof *dst->probs);
    for (size_t i = 0; i < src->n; i++)
        if (!(dst->tokens[i] = strdup(src->tokens[i]))) return lingua2_scores_free(dst), status_fail(ST_OOM, "out of memory");
    return ST_OK;
}

Status prompt_method_parse(const char *name, PromptMethod *m) {
    if (!strcmp(name, "score")) *m = PC_SCORE;
    else if (!strcmp(name, "random")) *m = PC_RANDOM;
    else if (!strcmp(name, "llmlingua2")) *m = PC_LLMLINGUA2;
    else return status_fail(ST_USAGE, "--method: expected score, random or llmlingua2, got '%s'", name);
    return ST_OK;
}

const char *prompt_method_name(PromptMethod m) {
    return m == PC_RANDOM ? "random" : m == PC_LLMLINGUA2 ? "llmlingua2" : "score";
}

void prompt_compressor_free(PromptCompressor *c) {
    if (!c) return;
    if (c->sess) encoder_session_free(c->sess);
    free(c->win_ids), free(c->win_logits), free(c->text), free(c->p_keep), free(c->enc_logit1), free(c->llm_ids);
    token_list_free(&c->pieces);
    chunks_clear(c);
    free(c);
}

Status prompt_compressor_new(PromptCompressor **out, const PromptCompressorConfig *cfg) {
    *out = NULL;
    PromptCompressor *c = calloc(1, sizeof *c);
    if (!c) return status_fail(ST_OOM, "out of memory");
    c->cfg = *cfg;
    if (c->cfg.max_len <= 0) c->cfg.max_len = 512;
    Status st = ST_OK;
    bool needs_tlm = cfg->method != PC_RANDOM || cfg->compat;
    if (!cfg->enc) st = status_fail(ST_USAGE, "compress: the TLM's tokenizer is needed");
    if (st == ST_OK && needs_tlm) {
        if (!cfg->tlm || cfg->tlm->cfg.head != HEAD_TOKEN || cfg->tlm->cfg.num_labels != 2)
            st = status_fail(ST_USAGE, "compress: the TLM has no score head (a token-classification head of 2 labels)");
        if (st == ST_OK && c->cfg.max_len > cfg->tlm->cfg.max_position) c->cfg.max_len = cfg->tlm->cfg.max_position;
        if (st == ST_OK) st = encoder_session_new(&c->sess, cfg->tlm, c->cfg.max_len);
    }
    if (st == ST_OK && cfg->method == PC_LLMLINGUA2 && !cfg->cl100k)
        st = status_fail(ST_USAGE, "compress: llmlingua2 weighs words by cl100k_base tokens (datasets/fetch.sh tiktoken)");
    if (st == ST_OK && cfg->compat && (cfg->method != PC_SCORE || !cfg->llm_tok))
        st = status_fail(ST_USAGE, "compress: --compat artifact is the score method's, and needs the LLM's tokenizer");
    if (st == ST_OK && cfg->method == PC_LLMLINGUA2 && c->cfg.max_len < 512)
        st = status_fail(ST_UNSUPPORTED, "compress: LLMLingua-2 scores chunks of 510 pieces; the TLM's encoder has %d "
                         "positions", c->cfg.max_len);
    if (st == ST_OK) st = score_special_ids(cfg->enc, &c->cls, &c->sep, &c->pad);
    if (st == ST_OK) c->unk = tokenizer_token_id(cfg->enc, "[UNK]");
    if (st == ST_OK && c->unk < 0) st = status_fail(ST_UNSUPPORTED, "the TLM's vocabulary has no [UNK] token");
    c->win_ids = malloc((size_t)c->cfg.max_len * sizeof *c->win_ids);
    c->win_logits = malloc((size_t)c->cfg.max_len * 2 * sizeof *c->win_logits);
    if (st == ST_OK && (!c->win_ids || !c->win_logits)) st = status_fail(ST_OOM, "out of memory");
    if (st != ST_OK) return prompt_compressor_free(c), st;
    *out = c;
    return ST_OK;
}

static Status count_tokens(const PromptCompressor *c, const char *text, size_t len, int32_t **ids, long *n) {
    const Tokenizer *t = c->cfg.llm_tok ? c->cfg.llm_tok : c->cfg.enc;
    TokenList l = {0};
    TRY(tokenizer_encode(t, text, len, c->cfg.llm_tok != NULL, &l));
    *n = (long)l.n;
    Status st = ST_OK;
    if (ids) {
        *ids = malloc((l.n + 1) * sizeof **ids);
        if (!*ids) st = status_fail(ST_OOM, "out of memory");
        else if (l.n) memcpy(*ids, l.ids, l.n * sizeof **ids);
    }
    token_list_free(&l);
    return st;
}

Status prompt_count_llm(const PromptCompressor *c, const char *text, long *n) {
    return count_tokens(c, text, strlen(text), NULL, n);
}

// Runs the score head over windows [CLS] w [SEP] of the pieces: p_keep of each
// piece and the class-1 logits of every window position.
static Status score_pieces(PromptCompressor *c) {
    size_t n = c->pieces.n, w = (size_t)c->cfg.max_len - 2, n_win = (n + w - 1) / w;
    c->n_enc = n + 2 * (n_win ? n_win : 1);
    c->p_keep = malloc((n ? n : 1) * sizeof *c->p_keep);
    c->enc_logit1 = malloc(c->n_enc * sizeof *c->enc_logit1);
    if (!c->p_keep || !c->enc_logit1) return status_fail(ST_OOM, "out of memory");
    size_t at_enc = 0;
    for (size_t at = 0; at < n || (n == 0 && at_enc == 0); at += w) {
        size_t k = n - at < w ? n - at : w;
        c->win_ids[0] = c->cls;
        memcpy(c->win_ids + 1, c->pieces.ids + at, k * sizeof *c->win_ids);
        c->win_ids[k + 1] = c->sep;
        int32_t cu[2] = {0, (int32_t)k + 2};
        EncoderBatch b = {.ids = c->win_ids, .cu = cu, .n_seq = 1, .n_tokens = (int)k + 2};
        TRY(encoder_logits(c->sess, &b, c->win_logits));
        for (size_t i = 0; i < k + 2; i++) c->enc_logit1[at_enc + i] = c->win_logits[2 * i + 1];
        for (size_t i = 0; i < k; i++) {
            float l0 = c->win_logits[2 * (i + 1)], l1 = c->win_logits[2 * (i + 1) + 1];
            c->p_keep[at + i] = 1.0f / (1.0f + expf(l0 - l1));
        }
        at_enc += k + 2;
        if (n == 0) break;
    }
    return ST_OK;
}

// Makes sys the cached system prompt: its pieces, S, LLM ids and (with a TLM) scores.
static Status set_system(PromptCompressor *c, const char *sys) {
    size_t len = strlen(sys);
    if (c->text && c->len == len && !memcmp(c->text, sys, len)) return ST_OK;
    free(c->text), free(c->p_keep), free(c->enc_logit1), free(c->llm_ids);
    token_list_free(&c->pieces);
    chunks_clear(c);
    c->text = NULL, c->p_keep = NULL, c->enc_logit1 = NULL, c->llm_ids = NULL, c->n_enc = 0;
    TRY(tokenizer_encode(c->cfg.enc, sys, len, false, &c->pieces));
    TRY(count_tokens(c, sys, len, &c->llm_ids, &c->S));
    if (c->sess && c->cfg.method != PC_LLMLINGUA2) TRY(score_pieces(c));
    if (!(c->text = malloc(len + 1))) return status_fail(ST_OOM, "out of memory");
    memcpy(c->text, sys, len + 1);
    c->len = len;
    return ST_OK;
}

// ---- LLMLingua-2's classifier callback -----------------------------------------

// [CLS] + tokenize(chunk) + [SEP] cut to max_len, "[NEWi]" kept as one token (its
// encoder row is [UNK]: llmlingua's added rows are random), probs = softmax[1].
static Status lingua2_run(PromptCompressor *c, const char *chunk, size_t len, Lingua2Scores *out) {
    memset(out, 0, sizeof *out);
    size_t cap = (size_t)c->cfg.max_len;
    char **toks = calloc(cap, sizeof *toks);
    if (!toks) return status_fail(ST_OOM, "out of memory");
    size_t n = 0;
    Status st = ST_OK;
    c->win_ids[n] = c->cls, toks[n++] = strdup("[CLS]");
    for (size_t i = 0; st == ST_OK && i < len && n < cap;) {
        // the next "[NEW<digits>]" marker
        const char *m = NULL;
        size_t mlen = 0;
        for (size_t j = i; j + 5 <= len && !m; j++) {
            if (memcmp(chunk + j, "[NEW", 4)) continue;
            size_t e = j + 4;
            while (e < len && chunk[e] >= '0' && chunk[e] <= '9') e++;
            if (e > j + 4 && e < len && chunk[e] == ']') m = chunk + j, mlen = e + 1 - j;
        }
        size_t seg_end = m ? (size_t)(m - chunk) : len;
        TokenList l = {0};
        st = tokenizer_encode(c->cfg.enc, chunk + i, seg_end - i, false, &l);
        for (size_t k = 0; st == ST_OK && k < l.n && n < cap; k++) {
            const char *s = tokenizer_id_to_token(c->cfg.enc, l.ids[k]);
            c->win_ids[n] = l.ids[k], toks[n++] = strdup(s ? s : "[UNK]");
        }
        token_list_free(&l);
        if (m && n < cap) c->win_ids[n] = c->unk, toks[n++] = strndup(m, mlen);
        i = m ? seg_end + mlen : len;
    }
    if (n < cap) c->win_ids[n] = c->sep, toks[n++] = strdup("[SEP]");
    else c->win_ids[cap - 1] = c->sep, free(toks[cap - 1]), toks[cap - 1] = strdup("[SEP]");
    for (size_t k = 0; k < n; k++)
        if (!toks[k]) st = status_fail(ST_OOM, "out of memory");
    float *probs = malloc((n ? n : 1) * sizeof *probs);
    if (st == ST_OK && !probs) st = status_fail(ST_OOM, "out of memory");
    if (st == ST_OK) {
        int32_t cu[2] = {0, (int32_t)n};
        EncoderBatch b = {.ids = c->win_ids, .cu = cu, .n_seq = 1, .n_tokens = (int)n};
        st = encoder_logits(c->sess, &b, c->win_logits);
        for (size_t k = 0; st == ST_OK && k < n; k++) {
            float l0 = c->win_logits[2 * k], l1 = c->win_logits[2 * k + 1], mx = l0 > l1 ? l0 : l1;
            float e0 = expf(l0 - mx), e1 = expf(l1 - mx);
            probs[k] = e1 / (e0 + e1);
        }
    }
    if (st != ST_OK) {
        for (size_t k = 0; k < n; k++) free(toks[k]);
        free(toks), free(probs);
        return st;
    }
    out->tokens = toks, out->probs = probs, out->n = n;
    return ST_OK;
}

static Status lingua2_score(void *ctx, const char *chunk, size_t len, Lingua2Scores *out) {
    PromptCompressor *c = ctx;
    for (int i = 0; i < c->n_chunks; i++)
        if (c->chunks[i].len == len && !memcmp(c->chunks[i].chunk, chunk, len)) return scores_copy(out, &c->chunks[i].sc);
    TRY(lingua2_run(c, chunk, len, out));
    struct ChunkScores *p = realloc(c->chunks, ((size_t)c->n_chunks + 1) * sizeof *p);
    if (!p) return ST_OK; // not cached: computed again next time
    c->chunks = p;
    struct ChunkScores *e = &c->chunks[c->n_chunks];
    if (!(e->chunk = malloc(len ? len : 1))) return ST_OK;
    memcpy(e->chunk, chunk, len);
    e->len = len;
    if (scores_copy(&e->sc, out) != ST_OK) {
        free(e->chunk);
        return ST_OK;
    }
    c->n_chunks++;
    return ST_OK;
}

// ---- compress ----------------------------------------------------------------------

Status prompt_compress(PromptCompressor *c, const char *sys, long Q, double p, uint64_t request, char **out,
                       long *kept) {
    *out = NULL;
    if (kept) *kept = 0;
    if (!(p > 0 && p <= 1)) return status_fail(ST_USAGE, "prompt ratio %g: expected 0 < p <= 1", p);
    if (Q < 0) return status_fail(ST_USAGE, "query of %ld tokens", Q);
    TRY(set_system(c, sys));
    double sys_ratio = tlm_sys_ratio(c->S, Q, p);
    // the artifact counts int(sys_ratio S) + 1 LLM tokens and keeps that many encoder
    // positions; the paper's selection keeps that share of the encoder's pieces
    long count = tlm_keep_count(sys_ratio, c->cfg.compat ? c->S : (long)c->pieces.n);
    if (p == 1 && !c->cfg.compat) { // nothing to drop
        if (!(*out = strdup(sys))) return status_fail(ST_OOM, "out of memory");
        if (kept) *kept = (long)c->pieces.n;
        return ST_OK;
    }
    size_t out_len;
    switch (c->cfg.method) {
    case PC_SCORE:
        if (c->cfg.compat) {
            TRY(tlm_compress_compat(c->enc_logit1, c->n_enc, count, c->llm_ids, (size_t)c->S, c->cfg.enc, false, out,
                                    &out_len));
        } else {
            TlmTokens t = {.text = c->text, .len = c->len, .starts = c->pieces.starts, .ends = c->pieces.ends,
                           .scores = c->p_keep, .n = c->pieces.n};
            TRY(tlm_compress_paper(&t, count, out, &out_len));
        }
        break;
    case PC_RANDOM: {
        float *r = malloc((c->pieces.n ? c->pieces.n : 1) * sizeof *r);
        if (!r) return status_fail(ST_OOM, "out of memory");
        Rng rng;
        rng_seed(&rng, rng_mix(c->cfg.seed, request));
        for (size_t i = 0; i < c->pieces.n; i++) r[i] = (float)rng_uniform(&rng);
        TlmTokens t = {.text = c->text, .len = c->len, .starts = c->pieces.starts, .ends = c->pieces.ends,
                       .scores = r, .n = c->pieces.n};
        Status st = tlm_compress_paper(&t, count, out, &out_len);
        free(r);
        TRY(st);
        break;
    }
    case PC_LLMLINGUA2: {
        static const char *const force[] = {"\n", "?"};
        Lingua2 l = {.encoder = c->cfg.enc, .cl100k = c->cfg.cl100k, .score = lingua2_score, .ctx = c,
                     .force_tokens = force, .n_force = 2};
        double rate = sys_ratio < 0.01 ? 0.01 : sys_ratio; // numpy.percentile takes q <= 100
        TRY(lingua2_compress(&l, c->text, c->len, rate, out, &out_len));
        break;
    }
    }
    if (kept) *kept = c->cfg.method == PC_LLMLINGUA2 ? -1 : count < (long)c->pieces.n ? count : (long)c->pieces.n;
    return ST_OK;
}

long prompt_system_tokens(const PromptCompressor *c) { return c->text ? c->S : 0; }

Status prompt_compress_request(PromptCompressor *c, const EvalPrompt *prompt, const char *question,
                               const char *const *choices, int n_choices, double p, uint64_t request, char **sys_out,
                               long *llm_tokens) {
    *sys_out = NULL;
    EvalPrompt bare = {.system = "", .query = prompt->query};
    char *query = eval_prompt_render(&bare, question);
    if (!query) return status_fail(ST_OOM, "out of memory");
    long Q = 0;
    Status st = ST_OK;
    size_t lq = strlen(query);
    for (int k = 0; st == ST_OK && k < n_choices; k++) {
        size_t lc = strlen(choices[k]);
        char *qa = malloc(lq + lc + 1);
        if (!qa) {
            st = status_fail(ST_OOM, "out of memory");
            break;
        }
        memcpy(qa, query, lq), memcpy(qa + lq, choices[k], lc + 1);
        long n;
        st = prompt_count_llm(c, qa, &n);
        if (st == ST_OK && n > Q) Q = n;
        free(qa);
    }
    free(query);
    if (st == ST_OK) st = prompt_compress(c, prompt->system, Q, p, request, sys_out, NULL);
    if (st == ST_OK && llm_tokens) st = prompt_count_llm(c, *sys_out, llm_tokens);
    if (st != ST_OK) {
        free(*sys_out);
        *sys_out = NULL;
    }
    return st;
}
