// The encode pipeline (HF's order): added tokens that match the raw text,
// normalizer, added tokens that match the normalized text, pre-tokenizer,
// model, post-processor; and decode.
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

static bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static bool is_word(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80; }

static int cmp_longest_first(const void *a, const void *b) {
    size_t la = ((const AddedToken *)a)->len, lb = ((const AddedToken *)b)->len;
    return la < lb ? 1 : la > lb ? -1 : 0;
}

void added_tokens_prepare(Tokenizer *t) {
    for (int i = 0; i < t->n_added; i++) t->added[i].len = strlen(t->added[i].content);
    qsort(t->added, (size_t)t->n_added, sizeof *t->added, cmp_longest_first);
    memset(t->added_first, 0, sizeof t->added_first);
    for (int i = 0; i < t->n_added; i++) t->added_first[t->added[i].normalized][(unsigned char)t->added[i].content[0]] = true;
}

// The longest added token (of those with normalized == want_normalized) at
// text[at], with its extent after lstrip/rstrip; -1 when none matches.
static int match_at(const Tokenizer *t, const Piece *p, size_t at, bool want_normalized, size_t *from, size_t *to) {
    if (!t->added_first[want_normalized][(unsigned char)p->text[at]]) return -1;
    for (int i = 0; i < t->n_added; i++) { // longest first
        const AddedToken *a = &t->added[i];
        if (a->normalized != want_normalized) continue;
        size_t n = a->len;
        if (at + n > p->len || memcmp(p->text + at, a->content, n) != 0) continue;
        if (a->single_word && ((at > 0 && is_word((unsigned char)p->text[at - 1])) ||
                               (at + n < p->len && is_word((unsigned char)p->text[at + n]))))
            continue;
        size_t s = at, e = at + n;
        if (a->lstrip)
            while (s > 0 && is_space((unsigned char)p->text[s - 1])) s--;
        if (a->rstrip)
            while (e < p->len && is_space((unsigned char)p->text[e])) e++;
        *from = s;
        *to = e;
        return i;
    }
    return -1;
}

// Splits every unmatched piece of l around the added tokens it contains.
static Status split_added(const Tokenizer *t, PieceList *l, bool want_normalized) {
    bool any = false;
    for (int i = 0; i < t->n_added && !any; i++) any = t->added[i].normalized == want_normalized;
    if (!any) return ST_OK;
    PieceList out = {0};
    Status st = ST_OK;
    for (size_t k = 0; k < l->n && st == ST_OK; k++) {
        Piece *p = &l->items[k];
        if (p->token >= 0) {
            st = pieces_push(&out, *p);
            memset(p, 0, sizeof *p);
            continue;
        }
        size_t done = 0; // bytes of p already emitted
        for (size_t at = 0; at < p->len && st == ST_OK;) {
            size_t from, to;
            int which = match_at(t, p, at, want_normalized, &from, &to);
            if (which < 0 || from < done) {
                at++;
                continue;
            }
            Piece q;
            if (from > done) {
                st = piece_slice(&q, p, done, from);
                if (st == ST_OK) st = pieces_push(&out, q);
            }
            if (st == ST_OK) st = piece_slice(&q, p, from, to);
            if (st == ST_OK) {
                q.token = t->added[which].id;
                st = pieces_push(&out, q);
            }
            done = at = to;
        }
        if (st == ST_OK && done < p->len) {
            Piece q;
            st = piece_slice(&q, p, done, p->len);
            if (st == ST_OK) st = pieces_push(&out, q);
        }
    }
    pieces_free(l);
    if (st != ST_OK) {
        pieces_free(&out);
        return st;
    }
    *l = out;
    return ST_OK;
}

static bool is_special_id(const Tokenizer *t, int32_t id) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return t->added[i].special;
    return false;
}

// ByteLevel post-processing with trim_offsets: offsets leave out the leading
// and trailing spaces ('Ġ', U+0120) a token carries.
static void trim_bytelevel_offsets(const Tokenizer *t, TokenList *out, size_t first) {
    for (size_t i = first; i < out->n; i++) {
        int32_t id = out->ids[i];
        const char *s = id >= 0 && id < t->model.vocab_size ? t->model.id_to_token[id] : NULL;
        if (!s) continue;
        size_t len = strlen(s);
        int32_t lead = 0, trail = 0;
        for (size_t k = 0; k + 2 <= len && strncmp(s + k, "\xc4\xa0", 2) == 0; k += 2) lead++;
        for (size_t k = len; k >= 2 + 2 * (size_t)lead && strncmp(s + k - 2, "\xc4\xa0", 2) == 0; k -= 2) trail++;
        if (lead > 0) out->starts[i] = out->starts[i] + lead < out->ends[i] ? out->starts[i] + lead : out->ends[i];
        if (trail > 0 && out->ends[i] >= trail)
            out->ends[i] = out->ends[i] - trail > out->starts[i] ? out->ends[i] - trail : out->starts[i];
    }
}

