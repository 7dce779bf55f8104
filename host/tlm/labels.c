// Keep/drop labels for the score head: the JSON-lines file, the greedy match of
// (prompt, compressed prompt) pairs, and labels from an LLM's self-information.
#include "labels.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/mapped_file.h"
#include "runtime/rng.h"
#include "runtime/strbuf.h"

void labels_free(LabelSet *s) {
    for (int i = 0; i < s->n; i++) free(s->items[i].text), free(s->items[i].spans);
    free(s->items);
    *s = (LabelSet){0};
}

Status labels_push(LabelSet *s, char *text, int32_t len, LabelSpan *spans, int n_spans) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        LabelledText *p = realloc(s->items, (size_t)cap * sizeof *p);
        if (!p) return free(text), free(spans), status_fail(ST_OOM, "out of memory for labels");
        s->items = p, s->cap = cap;
    }
    s->items[s->n++] = (LabelledText){.text = text, .len = len, .spans = spans, .n_spans = n_spans};
    return ST_OK;
}

// ---- the file ---------------------------------------------------------------

static Status parse_line(LabelSet *s, const char *path, long lineno, const char *line, size_t n) {
    json_error_t err;
    json_t *o = json_loadb(line, n, 0, &err);
    if (!o) return status_fail(ST_FORMAT, "%s:%ld: not JSON (%s)", path, lineno, err.text);
    Status st = ST_OK;
    json_t *text = json_object_get(o, "text"), *spans = json_object_get(o, "spans");
    char *t = NULL;
    LabelSpan *sp = NULL;
    size_t ns = 0;
    if (!json_is_string(text)) {
        st = status_fail(ST_FORMAT, "%s:%ld: field 'text' is missing or not a string", path, lineno);
        goto done;
    }
    if (!json_is_array(spans)) {
        st = status_fail(ST_FORMAT, "%s:%ld: field 'spans' is missing or not a list", path, lineno);
        goto done;
    }
    size_t len = json_string_length(text);
    ns = json_array_size(spans);
    t = malloc(len + 1), sp = malloc((ns ? ns : 1) * sizeof *sp);
    if (!t || !sp) {
        st = status_fail(ST_OOM, "out of memory reading %s", path);
        goto done;
    }
    memcpy(t, json_string_value(text), len + 1);
    for (size_t i = 0; i < ns; i++) {
        json_t *e = json_array_get(spans, i);
        json_int_t v[3];
        bool ok = json_is_array(e) && json_array_size(e) == 3;
        for (int k = 0; ok && k < 3; k++) {
            json_t *x = json_array_get(e, (size_t)k);
            ok = json_is_integer(x);
            if (ok) v[k] = json_integer_value(x);
        }
        if (!ok) {
            st = status_fail(ST_FORMAT, "%s:%ld: spans[%zu] is not [start, end, label]", path, lineno, i);
            goto done;
        }
        if (v[0] < 0 || v[1] <= v[0] || v[1] > (json_int_t)len) {
            st = status_fail(ST_FORMAT, "%s:%ld: spans[%zu] = [%lld, %lld) is not inside the text of %zu bytes", path,
                             lineno, i, (long long)v[0], (long long)v[1], len);
            goto done;
        }
        if (i > 0 && v[0] < sp[i - 1].end) {
            st = status_fail(ST_FORMAT, "%s:%ld: spans[%zu] starts before spans[%zu] ends (spans must be sorted and disjoint)",
                             path, lineno, i, i - 1);
            goto done;
        }
        if (v[2] != 0 && v[2] != 1) {
            st = status_fail(ST_FORMAT, "%s:%ld: spans[%zu] has label %lld (expected 0 or 1)", path, lineno, i,
                             (long long)v[2]);
            goto done;
        }
        sp[i] = (LabelSpan){(int32_t)v[0], (int32_t)v[1], (int32_t)v[2]};
    }
    st = labels_push(s, t, (int32_t)len, sp, (int)ns);
    t = NULL, sp = NULL;
done:
    free(t), free(sp);
    json_decref(o);
    return st;
}

