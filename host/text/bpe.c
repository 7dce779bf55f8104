// The BPE model: characters (or byte-fallback tokens) of a piece merged by
// rank, lowest rank first and leftmost among equals, as HF tokenizers does.
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

typedef struct {
    int32_t id;
    int32_t prev, next; // linked list over symbols; -1 at the ends
    uint32_t start, end; // bytes [start, end) of the piece
    bool alive;
} Symbol;

typedef struct {
    int32_t rank, pos, left, right;
} Candidate;

typedef struct {
    Candidate *items;
    size_t n, cap;
} Heap;

static bool cand_less(const Candidate *a, const Candidate *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static Status heap_push(Heap *h, Candidate c) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 32;
        Candidate *items = realloc(h->items, cap * sizeof *items);
        if (!items) return status_fail(ST_OOM, "out of memory in BPE");
        h->items = items;
        h->cap = cap;
    }
    size_t i = h->n++;
    h->items[i] = c;
    while (i > 0 && cand_less(&h->items[i], &h->items[(i - 1) / 2])) {
        Candidate t = h->items[i];
        h->items[i] = h->items[(i - 1) / 2];
        h->items[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
    return ST_OK;
}

static Candidate heap_pop(Heap *h) {
    Candidate top = h->items[0];
    h->items[0] = h->items[--h->n];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && cand_less(&h->items[l], &h->items[m])) m = l;
        if (r < h->n && cand_less(&h->items[r], &h->items[m])) m = r;
        if (m == i) break;
        Candidate t = h->items[i];
        h->items[i] = h->items[m];
        h->items[m] = t;
        i = m;
    }
    return top;
}

static Status push_pair(const Model *m, Heap *h, const Symbol *s, int32_t pos) {
    if (pos < 0 || s[pos].next < 0) return ST_OK;
    int32_t rank, merged;
    if (!mergemap_get(&m->merges, s[pos].id, s[s[pos].next].id, &rank, &merged)) return ST_OK;
    return heap_push(h, (Candidate){rank, pos, s[pos].id, s[s[pos].next].id});
}

static bool bytes_known(const Model *m, const char *bytes, int n) {
    for (int k = 0; k < n; k++)
        if (m->byte_ids[(unsigned char)bytes[k]] < 0) return false;
    return true;
}

// Initial symbols: one per character; unknown characters become byte-fallback
// tokens or the unknown token (consecutive unknowns fused when fuse_unk).
static Status initial_symbols(const Model *m, const Piece *p, Symbol **out, int32_t *n_out) {
    Symbol *s = malloc((p->len + 1) * sizeof *s);
    if (!s) return status_fail(ST_OOM, "out of memory in BPE");
    int32_t n = 0;
    char buf[512];
    for (size_t i = 0; i < p->len;) {
        int cl = utf8_len((const unsigned char *)p->text + i, p->len - i);
        if (cl <= 0) cl = 1;
        const char *ch = p->text + i;
        size_t chl = (size_t)cl;
        if (m->continuing_subword_prefix && i > 0 && chl + strlen(m->continuing_subword_prefix) < sizeof buf) {
            snprintf(buf, sizeof buf, "%s%.*s", m->continuing_subword_prefix, cl, ch);
            ch = buf;
            chl = strlen(buf);
        }
        int32_t id = strmap_get(&m->vocab, ch, chl);
        if (id >= 0) {
            s[n] = (Symbol){id, n - 1, -1, (uint32_t)i, (uint32_t)(i + (size_t)cl), true};
            n++;
        } else if (m->byte_fallback && bytes_known(m, p->text + i, cl)) {
            for (int k = 0; k < cl; k++, n++)
                s[n] = (Symbol){m->byte_ids[(unsigned char)p->text[i + (size_t)k]], n - 1, -1, (uint32_t)(i + (size_t)k),
                                (uint32_t)(i + (size_t)k + 1), true};
        } else if (m->unk_id >= 0) {
            if (m->fuse_unk && n > 0 && s[n - 1].id == m->unk_id) s[n - 1].end = (uint32_t)(i + (size_t)cl);
            else {
                s[n] = (Symbol){m->unk_id, n - 1, -1, (uint32_t)i, (uint32_t)(i + (size_t)cl), true};
                n++;
            }
        }
        i += (size_t)cl;
    }
    for (int32_t k = 0; k < n; k++) {
        s[k].prev = k - 1;
        s[k].next = k + 1 < n ? k + 1 : -1;
    }
    *out = s;
    *n_out = n;
    return ST_OK;
}

Status bpe_encode_piece(const Model *m, const Piece *p, TokenList *out) {
    if (p->len == 0) return ST_OK;
    if (m->ignore_merges) { // a piece that is a token is that token
        int32_t id = strmap_get(&m->vocab, p->text, p->len);
        if (id >= 0) {
            Span sp = piece_span(p, 0, p->len);
            return token_list_push(out, id, sp.start, sp.end, false);
        }
    }
    Symbol *s;
    int32_t n;
    TRY(initial_symbols(m, p, &s, &n));
    Heap h = {0};
    Status st = ST_OK;
    for (int32_t k = 0; k + 1 < n && st == ST_OK; k++) st = push_pair(m, &h, s, k);
    while (st == ST_OK && h.n > 0) {
        Candidate c = heap_pop(&h);
        Symbol *a = &s[c.pos];
        if (!a->alive || a->next < 0 || a->id != c.left || s[a->next].id != c.right) continue; // stale
        int32_t rank, merged;
        mergemap_get(&m->merges, c.left, c.right, &rank, &merged);
        Symbol *b = &s[a->next];
        a->id = merged;
        a->end = b->end;
        a->next = b->next;
        b->alive = false;
        if (a->next >= 0) s[a->next].prev = c.pos;
        st = push_pair(m, &h, s, a->prev);
        if (st == ST_OK) st = push_pair(m, &h, s, c.pos);
    }
    // Offsets as HF computes them: consecutive from the piece start, by the
    // symbols' lengths. A character dropped for want of an unknown token is
    // skipped by that count, so later offsets shift left exactly as in HF.
    uint32_t pos = 0;
    for (int32_t k = 0; st == ST_OK && n > 0 && k >= 0; k = s[k].next) {
        uint32_t len = s[k].end - s[k].start;
        Span sp = piece_span(p, pos, pos + len);
        pos += len;
        st = token_list_push(out, s[k].id, sp.start, sp.end, false);
    }
    free(h.items);
    free(s);
    return st;
}