static Status encode_pieces(const Tokenizer *t, PieceList *l, TokenList *out) {
    for (size_t i = 0; i < l->n; i++) {
        const Piece *p = &l->items[i];
        if (p->token >= 0) {
            Span sp = piece_span(p, 0, p->len);
            TRY(token_list_push(out, p->token, sp.start, sp.end, is_special_id(t, p->token)));
        } else if (t->model.type == MODEL_BPE) {
            TRY(bpe_encode_piece(&t->model, p, out));
        } else {
            TRY(wordpiece_encode_piece(&t->model, p, out));
        }
    }
    return ST_OK;
}

static Status run_pipeline(const Tokenizer *t, const char *text, size_t len, PieceList *l) {
    Piece whole;
    TRY(piece_from_input(&whole, text, len, 0));
    TRY(pieces_push(l, whole));
    TRY(split_added(t, l, false));
    if (t->normalizer)
        for (size_t i = 0; i < l->n; i++)
            if (l->items[i].token < 0) TRY(normalizer_apply(t->normalizer, &l->items[i]));
    TRY(split_added(t, l, true));
    if (t->pretokenizer) TRY(pretokenizer_apply(t->pretokenizer, l, true));
    return ST_OK;
}

Status tokenizer_encode(const Tokenizer *t, const char *text, size_t len, bool add_special, TokenList *out) {
    memset(out, 0, sizeof *out);
    TRY(utf8_validate(text, len));
    PieceList l = {0};
    Status st = run_pipeline(t, text, len, &l);
    if (st == ST_OK && add_special)
        for (int i = 0; i < t->post.n_prefix && st == ST_OK; i++) st = token_list_push(out, t->post.prefix[i], 0, 0, true);
    size_t first = out->n;
    if (st == ST_OK) st = encode_pieces(t, &l, out);
    if (st == ST_OK && t->bytelevel_post_trim) trim_bytelevel_offsets(t, out, first);
    if (st == ST_OK && add_special)
        for (int i = 0; i < t->post.n_suffix && st == ST_OK; i++) st = token_list_push(out, t->post.suffix[i], 0, 0, true);
    pieces_free(&l);
    if (st != ST_OK) token_list_free(out);
    return st;
}

Status tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **out, size_t *len) {
    *out = NULL;
    DStr *tokens = calloc(n + 1, sizeof *tokens);
    if (!tokens) return status_fail(ST_OOM, "out of memory in decode");
    size_t k = 0;
    Status st = ST_OK;
    for (size_t i = 0; i < n && st == ST_OK; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->model.vocab_size || !t->model.id_to_token[id]) {
            st = status_fail(ST_USAGE, "decode: token id %d is not in the vocabulary", id);
            break;
        }
        if (skip_special && is_special_id(t, id)) continue;
        const char *s = t->model.id_to_token[id];
        tokens[k] = (DStr){strdup(s), strlen(s)};
        if (!tokens[k++].s) st = status_fail(ST_OOM, "out of memory in decode");
    }
    if (st == ST_OK && t->decoder) st = decoder_apply(t->decoder, tokens, &k);
    size_t total = 1;
    for (size_t i = 0; i < k; i++) total += tokens[i].len + 1;
    char *s = st == ST_OK ? malloc(total) : NULL;
    if (st == ST_OK && !s) st = status_fail(ST_OOM, "out of memory in decode");
    size_t used = 0;
    if (s) {
        for (size_t i = 0; i < k; i++) {
            if (!t->decoder && i > 0) s[used++] = ' '; // HF joins with spaces without a decoder
            memcpy(s + used, tokens[i].s, tokens[i].len);
            used += tokens[i].len;
        }
        s[used] = '\0';
    }
    for (size_t i = 0; i < n + 1; i++) free(tokens[i].s);
    free(tokens);
    *out = s;
    if (len) *len = used;
    return st;
}
