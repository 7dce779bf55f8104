// The WordPiece model of Hugging Face tokenizers (BERT): a word is cut
// greedily into the longest vocabulary entries from its start, pieces after
// the first carrying the continuation prefix ("##"). A word longer than
// max_input_chars_per_word chars, or one with a position no entry matches,
// becomes the single unknown token.
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

static size_t count_chars(const Piece *p) {
    size_t n = 0;
    for (size_t i = 0; i < p->len; i++)
        if (((unsigned char)p->text[i] & 0xC0) != 0x80) n++;
    return n;
}

// Bytes of the char that ends at byte `end` of s.
static size_t last_char_len(const char *s, size_t end) {
    size_t at = end - 1;
    while (at > 0 && ((unsigned char)s[at] & 0xC0) == 0x80) at--;
    return end - at;
}

static Status push_unknown(const Model *m, const Piece *p, TokenList *out) {
    if (m->unk_id < 0)
        return status_fail(ST_FORMAT, "WordPiece: a word needs the unknown token but the vocabulary has none");
    Span sp = piece_span(p, 0, p->len);
    return token_list_push(out, m->unk_id, sp.start, sp.end, false);
}

// The id of the longest entry matching p's text from byte `start` (with the
// prefix unless start is 0), and its end; -1 when none matches.
static int32_t longest_match(const Model *m, const Piece *p, size_t start, char *buf, size_t prefix_len,
                             size_t *end_out) {
    for (size_t end = p->len; end > start; end -= last_char_len(p->text, end)) {
        const char *key = p->text + start;
        size_t key_len = end - start;
        if (start > 0) {
            memcpy(buf + prefix_len, p->text + start, end - start);
            key = buf;
            key_len += prefix_len;
        }
        int32_t id = strmap_get(&m->vocab, key, key_len);
        if (id >= 0) {
            *end_out = end;
            return id;
        }
    }
    return -1;
}

// Greedy longest-match-first over p, appending to out (rolled back to the
// unknown token when some position matches nothing).
static Status encode_greedy(const Model *m, const Piece *p, char *buf, size_t prefix_len, TokenList *out) {
    size_t first = out->n;
    for (size_t start = 0; start < p->len;) {
        size_t end;
        int32_t id = longest_match(m, p, start, buf, prefix_len, &end);
        if (id < 0) {
            out->n = first;
            return push_unknown(m, p, out);
        }
        Span sp = piece_span(p, start, end);
        TRY(token_list_push(out, id, sp.start, sp.end, false));
        start = end;
    }
    return ST_OK;
}

Status wordpiece_encode_piece(const Model *m, const Piece *p, TokenList *out) {
    if (p->len == 0) return ST_OK;
    if (count_chars(p) > (size_t)(m->max_input_chars_per_word > 0 ? m->max_input_chars_per_word : 0))
        return push_unknown(m, p, out);
    const char *prefix = m->wp_prefix ? m->wp_prefix : "";
    size_t prefix_len = strlen(prefix);
    char *buf = malloc(prefix_len + p->len + 1); // prefix + a candidate continuation
    if (!buf) return status_fail(ST_OOM, "out of memory in WordPiece");
    memcpy(buf, prefix, prefix_len);
    Status st = encode_greedy(m, p, buf, prefix_len, out);
    free(buf);
    return st;
}
