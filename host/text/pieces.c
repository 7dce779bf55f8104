#include "pieces.h"

#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

Status pb_append(PieceBuilder *b, const char *bytes, size_t n, Span from) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 32;
        while (cap < b->len + n + 1) cap *= 2;
        char *t = realloc(b->text, cap);
        if (!t) return status_fail(ST_OOM, "out of memory in the tokenizer");
        b->text = t;
        Span *s = realloc(b->src, cap * sizeof *s);
        if (!s) return status_fail(ST_OOM, "out of memory in the tokenizer");
        b->src = s;
        b->cap = cap;
    }
    memcpy(b->text + b->len, bytes, n);
    for (size_t i = 0; i < n; i++) b->src[b->len + i] = from;
    b->len += n;
    b->text[b->len] = '\0';
    return ST_OK;
}

void pb_finish(PieceBuilder *b, Piece *p) {
    free(p->text);
    free(p->src);
    if (!b->text) { // empty: keep a valid NUL-terminated string
        b->text = calloc(1, 1);
        b->src = NULL;
    }
    p->text = b->text;
    p->src = b->src;
    p->len = b->len;
    memset(b, 0, sizeof *b);
}

void pb_free(PieceBuilder *b) {
    free(b->text);
    free(b->src);
    memset(b, 0, sizeof *b);
}

Status piece_from_input(Piece *p, const char *text, size_t len, int32_t base) {
    memset(p, 0, sizeof *p);
    p->token = -1;
    p->text = malloc(len + 1);
    p->src = malloc((len ? len : 1) * sizeof *p->src);
    if (!p->text || !p->src) {
        piece_free(p);
        return status_fail(ST_OOM, "out of memory in the tokenizer");
    }
    memcpy(p->text, text, len);
    p->text[len] = '\0';
    p->len = len;
    // Each byte maps to the whole character it belongs to, as HF's alignments do.
    for (size_t i = 0; i < len;) {
        int n = utf8_len((const unsigned char *)text + i, len - i);
        if (n <= 0) n = 1;
        for (int k = 0; k < n && i + (size_t)k < len; k++)
            p->src[i + (size_t)k] = (Span){base + (int32_t)i, base + (int32_t)(i + (size_t)n)};
        i += (size_t)n;
    }
    return ST_OK;
}

Status piece_slice(Piece *out, const Piece *p, size_t from, size_t to) {
    memset(out, 0, sizeof *out);
    out->token = p->token;
    size_t n = to - from;
    out->text = malloc(n + 1);
    out->src = malloc((n ? n : 1) * sizeof *out->src);
    if (!out->text || !out->src) {
        piece_free(out);
        return status_fail(ST_OOM, "out of memory in the tokenizer");
    }
    memcpy(out->text, p->text + from, n);
    out->text[n] = '\0';
    if (n) memcpy(out->src, p->src + from, n * sizeof *out->src);
    out->len = n;
    return ST_OK;
}

void piece_free(Piece *p) {
    free(p->text);
    free(p->src);
    p->text = NULL;
    p->src = NULL;
    p->len = 0;
}

Status pieces_push(PieceList *l, Piece p) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        Piece *items = realloc(l->items, cap * sizeof *items);
        if (!items) {
            piece_free(&p);
            return status_fail(ST_OOM, "out of memory in the tokenizer");
        }
        l->items = items;
        l->cap = cap;
    }
    l->items[l->n++] = p;
    return ST_OK;
}

void pieces_free(PieceList *l) {
    for (size_t i = 0; i < l->n; i++) piece_free(&l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

Span piece_span(const Piece *p, size_t from, size_t to) {
    if (from >= to || to > p->len) {
        int32_t at = from < p->len ? p->src[from].start : (p->len ? p->src[p->len - 1].end : 0);
        return (Span){at, at};
    }
    return (Span){p->src[from].start, p->src[to - 1].end};
}

int utf8_len(const unsigned char *s, size_t avail) {
    if (avail == 0) return 0;
    unsigned char c = s[0];
    int n;
    uint32_t min;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) { n = 2; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { n = 3; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { n = 4; min = 0x10000; }
    else return 0;
    if ((size_t)n > avail) return 0;
    uint32_t cp = c & (0x7f >> n);
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

Status utf8_validate(const char *text, size_t len) {
    for (size_t i = 0; i < len;) {
        int n = utf8_len((const unsigned char *)text + i, len - i);
        if (n == 0) return status_fail(ST_USAGE, "invalid UTF-8 at byte offset %zu", i);
        i += (size_t)n;
    }
    return ST_OK;
}

long utf8_char_offset(const char *text, long byte) {
    long n = 0;
    for (long i = 0; i < byte; i++) n += ((unsigned char)text[i] & 0xc0) != 0x80;
    return n;
}
