// Prompt-compression rules: ElastiLM's system-prompt selection (paper and
// compat modes) and LLMLingua-2 (llmlingua 0.2.2). See compress.h.
#include "tlm/compress.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/stats.h"
#include "runtime/strbuf.h"

// ---- small string helpers ---------------------------------------------------

typedef struct {
    char **s;
    size_t n, cap;
} StrList;

static void strlist_free(StrList *l) {
    for (size_t i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    memset(l, 0, sizeof *l);
}

static Status strlist_push_n(StrList *l, const char *s, size_t len) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **p = realloc(l->s, cap * sizeof *p);
        if (!p) return status_fail(ST_OOM, "out of memory");
        l->s = p;
        l->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c) return status_fail(ST_OOM, "out of memory");
    memcpy(c, s, len);
    c[len] = '\0';
    l->s[l->n++] = c;
    return ST_OK;
}

// strbuf_add with a status.
static Status buf_add(StrBuf *b, const char *s, size_t len) {
    return strbuf_add(b, s, len) ? ST_OK : status_fail(ST_OOM, "out of memory");
}

// The string (malloc'd, "" when nothing was added) and its length; b is reset.
static Status buf_finish(StrBuf *b, char **out, size_t *out_len) {
    size_t len = b->len;
    char *s = strbuf_take(b);
    if (!s) return status_fail(ST_OOM, "out of memory");
    *out = s;
    if (out_len) *out_len = len;
    return ST_OK;
}

// s with every occurrence of from replaced by to (malloc'd), Python's str.replace.
static char *replace_all(const char *s, size_t len, const char *from, const char *to, size_t *out_len) {
    size_t fl = strlen(from), tl = strlen(to);
    StrBuf b = {0};
    size_t i = 0;
    while (i < len) {
        const char *hit = fl ? memmem(s + i, len - i, from, fl) : NULL;
        size_t stop = hit ? (size_t)(hit - s) : len;
        if (buf_add(&b, s + i, stop - i) != ST_OK || (hit && buf_add(&b, to, tl) != ST_OK)) {
            free(b.s);
            return NULL;
        }
        i = hit ? stop + fl : len;
    }
    size_t n = b.len;
    char *r = strbuf_take(&b);
    if (r) *out_len = n;
    return r;
}

static bool is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

// ---- ElastiLM ---------------------------------------------------------------

double tlm_sys_ratio(long S, long Q, double p) {
    if (S <= 0) return 0.0;
    double r = ((double)(S + Q) * p - (double)Q) / (double)S;
    return r > 0.0 ? r : 0.0;
}

long tlm_keep_count(double sys_ratio, long S) { return (long)(sys_ratio * (double)S) + 1; }

typedef struct {
    float score;
    size_t pos;
} Ranked;

