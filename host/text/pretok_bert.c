// The BERT-family pre-tokenizers of Hugging Face tokenizers: BertPreTokenizer,
// Whitespace, WhitespaceSplit, Punctuation and Digits. Each cuts every piece
// that is not an already-matched token into sub-pieces (spans kept), as HF's
// NormalizedString::split does: the piece is divided into match / non-match
// segments, the split behavior decides which to keep and how to merge them,
// and empty results are dropped. Character classes come from utf8proc.
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer_internal.h"

// ---- segments ---------------------------------------------------------------

typedef struct {
    size_t start, end; // byte range in the piece's text
    bool match;        // a delimiter (HF's is_match; after the behavior: "remove")
} Segment;

typedef struct {
    Segment *items; // [n]
    size_t n, cap;
} Segments;

static Status segments_push(Segments *s, size_t start, size_t end, bool match) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        Segment *items = realloc(s->items, cap * sizeof *items);
        if (!items) return status_fail(ST_OOM, "out of memory in the pre-tokenizer");
        s->items = items;
        s->cap = cap;
    }
    s->items[s->n++] = (Segment){start, end, match};
    return ST_OK;
}

// Decodes the char at byte i of p (text is valid UTF-8; a stray byte reads as
// a one-byte char that is no class member).
static size_t char_at(const Piece *p, size_t i, int32_t *cp) {
    utf8proc_int32_t c;
    utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)p->text + i, (utf8proc_ssize_t)(p->len - i), &c);
    if (n <= 0) {
        *cp = -1;
        return 1;
    }
    *cp = c;
    return (size_t)n;
}

// ---- character classes (as HF's Rust code defines them) ---------------------

typedef bool (*CharTest)(int32_t c);

static int category(int32_t c) { return c < 0 ? UTF8PROC_CATEGORY_CN : (int)utf8proc_category(c); }

// Rust's char::is_whitespace: the White_Space property, which is Zs, Zl, Zp
// and the controls U+0009..U+000D and U+0085.
static bool is_whitespace(int32_t c) {
    int cat = category(c);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP ||
           (c >= 0x09 && c <= 0x0d) || c == 0x85;
}