Status labels_read(LabelSet *s, const char *path) {
    char *buf;
    size_t len;
    TRY(read_file_maybe_gz(path, &buf, &len));
    Status st = ST_OK;
    long lineno = 0;
    for (size_t i = 0; st == ST_OK && i < len;) {
        size_t e = i;
        while (e < len && buf[e] != '\n') e++;
        lineno++;
        size_t a = i;
        while (a < e && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\r')) a++;
        if (a < e) st = parse_line(s, path, lineno, buf + a, e - a);
        i = e + 1;
    }
    free(buf);
    if (st == ST_OK && s->n == 0) st = status_fail(ST_FORMAT, "%s: no labelled text in the file", path);
    if (st != ST_OK) labels_free(s);
    return st;
}

Status labels_write(const LabelSet *s, const char *path) {
    StrBuf b = {0};
    bool ok = true;
    for (int i = 0; ok && i < s->n; i++) {
        const LabelledText *x = &s->items[i];
        json_t *o = json_object(), *arr = json_array();
        json_object_set_new(o, "text", json_stringn(x->text, (size_t)x->len));
        for (int k = 0; k < x->n_spans; k++)
            json_array_append_new(arr, json_pack("[iii]", x->spans[k].start, x->spans[k].end, x->spans[k].label));
        json_object_set_new(o, "spans", arr);
        char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        ok = line && strbuf_puts(&b, line) && strbuf_puts(&b, "\n");
        free(line);
        json_decref(o);
    }
    if (!ok) return free(b.s), status_fail(ST_OOM, "out of memory writing %s", path);
    Status st = write_file_atomic(path, b.s ? b.s : "", b.len);
    free(b.s);
    return st;
}

// ---- words and chunks ---------------------------------------------------------

// Whether WordPiece id continues the previous piece ("##..."). The decoder
// keeps the prefix on a lone first token, as Hugging Face's does.
static Status is_continuation(const Tokenizer *enc, int32_t id, bool *cont) {
    char *s;
    TRY(tokenizer_decode(enc, &id, 1, false, &s, NULL));
    *cont = s[0] == '#' && s[1] == '#' && s[2] != 0;
    free(s);
    return ST_OK;
}

static Status encode_pieces(const Tokenizer *enc, const char *text, int32_t len, TokenList *l) {
    *l = (TokenList){0};
    if (strcmp(tokenizer_kind(enc), "WordPiece"))
        return status_fail(ST_UNSUPPORTED, "the encoder's tokenizer is %s; word labels need a WordPiece vocabulary",
                           tokenizer_kind(enc));
    return tokenizer_encode(enc, text, (size_t)len, false, l);
}

Status labels_words(const Tokenizer *enc, const char *text, int32_t len, int32_t **starts, int32_t **ends, int *n) {
    TokenList l;
    TRY(encode_pieces(enc, text, len, &l));
    int32_t *s = malloc((l.n ? l.n : 1) * sizeof *s), *e = malloc((l.n ? l.n : 1) * sizeof *e);
    Status st = s && e ? ST_OK : status_fail(ST_OOM, "out of memory");
    int k = 0;
    for (size_t i = 0; st == ST_OK && i < l.n; i++) {
        bool cont = false;
        if (k > 0 && l.starts[i] == e[k - 1]) st = is_continuation(enc, l.ids[i], &cont);
        if (cont) e[k - 1] = l.ends[i];
        else s[k] = l.starts[i], e[k] = l.ends[i], k++;
    }
    token_list_free(&l);
    if (st != ST_OK) return free(s), free(e), st;
    *starts = s, *ends = e, *n = k;
    return ST_OK;
}

Status labels_chunks(const Tokenizer *enc, const char *text, int32_t len, int max_pieces, int32_t **starts,
                     int32_t **ends, int *n) {
    TokenList l;
    TRY(encode_pieces(enc, text, len, &l));
    size_t cap = l.n + 1; // a chunk holds at least one piece
    int32_t *s = malloc(cap * sizeof *s), *e = malloc(cap * sizeof *e);
    if (!s || !e) return free(s), free(e), token_list_free(&l), status_fail(ST_OOM, "out of memory");
    int k = 0;
    for (size_t st = 0; st < l.n;) {
        size_t ed = l.n - 1; // last piece of the chunk (inclusive)
        if (st + (size_t)max_pieces < l.n) {
            ed = st + (size_t)max_pieces - 1;
            for (size_t j = ed; j > st; j--) {
                bool dot = l.ends[j] - l.starts[j] == 1 && text[l.starts[j]] == '.';
                bool newline = memchr(text + l.ends[j], '\n', (size_t)(l.starts[j + 1] - l.ends[j])) != NULL;
                if (dot || newline) {
                    ed = j;
                    break;
                }
            }
        }
        s[k] = l.starts[st], e[k] = l.ends[ed], k++;
        st = ed + 1;
    }
    token_list_free(&l);
    *starts = s, *ends = e, *n = k;
    return ST_OK;
}

// ---- pairs: the greedy in-order match ----------------------------------------------

Status labels_match(const Tokenizer *enc, const char *prompt, const char *compressed, int max_pieces,
                    LabelledText *out) {
    TokenList a, b;
    TRY(encode_pieces(enc, prompt, (int32_t)strlen(prompt), &a));
    Status st = encode_pieces(enc, compressed, (int32_t)strlen(compressed), &b);
    if (st != ST_OK) return token_list_free(&a), st;
    size_t na = a.n < (size_t)max_pieces ? a.n : (size_t)max_pieces;
    size_t nb = b.n < (size_t)max_pieces ? b.n : (size_t)max_pieces;
    LabelSpan *sp = malloc((na ? na : 1) * sizeof *sp);
    char *t = strdup(prompt);
    if (!sp || !t) st = status_fail(ST_OOM, "out of memory");
    int k = 0;
    for (size_t i = 0, j = 0; st == ST_OK && i < na; i++) {
        int keep = j < nb && a.ids[i] == b.ids[j];
        if (keep) j++;
        // WordPieces of one pre-token share no bytes, but a piece may be empty-spanned (never in BERT)
        if (a.ends[i] > a.starts[i]) sp[k++] = (LabelSpan){a.starts[i], a.ends[i], keep};
    }
    token_list_free(&a), token_list_free(&b);
    if (st != ST_OK) return free(sp), free(t), st;
    *out = (LabelledText){.text = t, .len = (int32_t)strlen(prompt), .spans = sp, .n_spans = k};
    return ST_OK;
}

Status labels_from_pairs(LabelSet *s, const Tokenizer *enc, const char *path, int max_pieces, long limit) {
    char *buf;
    size_t len;
    TRY(read_file_maybe_gz(path, &buf, &len));
    Status st = ST_OK;
    long lineno = 0;
    int before = s->n;
    long records = 0;
    for (size_t i = 0; st == ST_OK && i < len && (limit < 0 || records < limit);) {
        size_t e = i;
        while (e < len && buf[e] != '\n') e++;
        lineno++;
        size_t a = i;
        i = e + 1;
        while (a < e && (buf[a] == ' ' || buf[a] == '\t' || buf[a] == '\r')) a++;
        if (a == e) continue;
        records++;
        json_error_t err;
        json_t *o = json_loadb(buf + a, e - a, 0, &err);
        if (!o) {
            st = status_fail(ST_FORMAT, "%s:%ld: not JSON (%s)", path, lineno, err.text);
            break;
        }
        json_t *p = json_object_get(o, "prompt"), *c = json_object_get(o, "compressed_prompt");
        json_t *pl = json_object_get(o, "prompt_list"), *cl = json_object_get(o, "compressed_prompt_list");
        size_t n_pairs = 0;
        if (json_is_array(pl) && json_is_array(cl)) {
            n_pairs = json_array_size(pl);
            if (json_array_size(cl) != n_pairs)
                st = status_fail(ST_FORMAT, "%s:%ld: prompt_list has %zu entries, compressed_prompt_list %zu", path,
                                 lineno, n_pairs, json_array_size(cl));
        } else if (json_is_string(p) && json_is_string(c)) {
            n_pairs = 1;
        } else {
            st = status_fail(ST_FORMAT,
                             "%s:%ld: expected string fields 'prompt' and 'compressed_prompt' (or lists 'prompt_list' "
                             "and 'compressed_prompt_list')",
                             path, lineno);
        }
        for (size_t k = 0; st == ST_OK && k < n_pairs; k++) {
            json_t *x = n_pairs == 1 && json_is_string(p) ? p : json_array_get(pl, k);
            json_t *y = n_pairs == 1 && json_is_string(c) ? c : json_array_get(cl, k);
            if (!json_is_string(x) || !json_is_string(y)) {
                st = status_fail(ST_FORMAT, "%s:%ld: pair %zu is not two strings", path, lineno, k);
                break;
            }
            LabelledText lt;
            st = labels_match(enc, json_string_value(x), json_string_value(y), max_pieces, &lt);
            if (st != ST_OK) st = status_wrap(st, "%s:%ld", path, lineno);
            else if (lt.n_spans == 0) free(lt.text), free(lt.spans);
            else st = labels_push(s, lt.text, lt.len, lt.spans, lt.n_spans);
        }
        json_decref(o);
    }
    free(buf);
    if (st == ST_OK && s->n == before) st = status_fail(ST_FORMAT, "%s: no (prompt, compressed prompt) pair in the file", path);
    return st;
}

// ---- self-information labels ------------------------------------------------------

Status labels_word_info(const LlamaModel *m, const Tokenizer *llm_tok, const Tokenizer *enc, const char *text,
                        int32_t len, double **info, int32_t **starts, int32_t **ends, int *n_words) {
    int32_t *ws, *we;
    int nw;
    TRY(labels_words(enc, text, len, &ws, &we, &nw));
    TokenList l = {0};
    Status st = tokenizer_encode(llm_tok, text, (size_t)len, true, &l);
    // the text with BOS: prepend it when the tokenizer's post-processor does not
    int bos = m->cfg.bos_token_id;
    if (st == ST_OK && bos >= 0 && (l.n == 0 || l.ids[0] != bos)) {
        TokenList b = {0};
        st = token_list_push(&b, bos, 0, 0, true);
        for (size_t i = 0; st == ST_OK && i < l.n; i++) st = token_list_push(&b, l.ids[i], l.starts[i], l.ends[i], l.special[i]);
        token_list_free(&l);
        l = b;
    }
    double *wi = calloc((size_t)(nw ? nw : 1), sizeof *wi);
    float *lp = NULL;
    Tensor logits = {0};
    LlamaSession sess = {0};
    bool have_sess = false;
    if (st == ST_OK && !wi) st = status_fail(ST_OOM, "out of memory");
    int T = (int)l.n;
    if (st == ST_OK && T >= 2) {
        if (T > m->cfg.max_position)
            st = status_fail(ST_USAGE, "a chunk of %d LLM tokens is longer than the model's %d positions (lower --chunk)",
                             T, m->cfg.max_position);
        if (st == ST_OK) st = llama_session_init(&sess, m, 1, T, m->dev);
        have_sess = st == ST_OK;
        if (st == ST_OK) st = tensor_alloc_2d(&logits, DT_F32, (Device){DEV_CPU, 0}, T, m->cfg.vocab_size);
        if (st == ST_OK) st = llama_forward(m, &sess, l.ids, NULL, T, LOGITS_ALL, &logits);
        if (st == ST_OK && !(lp = malloc((size_t)(T - 1) * sizeof *lp))) st = status_fail(ST_OOM, "out of memory");
        if (st == ST_OK) st = llama_token_logprobs(&logits, l.ids, 1, T, lp);
        // token t (t >= 1) carries -lp[t-1], split over the words its span overlaps
        for (int t = 1, w0 = 0; st == ST_OK && t < T; t++) {
            int32_t a = l.starts[t], b = l.ends[t];
            while (w0 < nw && we[w0] <= a) w0++;
            int k = 0;
            for (int w = w0; w < nw && ws[w] < b; w++) k += we[w] > a;
            for (int w = w0; k > 0 && w < nw && ws[w] < b; w++)
                if (we[w] > a) wi[w] += -(double)lp[t - 1] / k;
        }
    }
    free(lp);
    tensor_free(&logits);
    if (have_sess) llama_session_free(&sess);
    token_list_free(&l);
    if (st != ST_OK) return free(wi), free(ws), free(we), st;
    *info = wi, *starts = ws, *ends = we, *n_words = nw;
    return ST_OK;
}

typedef struct {
    double v;
    int i;
} Ranked;

static int by_value_desc(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return x->i - y->i;
}

// The words of one chunk labelled: the top round(q * n) by information, plus forced words.
static Status label_chunk(LabelSet *s, const LlamaModel *m, const Tokenizer *llm_tok, const Tokenizer *enc,
                          const char *text, int32_t len, double q, const char *force) {
    double *info;
    int32_t *ws, *we;
    int nw;
    TRY(labels_word_info(m, llm_tok, enc, text, len, &info, &ws, &we, &nw));
    Status st = ST_OK;
    Ranked *r = malloc((size_t)(nw ? nw : 1) * sizeof *r);
    LabelSpan *sp = malloc((size_t)(nw ? nw : 1) * sizeof *sp);
    char *t = malloc((size_t)len + 1);
    if (!r || !sp || !t) st = status_fail(ST_OOM, "out of memory");
    if (st == ST_OK && nw > 0) {
        for (int w = 0; w < nw; w++) r[w] = (Ranked){info[w], w}, sp[w] = (LabelSpan){ws[w], we[w], 0};
        qsort(r, (size_t)nw, sizeof *r, by_value_desc);
        int keep = (int)floor(q * nw + 0.5);
        if (keep < 1) keep = 1;
        for (int k = 0; k < keep && k < nw; k++) sp[r[k].i].label = 1;
        for (int w = 0; force && w < nw; w++)
            if (we[w] - ws[w] == 1 && strchr(force, text[ws[w]])) sp[w].label = 1;
        memcpy(t, text, (size_t)len);
        t[len] = 0;
        st = labels_push(s, t, len, sp, nw);
        t = NULL, sp = NULL;
    }
    free(r), free(sp), free(t), free(info), free(ws), free(we);
    return st;
}

Status labels_from_surprisal(LabelSet *s, const LlamaModel *m, const Tokenizer *llm_tok, const Tokenizer *enc,
                             const char *const *docs, const int32_t *doc_lens, int n_docs,
                             const SurprisalOptions *o, Progress *p) {
    if (!(o->keep_lo > 0 && o->keep_lo <= o->keep_hi && o->keep_hi <= 1))
        return status_fail(ST_USAGE, "keep fraction %g..%g: expected 0 < lo <= hi <= 1", o->keep_lo, o->keep_hi);
    int n_steps = (int)floor((o->keep_hi - o->keep_lo) * 10 + 1e-9) + 1;
    uint64_t draw = 0;
    for (int d = 0; d < n_docs; d++) {
        int32_t *cs, *ce;
        int nc;
        TRY(labels_chunks(enc, docs[d], doc_lens[d], o->max_pieces, &cs, &ce, &nc));
        Status st = ST_OK;
        for (int c = 0; st == ST_OK && c < nc; c++, draw++) {
            int k = (int)(rng_mix(o->seed, draw) % (uint64_t)n_steps);
            double q = n_steps == 1 ? o->keep_lo : o->keep_lo + 0.1 * k;
            st = label_chunk(s, m, llm_tok, enc, docs[d] + cs[c], ce[c] - cs[c], q, o->force);
        }
        free(cs), free(ce);
        if (st != ST_OK) return status_wrap(st, "document %d", d + 1);
        if (p) progress_step(p, 1);
    }
    return ST_OK;
}