static int cmp_desc(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int cmp_asc(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static bool is_text_token(const TlmTokens *t, size_t i) {
    return !(t->special && t->special[i]) && t->ends[i] > t->starts[i];
}

Status tlm_compress_paper(const TlmTokens *t, long count, char **out, size_t *out_len) {
    *out = NULL;
    for (size_t i = 0; i < t->n; i++)
        if (t->starts[i] < 0 || t->ends[i] < t->starts[i] || (size_t)t->ends[i] > t->len)
            return status_fail(ST_USAGE, "compress: token %zu has span [%d, %d) outside the text (%zu bytes)", i,
                               t->starts[i], t->ends[i], t->len);
    Ranked *r = malloc((t->n + 1) * sizeof *r);
    bool *keep = calloc(t->n + 1, sizeof *keep);
    if (!r || !keep) {
        free(r);
        free(keep);
        return status_fail(ST_OOM, "out of memory");
    }
    size_t m = 0;
    for (size_t i = 0; i < t->n; i++)
        if (is_text_token(t, i)) r[m++] = (Ranked){t->scores[i], i};
    qsort(r, m, sizeof *r, cmp_desc);
    size_t k = count <= 0 ? 0 : (size_t)count < m ? (size_t)count : m;
    for (size_t i = 0; i < k; i++) keep[r[i].pos] = true;
    free(r);

    StrBuf b = {0};
    Status st = ST_OK;
    long prev = -1;      // last kept token
    bool dropped = false; // a text token was dropped since prev
    size_t written_to = 0; // text offset up to which bytes were copied
    for (size_t i = 0; i < t->n && st == ST_OK; i++) {
        if (!is_text_token(t, i)) continue;
        if (!keep[i]) {
            dropped = true;
            continue;
        }
        size_t s = (size_t)t->starts[i], e = (size_t)t->ends[i];
        if (prev >= 0) {
            size_t gs = written_to, ge = s > written_to ? s : written_to;
            if (!dropped) {
                st = buf_add(&b, t->text + gs, ge - gs);
            } else {
                // the last whitespace run in the gap, else " "
                size_t we = ge;
                while (we > gs && !is_ws((unsigned char)t->text[we - 1])) we--;
                size_t ws = we;
                while (ws > gs && is_ws((unsigned char)t->text[ws - 1])) ws--;
                st = we > ws ? buf_add(&b, t->text + ws, we - ws) : buf_add(&b, " ", 1);
            }
        }
        size_t from = prev >= 0 && s < written_to ? written_to : s;
        if (st == ST_OK && e > from) st = buf_add(&b, t->text + from, e - from);
        if (prev < 0 || e > written_to) written_to = e;
        prev = (long)i;
        dropped = false;
    }
    free(keep);
    if (st == ST_OK) st = buf_finish(&b, out, out_len);
    if (st != ST_OK) free(b.s);
    return st;
}

void tlm_select_lowest(const float *scores, size_t n, long count, bool *selected) {
    memset(selected, 0, n * sizeof *selected);
    Ranked *r = malloc((n + 1) * sizeof *r);
    if (!r) return;
    for (size_t i = 0; i < n; i++) r[i] = (Ranked){scores[i], i};
    qsort(r, n, sizeof *r, cmp_asc);
    size_t k = count <= 0 ? 0 : (size_t)count < n ? (size_t)count : n;
    for (size_t i = 0; i < k; i++) selected[r[i].pos] = true;
    free(r);
}

Status tlm_compress_compat(const float *scores, size_t n_enc, long count, const int32_t *llm_ids, size_t S,
                           const Tokenizer *encoder, bool skip_special, char **out, size_t *out_len) {
    *out = NULL;
    bool *sel = calloc(n_enc + 1, sizeof *sel);
    int32_t *ids = malloc((S + 1) * sizeof *ids);
    if (!sel || !ids) {
        free(sel);
        free(ids);
        return status_fail(ST_OOM, "out of memory");
    }
    tlm_select_lowest(scores, n_enc, count, sel);
    int vocab = tokenizer_vocab_size(encoder);
    size_t m = 0;
    for (size_t idx = 0; idx < S && idx < n_enc; idx++)
        if (sel[idx] && llm_ids[idx] >= 0 && llm_ids[idx] < vocab && tokenizer_id_to_token(encoder, llm_ids[idx]))
            ids[m++] = llm_ids[idx];
    Status st = tokenizer_decode(encoder, ids, m, skip_special, out, out_len);
    free(sel);
    free(ids);
    return st;
}

// ---- LLMLingua-2 -------------------------------------------------------------

void lingua2_scores_free(Lingua2Scores *s) {
    for (size_t i = 0; s->tokens && i < s->n; i++) free(s->tokens[i]);
    free(s->tokens);
    free(s->probs);
    memset(s, 0, sizeof *s);
}

int lingua2_percent(double rate) {
    double reduce = 1.0 - rate;
    if (!(reduce > 0.0)) reduce = 0.0;
    return (int)(100.0 * reduce + 1.0);
}

double lingua2_percentile(const double *values, size_t n, int q, bool f64) {
    if (n == 0) return NAN;
    double *v = malloc(n * sizeof *v);
    if (!v) return NAN;
    memcpy(v, values, n * sizeof *v);
    qsort(v, n, sizeof *v, stats_cmp_double);
    double qq = (double)q / 100.0;
    double vi = (double)(n - 1) * qq; // numpy: (n - 1) * quantiles, float64
    double fl = floor(vi);
    size_t lo, hi;
    if (vi >= (double)(n - 1)) lo = hi = n - 1;
    else if (vi < 0) lo = hi = 0;
    else {
        lo = (size_t)fl;
        hi = lo + 1;
    }
    double t = vi - fl; // gamma, a Python float (weak) in numpy's _lerp
    double r;
    if (f64) {
        double a = v[lo], b = v[hi], d = b - a;
        r = t >= 0.5 ? b - d * (1.0 - t) : a + d * t;
    } else {
        float a = (float)v[lo], b = (float)v[hi], d = b - a;
        float rf = t >= 0.5 ? b - d * (float)(1.0 - t) : a + d * (float)t;
        r = rf;
    }
    free(v);
    return r;
}

static const char *const CLEANUP[][2] = {
    {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
    {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
};

char *lingua2_wordpiece_join(const char *const *tokens, size_t n) {
    StrBuf b = {0};
    for (size_t i = 0; i < n; i++) {
        const char *tok = tokens[i];
        size_t tl = strlen(tok);
        char *piece;
        size_t pl;
        if (i != 0 && strncmp(tok, "##", 2) == 0) {
            piece = strdup(tok + 2);
            pl = tl - 2;
        } else if (i != 0) {
            piece = malloc(tl + 2);
            if (piece) {
                piece[0] = ' ';
                memcpy(piece + 1, tok, tl + 1);
            }
            pl = tl + 1;
        } else {
            piece = strdup(tok);
            pl = tl;
        }
        for (size_t k = 0; piece && k < sizeof CLEANUP / sizeof CLEANUP[0]; k++) {
            if (!memmem(piece, pl, CLEANUP[k][0], strlen(CLEANUP[k][0]))) continue;
            char *next = replace_all(piece, pl, CLEANUP[k][0], CLEANUP[k][1], &pl);
            free(piece);
            piece = next;
        }
        if (!piece || buf_add(&b, piece, pl) != ST_OK) {
            free(piece);
            free(b.s);
            return NULL;
        }
        free(piece);
    }
    return strbuf_take(&b);
}

// "[NEWk]" (k = 0..99, canonical digits) at s: its length, else 0. These are the
// 100 special tokens llmlingua adds to the classifier's tokenizer.
static size_t new_token_at(const char *s, size_t avail) {
    if (avail < 6 || memcmp(s, "[NEW", 4) != 0) return 0;
    if (s[4] < '0' || s[4] > '9') return 0;
    if (s[5] == ']') return 6;
    if (s[4] != '0' && avail >= 7 && s[5] >= '0' && s[5] <= '9' && s[6] == ']') return 7;
    return 0;
}

// tokenizer.tokenize(text) of the classifier's tokenizer with [NEW0..99] added.
static Status tokenize(const Tokenizer *enc, const char *text, size_t len, StrList *out) {
    size_t seg = 0;
    for (size_t i = 0; i <= len;) {
        size_t nl = i < len ? new_token_at(text + i, len - i) : 0;
        if (i < len && nl == 0) {
            i++;
            continue;
        }
        if (i > seg) {
            TokenList tl;
            TRY(tokenizer_encode(enc, text + seg, i - seg, false, &tl));
            Status st = ST_OK;
            for (size_t k = 0; k < tl.n && st == ST_OK; k++) {
                const char *s = tokenizer_id_to_token(enc, tl.ids[k]);
                st = s ? strlist_push_n(out, s, strlen(s))
                       : status_fail(ST_FORMAT, "compress: encoder token id %d has no string", tl.ids[k]);
            }
            token_list_free(&tl);
            TRY(st);
        }
        if (i == len) break;
        TRY(strlist_push_n(out, text + i, nl));
        i += nl;
        seg = i;
    }
    return ST_OK;
}

static bool in_set(const char *s, const char *const *set, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, set[i]) == 0) return true;
    return false;
}

Status lingua2_chunks(const Tokenizer *encoder, const char *text, size_t len, const char *const *end, int n_end,
                      char ***chunks, size_t *n_chunks) {
    *chunks = NULL;
    *n_chunks = 0;
    StrList toks = {0}, res = {0};
    Status st = tokenize(encoder, text, len, &toks);
    const size_t max_len = 510;
    size_t n = toks.n, st_i = 0;
    while (st == ST_OK && st_i < n) {
        size_t ed;
        if (st_i + max_len > n - 1) ed = n - 1;
        else {
            ed = st_i + max_len;
            for (size_t j = 0; j < max_len; j++)
                if (in_set(toks.s[ed - j], end, n_end)) {
                    ed -= j;
                    break;
                }
        }
        char *c = lingua2_wordpiece_join((const char *const *)toks.s + st_i, ed + 1 - st_i);
        if (!c) st = status_fail(ST_OOM, "out of memory");
        else {
            st = strlist_push_n(&res, c, strlen(c));
            free(c);
        }
        st_i = ed + 1;
    }
    strlist_free(&toks);
    if (st != ST_OK) {
        strlist_free(&res);
        return st;
    }
    *chunks = res.s;
    *n_chunks = res.n;
    return ST_OK;
}

typedef struct {
    const char *ori;
    char new_form[24]; // "[NEW<i>]", at most 17 bytes for any int i
} TokenMapEntry;

static bool is_skipped(const char *tok) {
    static const char *const SKIP[] = {"[CLS]", "[SEP]", "[UNK]", "[MASK]", "[PAD]"};
    return in_set(tok, SKIP, 5);
}

// One chunk, rate < 1: words, their probs, the threshold, the kept words.
static Status compress_chunk(const Lingua2 *c, const TokenMapEntry *map, int n_map, const Lingua2Scores *sc, int q,
                             StrBuf *out) {
    StrList words = {0};
    float *wsum = malloc((sc->n + 1) * sizeof *wsum);
    int *wcnt = malloc((sc->n + 1) * sizeof *wcnt);
    bool *lone_forced = malloc((sc->n + 1) * sizeof *lone_forced);
    double *rep = NULL, *wprob = NULL;
    Status st = wsum && wcnt && lone_forced ? ST_OK : status_fail(ST_OOM, "out of memory");
    const char *map_new[100];
    for (int i = 0; i < n_map; i++) map_new[i] = map[i].new_form;
    for (size_t i = 0; i < sc->n && st == ST_OK; i++) {
        const char *tok = sc->tokens[i];
        if (is_skipped(tok)) continue;
        const char *pure = tok;
        while (*pure == '#') pure++; // Python's lstrip("##") strips every leading '#'
        bool forced = in_set(pure, c->force_tokens, c->n_force) || in_set(pure, map_new, n_map);
        if (forced || strncmp(tok, "##", 2) != 0) {
            // replace_added_token: every mapped "[NEWi]" in the token back to its force token
            char *w = strdup(tok);
            size_t wl = strlen(tok);
            for (int m = 0; w && m < n_map; m++) {
                char *next = replace_all(w, wl, map[m].new_form, map[m].ori, &wl);
                free(w);
                w = next;
            }
            if (!w) st = status_fail(ST_OOM, "out of memory");
            else {
                st = strlist_push_n(&words, w, wl);
                free(w);
            }
            if (st != ST_OK) break;
            wsum[words.n - 1] = forced ? 1.0f : 0.0f + sc->probs[i];
            wcnt[words.n - 1] = 1;
            lone_forced[words.n - 1] = forced;
        } else {
            if (words.n == 0) {
                st = status_fail(ST_FORMAT, "compress: chunk starts with the continuation token \"%s\"", tok);
                break;
            }
            size_t k = words.n - 1, ol = strlen(words.s[k]), pl = strlen(pure);
            char *w = realloc(words.s[k], ol + pl + 1);
            if (!w) {
                st = status_fail(ST_OOM, "out of memory");
                break;
            }
            memcpy(w + ol, pure, pl + 1);
            words.s[k] = w;
            wsum[k] = wsum[k] + sc->probs[i]; // float32, as numpy sums np.float32
            wcnt[k]++;
            lone_forced[k] = false;
        }
    }
    size_t n_rep = 0;
    bool f64 = false;
    if (st == ST_OK) {
        wprob = malloc((words.n + 1) * sizeof *wprob);
        if (!wprob) st = status_fail(ST_OOM, "out of memory");
    }
    size_t cap = 0;
    for (size_t w = 0; w < words.n && st == ST_OK; w++) {
        wprob[w] = (double)(wsum[w] / (float)wcnt[w]);
        TokenList tl;
        st = tokenizer_encode(c->cl100k, words.s[w], strlen(words.s[w]), false, &tl);
        if (st != ST_OK) break;
        if (tl.n > 0 && lone_forced[w]) f64 = true; // a Python float in the list: numpy makes float64
        if (n_rep + tl.n > cap) {
            cap = 2 * (n_rep + tl.n) + 64;
            double *p = realloc(rep, cap * sizeof *p);
            if (!p) {
                token_list_free(&tl);
                st = status_fail(ST_OOM, "out of memory");
                break;
            }
            rep = p;
        }
        for (size_t k = 0; k < tl.n; k++) rep[n_rep++] = wprob[w];
        token_list_free(&tl);
    }
    if (st == ST_OK && n_rep == 0 && words.n > 0)
        st = status_fail(ST_FORMAT, "compress: a chunk's words have no cl100k tokens (numpy.percentile of an empty list)");
    if (st == ST_OK && words.n > 0) {
        double thr = lingua2_percentile(rep, n_rep, q, f64);
        const char **kept = malloc(words.n * sizeof *kept);
        size_t nk = 0;
        if (!kept) st = status_fail(ST_OOM, "out of memory");
        for (size_t w = 0; st == ST_OK && w < words.n; w++)
            if (wprob[w] > thr || (thr == 1.0 && wprob[w] == 1.0)) kept[nk++] = words.s[w];
        char *s = st == ST_OK ? lingua2_wordpiece_join(kept, nk) : NULL;
        if (st == ST_OK && !s) st = status_fail(ST_OOM, "out of memory");
        if (st == ST_OK) st = buf_add(out, s, strlen(s));
        free(s);
        free(kept);
    }
    strlist_free(&words);
    free(wsum);
    free(wcnt);
    free(lone_forced);
    free(rep);
    free(wprob);
    return st;
}

Status lingua2_compress(const Lingua2 *c, const char *text, size_t len, double rate, char **out, size_t *out_len) {
    *out = NULL;
    if (c->n_force < 0 || c->n_force > 100)
        return status_fail(ST_USAGE, "compress: %d force tokens (llmlingua allows at most 100)", c->n_force);
    // 1. token_map: force token i -> "[NEWi]" unless it is one encoder token.
    TokenMapEntry map[100];
    int n_map = 0;
    for (int i = 0; i < c->n_force; i++) {
        StrList toks = {0};
        Status st = tokenize(c->encoder, c->force_tokens[i], strlen(c->force_tokens[i]), &toks);
        size_t nt = toks.n;
        strlist_free(&toks);
        TRY(st);
        if (nt == 1) continue;
        bool dup = false; // a dict: a repeated force token keeps its first place, the last index
        for (int m = 0; m < n_map; m++)
            if (strcmp(map[m].ori, c->force_tokens[i]) == 0) {
                snprintf(map[m].new_form, sizeof map[m].new_form, "[NEW%d]", i);
                dup = true;
            }
        if (dup) continue;
        map[n_map].ori = c->force_tokens[i];
        snprintf(map[n_map].new_form, sizeof map[n_map].new_form, "[NEW%d]", i);
        n_map++;
    }
    const char *end[4] = {".", "\n"};
    int n_end = 2;
    for (int e = 0; e < 2; e++)
        for (int m = 0; m < n_map; m++)
            if (strcmp(map[m].ori, end[e]) == 0) end[n_end++] = map[m].new_form;

    // 2. the text with force tokens replaced, chunked.
    size_t tl = len;
    char *t = malloc(len + 1);
    if (!t) return status_fail(ST_OOM, "out of memory");
    memcpy(t, text, len);
    t[len] = '\0';
    for (int m = 0; m < n_map && t; m++) {
        char *next = replace_all(t, tl, map[m].ori, map[m].new_form, &tl);
        free(t);
        t = next;
    }
    if (!t) return status_fail(ST_OOM, "out of memory");
    char **chunks = NULL;
    size_t n_chunks = 0;
    Status st = lingua2_chunks(c->encoder, t, tl, end, n_end, &chunks, &n_chunks);
    free(t);
    StrBuf b = {0};
    double reduce = 1.0 - rate;
    if (st == ST_OK && !(reduce > 0.0)) {
        // 3. no compression: the chunk strings with the force tokens put back.
        for (size_t k = 0; k < n_chunks && st == ST_OK; k++) {
            size_t cl = strlen(chunks[k]);
            char *s = strdup(chunks[k]);
            for (int m = 0; m < n_map && s; m++) {
                char *next = replace_all(s, cl, map[m].new_form, map[m].ori, &cl);
                free(s);
                s = next;
            }
            st = s ? buf_add(&b, s, cl) : status_fail(ST_OOM, "out of memory");
            free(s);
        }
    } else {
        int q = lingua2_percent(rate);
        for (size_t k = 0; k < n_chunks && st == ST_OK; k++) {
            Lingua2Scores sc = {0};
            st = c->score(c->ctx, chunks[k], strlen(chunks[k]), &sc);
            if (st == ST_OK) st = compress_chunk(c, map, n_map, &sc, q, &b);
            lingua2_scores_free(&sc);
        }
    }
    for (size_t k = 0; k < n_chunks; k++) free(chunks[k]);
    free(chunks);
    if (st == ST_OK) st = buf_finish(&b, out, out_len);
    if (st != ST_OK) free(b.s);
    return st;
}