// HF's punctuation: ASCII punctuation (which includes $ + < = > ^ ` | ~) or a
// Unicode P* category.
static bool is_punctuation(int32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) return true;
    int cat = category(c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

// Rust's char::is_numeric: Nd, Nl, No.
static bool is_numeric(int32_t c) {
    int cat = category(c);
    return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

// The regex crate's Unicode \w: Alphabetic, Mark, Nd, Pc and Join_Control.
// Alphabetic is L*, Nl and Other_Alphabetic; the Other_Alphabetic chars that
// are neither letters nor marks are the circled / squared Latin letters
// (category So), which utf8proc does not flag, so they are named here.
static bool is_word(int32_t c) {
    int cat = category(c);
    if ((cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_ND) || cat == UTF8PROC_CATEGORY_NL ||
        cat == UTF8PROC_CATEGORY_PC)
        return true; // L*, M*, Nd (contiguous in utf8proc's enum), Nl, Pc
    if (c == 0x200C || c == 0x200D) return true;
    return (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
           (c >= 0x1F170 && c <= 0x1F189);
}

// ---- HF's find_matches and split behaviors ----------------------------------

// Every char passing `test` is a one-char match; the runs between are non-matches.
static Status char_matches(const Piece *p, CharTest test, Segments *out) {
    size_t last = 0;
    for (size_t i = 0; i < p->len;) {
        int32_t c;
        size_t n = char_at(p, i, &c);
        if (test(c)) {
            if (last < i) TRY(segments_push(out, last, i, false));
            TRY(segments_push(out, i, i + n, true));
            last = i + n;
        }
        i += n;
    }
    if (last < p->len) TRY(segments_push(out, last, p->len, false));
    return ST_OK;
}

// Matches of \w+|[^\w\s]+ (runs of word chars, runs of other non-space chars),
// flagged as kept; the whitespace between them is flagged for removal.
static Status word_matches(const Piece *p, Segments *out) {
    size_t i = 0, gap = 0;
    while (i < p->len) {
        int32_t c;
        size_t n = char_at(p, i, &c);
        if (is_whitespace(c) && !is_word(c)) {
            i += n;
            continue;
        }
        bool word = is_word(c);
        size_t start = i;
        i += n;
        while (i < p->len) {
            n = char_at(p, i, &c);
            bool same = word ? is_word(c) : !is_word(c) && !is_whitespace(c);
            if (!same) break;
            i += n;
        }
        if (gap < start) TRY(segments_push(out, gap, start, true));
        TRY(segments_push(out, start, i, false));
        gap = i;
    }
    if (gap < p->len) TRY(segments_push(out, gap, p->len, true));
    return ST_OK;
}

// Appends s to the last kept segment (or keeps it when there is none).
static Status merge_into_last(Segments *out, const Segment *s, bool at_end) {
    if (out->n == 0) return segments_push(out, s->start, s->end, false);
    if (at_end) out->items[out->n - 1].end = s->end;
    else out->items[out->n - 1].start = s->start;
    return ST_OK;
}

// HF's SplitDelimiterBehavior: rewrites the segments into the ones to cut,
// `match` then meaning "remove".
static Status apply_behavior(const Segments *in, SplitBehavior b, Segments *out) {
    bool prev = false;
    if (b == SPLIT_MERGED_NEXT) { // walks backwards, merging a delimiter into what follows
        for (size_t k = in->n; k-- > 0;) {
            const Segment *s = &in->items[k];
            if (s->match && !prev) TRY(merge_into_last(out, s, false));
            else TRY(segments_push(out, s->start, s->end, false));
            prev = s->match;
        }
        for (size_t i = 0, j = out->n; i < j / 2; i++) { // back to text order
            Segment t = out->items[i];
            out->items[i] = out->items[j - 1 - i];
            out->items[j - 1 - i] = t;
        }
        return ST_OK;
    }
    for (size_t k = 0; k < in->n; k++) {
        const Segment *s = &in->items[k];
        switch (b) {
        case SPLIT_REMOVED: TRY(segments_push(out, s->start, s->end, s->match)); break;
        case SPLIT_ISOLATED: TRY(segments_push(out, s->start, s->end, false)); break;
        case SPLIT_CONTIGUOUS:
            if (k > 0 && s->match == prev) TRY(merge_into_last(out, s, true));
            else TRY(segments_push(out, s->start, s->end, false));
            break;
        case SPLIT_MERGED_PREVIOUS:
            if (s->match && !prev) TRY(merge_into_last(out, s, true));
            else TRY(segments_push(out, s->start, s->end, false));
            break;
        case SPLIT_MERGED_NEXT: break; // handled above
        }
        prev = s->match;
    }
    return ST_OK;
}

// ---- splitting a list ---------------------------------------------------------

typedef struct {
    CharTest test;      // a char-class delimiter, or
    bool words;         // the \w+|[^\w\s]+ matches
    SplitBehavior behavior;
} Splitter;

static Status split_piece(const Splitter *sp, const Piece *p, PieceList *out) {
    Segments found = {0}, cut = {0};
    Status st = sp->words ? word_matches(p, &found) : char_matches(p, sp->test, &found);
    if (st == ST_OK) st = apply_behavior(&found, sp->behavior, &cut);
    for (size_t k = 0; k < cut.n && st == ST_OK; k++) {
        const Segment *s = &cut.items[k];
        if (s->match || s->start == s->end) continue;
        Piece sub;
        st = piece_slice(&sub, p, s->start, s->end);
        if (st == ST_OK) st = pieces_push(out, sub);
    }
    free(found.items);
    free(cut.items);
    return st;
}

// Replaces each un-matched piece of l by its split, in order; matched tokens
// pass through. On failure l is left empty.
static Status split_list(PieceList *l, const Splitter *sp) {
    PieceList out = {0};
    Status st = ST_OK;
    for (size_t i = 0; i < l->n && st == ST_OK; i++) {
        Piece *p = &l->items[i];
        if (p->token >= 0) {
            Piece moved = *p;
            memset(p, 0, sizeof *p);
            st = pieces_push(&out, moved); // frees moved on failure
        } else {
            st = split_piece(sp, p, &out);
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

// ---- the pre-tokenizers -------------------------------------------------------

Status pretok_bert(PieceList *l) {
    TRY(split_list(l, &(Splitter){.test = is_whitespace, .behavior = SPLIT_REMOVED}));
    return split_list(l, &(Splitter){.test = is_punctuation, .behavior = SPLIT_ISOLATED});
}

Status pretok_whitespace(PieceList *l) { return split_list(l, &(Splitter){.words = true, .behavior = SPLIT_REMOVED}); }

Status pretok_whitespace_split(PieceList *l) {
    return split_list(l, &(Splitter){.test = is_whitespace, .behavior = SPLIT_REMOVED});
}

Status pretok_punctuation(PieceList *l, SplitBehavior behavior) {
    return split_list(l, &(Splitter){.test = is_punctuation, .behavior = behavior});
}

Status pretok_digits(PieceList *l, bool individual_digits) {
    SplitBehavior b = individual_digits ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS;
    return split_list(l, &(Splitter){.test = is_numeric, .behavior = b});
}
