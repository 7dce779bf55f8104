// Normalizers: the `normalizer` section of a Hugging Face tokenizer.json
// (Sequence, Prepend, Replace, NFC/NFD/NFKC/NFKD, Lowercase, StripAccents,
// Strip, BertNormalizer), with HF tokenizers' exact alignments.
//
// HF rewrites text through NormalizedString::transform: the new text is a
// list of (char, change) where change 0 replaces the next old char, -n
// replaces it and removes the n chars after it, and 1 inserts a char. A
// replacing char takes the span of the old char it replaces; an inserted char
// takes the span of the old char before it (so NFD's "e" + U+0301 both map to
// the input "é", and BERT's padding spaces map to the CJK char they pad). We
// build the same lists and run the same walk, so every output byte names the
// input bytes HF would name. Unicode data comes from utf8proc.
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer_internal.h"

// ---- the text as chars -----------------------------------------------------

typedef struct {
    int32_t *cp;   // [n] code points
    size_t *at;    // [n] byte offset of each in the piece's text
    uint8_t *len;  // [n] byte length of each
    size_t n;
} Chars;

static void chars_free(Chars *c) {
    free(c->cp);
    free(c->at);
    free(c->len);
    memset(c, 0, sizeof *c);
}

static Status chars_decode(Chars *c, const Piece *p) {
    memset(c, 0, sizeof *c);
    size_t cap = p->len ? p->len : 1;
    c->cp = malloc(cap * sizeof *c->cp);
    c->at = malloc(cap * sizeof *c->at);
    c->len = malloc(cap);
    if (!c->cp || !c->at || !c->len) {
        chars_free(c);
        return status_fail(ST_OOM, "out of memory in the normalizer");
    }
    for (size_t i = 0; i < p->len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)p->text + i, (utf8proc_ssize_t)(p->len - i), &cp);
        if (n <= 0) {
            chars_free(c);
            return status_fail(ST_FORMAT, "normalizer: invalid UTF-8 at byte %zu of a piece", i);
        }
        c->cp[c->n] = cp;
        c->at[c->n] = i;
        c->len[c->n] = (uint8_t)n;
        c->n++;
        i += (size_t)n;
    }
    return ST_OK;
}

// The input span of old char k (all its bytes share it after any rewrite).
static Span char_span(const Piece *p, const Chars *c, size_t k) {
    return piece_span(p, c->at[k], c->at[k] + c->len[k]);
}

// ---- (char, change) lists and HF's transform -------------------------------

typedef struct {
    int32_t *cp;     // [n]
    int32_t *change; // [n] 0 replace, -k replace and remove k more, 1 insert
    size_t n, cap;
} Changes;

static void changes_free(Changes *c) {
    free(c->cp);
    free(c->change);
    memset(c, 0, sizeof *c);
}

static Status changes_push(Changes *c, int32_t cp, int32_t change) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        int32_t *a = realloc(c->cp, cap * sizeof *a);
        if (!a) return status_fail(ST_OOM, "out of memory in the normalizer");
        c->cp = a;
        int32_t *b = realloc(c->change, cap * sizeof *b);
        if (!b) return status_fail(ST_OOM, "out of memory in the normalizer");
        c->change = b;
        c->cap = cap;
    }
    c->cp[c->n] = cp;
    c->change[c->n] = change;
    c->n++;
    return ST_OK;
}

// Rewrites p as the list ch says, the first `removed` old chars dropped
// (HF's transform(dest, initial_offset)).
static Status transform(Piece *p, const Chars *old, const Changes *ch, size_t removed) {
    PieceBuilder b = {0};
    size_t next = removed; // the next old char to consume
    // HF gives a char inserted before any old char the span (0, 0) of its
    // string: here, the empty span where the piece starts.
    Span at_start = p->len ? (Span){p->src[0].start, p->src[0].start} : (Span){0, 0};
    for (size_t i = 0; i < ch->n; i++) {
        Span from;
        if (ch->change[i] > 0) {
            from = next == 0 ? at_start : char_span(p, old, next - 1);
        } else {
            from = next < old->n ? char_span(p, old, next) : at_start;
            next += 1 + (size_t)(-ch->change[i]);
        }
        utf8proc_uint8_t bytes[4];
        utf8proc_ssize_t n = utf8proc_encode_char(ch->cp[i], bytes);
        Status st = pb_append(&b, (const char *)bytes, (size_t)n, from);
        if (st != ST_OK) {
            pb_free(&b);
            return st;
        }
    }
    pb_finish(&b, p);
    return ST_OK;
}

// A rewrite: fills a change list from the piece's chars (and says how many
// leading chars it drops).
typedef Status (*Rewrite)(const Chars *in, const void *arg, Changes *out, size_t *removed);

static Status apply_rewrite(Piece *p, Rewrite rewrite, const void *arg) {
    Chars old;
    TRY(chars_decode(&old, p));
    Changes ch = {0};
    size_t removed = 0;
    Status st = rewrite(&old, arg, &ch, &removed);
    if (st == ST_OK) st = transform(p, &old, &ch, removed);
    changes_free(&ch);
    chars_free(&old);
    return st;
}

// ---- character classes (as HF's Rust code defines them) ---------------------

static int category(int32_t c) { return (int)utf8proc_category(c); }

// Rust's char::is_whitespace: the White_Space property, which is Zs, Zl, Zp
// and the controls U+0009..U+000D and U+0085.
static bool is_rust_whitespace(int32_t c) {
    int cat = category(c);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP ||
           (c >= 0x09 && c <= 0x0d) || c == 0x85;
}

// BertNormalizer's whitespace: \t \n \r and White_Space.
static bool is_bert_whitespace(int32_t c) { return is_rust_whitespace(c); }

// BertNormalizer's control: Cc, Cf, Co other than \t \n \r.
static bool is_bert_control(int32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    int cat = category(c);
    return cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_CO;
}

// BERT's "Chinese character": the CJK Unified Ideographs blocks.
static bool is_chinese_char(int32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool is_mark(int32_t c) {
    int cat = category(c);
    return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_MC || cat == UTF8PROC_CATEGORY_ME;
}

static int combining_class(int32_t c) { return utf8proc_get_property(c)->combining_class; }

// ---- filter, map, lowercase -------------------------------------------------

typedef bool (*CharTest)(int32_t c);

// HF's NormalizedString::filter, dropping the chars `arg` (a CharTest)
// accepts: each kept char carries the count of dropped chars that follow it;
// the dropped leading chars are the initial offset.
static Status rewrite_drop(const Chars *in, const void *arg, Changes *out, size_t *removed) {
    CharTest drop = *(const CharTest *)arg;
    int32_t gap = 0, last = -1;
    for (size_t i = 0; i < in->n; i++) {
        if (drop(in->cp[i])) {
            gap++;
            continue;
        }
        if (last >= 0) TRY(changes_push(out, last, -gap));
        else *removed = (size_t)gap;
        last = in->cp[i];
        gap = 0;
    }
    if (last >= 0) TRY(changes_push(out, last, -gap));
    return ST_OK;
}

typedef int32_t (*CharMap)(int32_t c);

static Status rewrite_map(const Chars *in, const void *arg, Changes *out, size_t *removed) {
    (void)removed;
    CharMap map = *(const CharMap *)arg;
    for (size_t i = 0; i < in->n; i++) TRY(changes_push(out, map(in->cp[i]), 0));
    return ST_OK;
}

// Rust's char::to_lowercase: the simple mapping, except U+0130 whose full
// (unconditional SpecialCasing) lowercase is "i" + U+0307.
static Status rewrite_lowercase(const Chars *in, const void *arg, Changes *out, size_t *removed) {
    (void)arg;
    (void)removed;
    for (size_t i = 0; i < in->n; i++) {
        if (in->cp[i] == 0x130) {
            TRY(changes_push(out, 'i', 0));
            TRY(changes_push(out, 0x307, 1));
        } else {
            TRY(changes_push(out, utf8proc_tolower(in->cp[i]), 0));
        }
    }
    return ST_OK;
}

// ---- Unicode normalization forms -------------------------------------------

// Stably sorts out[from, to) by canonical combining class (insertion sort:
// runs of combining marks are short).
static void sort_by_class(Changes *out, size_t from, size_t to) {
    for (size_t i = from + 1; i < to; i++) {
        int32_t cp = out->cp[i], change = out->change[i];
        int cls = combining_class(cp);
        size_t j = i;
        while (j > from && combining_class(out->cp[j - 1]) > cls) {
            out->cp[j] = out->cp[j - 1];
            out->change[j] = out->change[j - 1];
            j--;
        }
        out->cp[j] = cp;
        out->change[j] = change;
    }
}

// The decomposition stream of unicode-normalization-alignments: each char's
// full decomposition (change 0 for its first char, 1 for the rest), each run
// that starts at a starter stably sorted by combining class.
static Status decompose(const Chars *in, bool compat, Changes *out) {
    utf8proc_option_t opts = UTF8PROC_DECOMPOSE | (compat ? UTF8PROC_COMPAT : 0);
    size_t run = 0; // where the current unsorted run starts
    for (size_t i = 0; i < in->n; i++) {
        utf8proc_int32_t d[32];
        int boundclass = 0;
        utf8proc_ssize_t n = utf8proc_decompose_char(in->cp[i], d, 32, opts, &boundclass);
        if (n < 0 || n > 32) return status_fail(ST_UNSUPPORTED, "normalizer: cannot decompose U+%04X", in->cp[i]);
        for (utf8proc_ssize_t k = 0; k < n; k++) {
            if (combining_class(d[k]) == 0) {
                sort_by_class(out, run, out->n);
                run = out->n;
            }
            TRY(changes_push(out, d[k], k == 0 ? 0 : 1));
        }
    }
    sort_by_class(out, run, out->n);
    return ST_OK;
}

// Canonical composition of a pair (0: none), Hangul included; STABLE keeps
// the composition exclusions out.
static int32_t compose_pair(int32_t a, int32_t b) {
    utf8proc_int32_t buf[2] = {a, b};
    return utf8proc_normalize_utf32(buf, 2, UTF8PROC_COMPOSE | UTF8PROC_STABLE) == 1 ? buf[0] : 0;
}

// Composes a decomposition stream as unicode-normalization-alignments does: a
// composite's change is composee + mark - 1; blocked marks wait in `held` and
// follow their starter.
typedef struct {
    Changes *out;
    Changes held;   // marks blocked from the composee, in order
    bool has_composee;
    int32_t cp, change;
    int last_class; // class of the last held mark, -1 when none
} Composer;

static Status composer_flush(Composer *k) {
    if (k->has_composee) TRY(changes_push(k->out, k->cp, k->change));
    for (size_t i = 0; i < k->held.n; i++) TRY(changes_push(k->out, k->held.cp[i], k->held.change[i]));
    k->held.n = 0;
    k->has_composee = false;
    k->last_class = -1;
    return ST_OK;
}

static Status composer_push(Composer *k, int32_t ch, int32_t change) {
    int cls = combining_class(ch);
    if (!k->has_composee) {
        if (cls != 0) return changes_push(k->out, ch, change);
        k->has_composee = true, k->cp = ch, k->change = change;
        return ST_OK;
    }
    bool blocked = k->last_class >= 0 && k->last_class >= cls;
    int32_t r = blocked ? 0 : compose_pair(k->cp, ch);
    if (r) {
        k->cp = r;
        k->change = k->change + change - 1;
        return ST_OK;
    }
    if (cls == 0) { // a new starter: emit the composee and what it blocked
        TRY(composer_flush(k));
        k->has_composee = true, k->cp = ch, k->change = change;
        return ST_OK;
    }
    k->last_class = cls;
    return changes_push(&k->held, ch, change);
}

static Status compose(const Changes *in, Changes *out) {
    Composer k = {.out = out, .last_class = -1};
    Status st = ST_OK;
    for (size_t i = 0; i < in->n && st == ST_OK; i++) st = composer_push(&k, in->cp[i], in->change[i]);
    if (st == ST_OK) st = composer_flush(&k);
    changes_free(&k.held);
    return st;
}

typedef struct {
    bool compat, compose;
} UnicodeForm;

static Status rewrite_unicode(const Chars *in, const void *arg, Changes *out, size_t *removed) {
    (void)removed;
    const UnicodeForm *form = arg;
    if (!form->compose) return decompose(in, form->compat, out);
    Changes d = {0};
    Status st = decompose(in, form->compat, &d);
    if (st == ST_OK) st = compose(&d, out);
    changes_free(&d);
    return st;
}

static Status normalize_form(Piece *p, bool compat, bool compose_after) {
    UnicodeForm form = {compat, compose_after};
    return apply_rewrite(p, rewrite_unicode, &form);
}

// ---- BertNormalizer ---------------------------------------------------------

static bool is_bert_junk(int32_t c) { return c == 0 || c == 0xFFFD || is_bert_control(c); }
static int32_t bert_space(int32_t c) { return is_bert_whitespace(c) ? ' ' : c; }
static bool is_nonspacing_mark(int32_t c) { return category(c) == UTF8PROC_CATEGORY_MN; }

// Each CJK char becomes " c " (the spaces and the char all map to it).
static Status rewrite_pad_chinese(const Chars *in, const void *arg, Changes *out, size_t *removed) {
    (void)arg;
    (void)removed;
    for (size_t i = 0; i < in->n; i++) {
        if (is_chinese_char(in->cp[i])) {
            TRY(changes_push(out, ' ', 0));
            TRY(changes_push(out, in->cp[i], 1));
            TRY(changes_push(out, ' ', 1));
        } else {
            TRY(changes_push(out, in->cp[i], 0));
        }
    }
    return ST_OK;
}

static Status drop_chars(Piece *p, CharTest test) { return apply_rewrite(p, rewrite_drop, &test); }
static Status map_chars(Piece *p, CharMap map) { return apply_rewrite(p, rewrite_map, &map); }

static Status bert_normalize(const Normalizer *n, Piece *p) {
    if (n->clean_text) {
        TRY(drop_chars(p, is_bert_junk));
        TRY(map_chars(p, bert_space));
    }
    if (n->handle_chinese_chars) TRY(apply_rewrite(p, rewrite_pad_chinese, NULL));
    bool strip_accents = n->strip_accents < 0 ? n->lowercase : n->strip_accents != 0;
    if (strip_accents) {
        TRY(normalize_form(p, false, false));
        TRY(drop_chars(p, is_nonspacing_mark));
    }
    if (n->lowercase) TRY(apply_rewrite(p, rewrite_lowercase, NULL));
    return ST_OK;
}

// ---- Strip, Prepend, Replace ------------------------------------------------

// HF's lrstrip: leading whitespace is the initial offset, the last kept char
// carries the trailing count (HF compares a char index with a byte length
// there; with non-ASCII text that never hits a kept char, and a miss changes
// nothing since no char follows).
typedef struct {
    bool left, right;
} StripSides;

static Status rewrite_strip(const Chars *in, const void *arg, Changes *out, size_t *removed) {
    const StripSides *sides = arg;
    size_t lead = 0, trail = 0;
    if (sides->left)
        while (lead < in->n && is_rust_whitespace(in->cp[lead])) lead++;
    if (sides->right)
        while (trail < in->n && is_rust_whitespace(in->cp[in->n - 1 - trail])) trail++;
    *removed = lead;
    size_t byte_len = in->n ? in->at[in->n - 1] + in->len[in->n - 1] : 0;
    for (size_t i = lead; i + trail < in->n; i++) {
        bool last = i + trail + 1 == byte_len;
        TRY(changes_push(out, in->cp[i], last ? -(int32_t)trail : 0));
    }
    return ST_OK;
}

static Status strip_normalize(const Normalizer *n, Piece *p) {
    StripSides sides = {n->strip_left, n->strip_right};
    return apply_rewrite(p, rewrite_strip, &sides);
}

// Prepend (only to a non-empty string): the first prepended char replaces the
// first old char, the rest and that char are inserted after it, so all map
// to the first old char.
static Status rewrite_prepend(const Chars *in, const void *arg, Changes *out, size_t *removed) {
    (void)removed;
    const char *s = arg;
    size_t len = strlen(s);
    int k = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t n = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (n <= 0) return status_fail(ST_FORMAT, "Prepend: invalid UTF-8 in the prepended string");
        TRY(changes_push(out, cp, k++ == 0 ? 0 : 1));
        i += (size_t)n;
    }
    for (size_t i = 0; i < in->n; i++) TRY(changes_push(out, in->cp[i], i == 0 ? 1 : 0));
    return ST_OK;
}

static Status prepend_normalize(const Normalizer *n, Piece *p) {
    if (p->len == 0) return ST_OK;
    if (n->a[0] == '\0') { // HF re-inserts the first char before any old one: span (0, 0)
        int len = utf8_len((const unsigned char *)p->text, p->len);
        Span at_start = {p->src[0].start, p->src[0].start};
        for (int i = 0; i < (len > 0 ? len : 1); i++) p->src[i] = at_start;
        return ST_OK;
    }
    return apply_rewrite(p, rewrite_prepend, n->a);
}

// The span HF gives content inserted where a match ends at byte `end`: that
// of the char before `end`, or the empty span at the start.
static Span span_before(const Piece *p, size_t end) {
    if (end == 0) return p->len ? (Span){p->src[0].start, p->src[0].start} : (Span){0, 0};
    size_t at = end - 1;
    while (at > 0 && ((unsigned char)p->text[at] & 0xC0) == 0x80) at--;
    return piece_span(p, at, end);
}

static Status append_original(PieceBuilder *b, const Piece *p, size_t from, size_t to) {
    for (size_t i = from; i < to; i++) TRY(pb_append(b, p->text + i, 1, p->src[i]));
    return ST_OK;
}

// Next match of pattern at or after byte `from` (leftmost, non-overlapping;
// an empty pattern matches at every char boundary, as HF's regex does).
static bool find_next(const Piece *p, const char *pat, size_t pat_len, size_t from, size_t *at) {
    if (pat_len == 0) {
        while (from < p->len && ((unsigned char)p->text[from] & 0xC0) == 0x80) from++;
        *at = from;
        return from <= p->len;
    }
    if (from + pat_len > p->len) return false;
    const char *hit = memmem(p->text + from, p->len - from, pat, pat_len);
    if (!hit) return false;
    *at = (size_t)(hit - p->text);
    return true;
}

static Status replace_into(const Normalizer *n, const Piece *p, PieceBuilder *b) {
    size_t pat_len = strlen(n->a), content_len = strlen(n->b), done = 0, from = 0, at;
    while (from <= p->len && find_next(p, n->a, pat_len, from, &at)) {
        size_t end = at + pat_len;
        TRY(append_original(b, p, done, at));
        if (content_len) TRY(pb_append(b, n->b, content_len, span_before(p, end)));
        done = end;
        if (pat_len) {
            from = end;
        } else { // step over one char after an empty match
            if (at == p->len) break;
            int len = utf8_len((const unsigned char *)p->text + at, p->len - at);
            from = at + (size_t)(len > 0 ? len : 1);
        }
    }
    return append_original(b, p, done, p->len);
}

// Replace: every inserted content char maps to the last char of its match.
static Status replace_normalize(const Normalizer *n, Piece *p) {
    if (p->len == 0) return ST_OK; // HF finds no match, even of "", in an empty string
    PieceBuilder b = {0};
    Status st = replace_into(n, p, &b);
    if (st != ST_OK) {
        pb_free(&b);
        return st;
    }
    pb_finish(&b, p);
    return ST_OK;
}

// ---- apply ------------------------------------------------------------------

Status normalizer_apply(const Normalizer *n, Piece *p) {
    switch (n->type) {
    case NORM_SEQUENCE:
        for (int i = 0; i < n->n_children; i++) TRY(normalizer_apply(&n->children[i], p));
        return ST_OK;
    case NORM_PREPEND: return prepend_normalize(n, p);
    case NORM_REPLACE: return replace_normalize(n, p);
    case NORM_NFC: return normalize_form(p, false, true);
    case NORM_NFD: return normalize_form(p, false, false);
    case NORM_NFKC: return normalize_form(p, true, true);
    case NORM_NFKD: return normalize_form(p, true, false);
    case NORM_LOWERCASE: return apply_rewrite(p, rewrite_lowercase, NULL);
    case NORM_STRIP_ACCENTS: return drop_chars(p, is_mark);
    case NORM_STRIP: return strip_normalize(n, p);
    case NORM_BERT: return bert_normalize(n, p);
    }
    return status_fail(ST_UNSUPPORTED, "normalizer: unknown type %d", (int)n->type);
}

// ---- tokenizer.json ---------------------------------------------------------

static Status get_bool(json_t *j, const char *key, bool fallback, bool *out, const char *path) {
    json_t *v = json_object_get(j, key);
    if (!v || json_is_null(v)) *out = fallback;
    else if (json_is_boolean(v)) *out = json_is_true(v);
    else return status_fail(ST_FORMAT, "%s: \"%s\" must be true or false", path, key);
    return ST_OK;
}

static Status get_string(json_t *j, const char *key, char **out, const char *path) {
    const char *s = json_string_value(json_object_get(j, key));
    if (!s) return status_fail(ST_FORMAT, "%s: \"%s\" must be a string", path, key);
    *out = strdup(s);
    if (!*out) return status_fail(ST_OOM, "out of memory reading %s", path);
    return ST_OK;
}

static Status parse_sequence(Normalizer *n, json_t *j, const char *path) {
    json_t *list = json_object_get(j, "normalizers");
    if (!json_is_array(list)) return status_fail(ST_FORMAT, "%s: Sequence needs a \"normalizers\" list", path);
    size_t count = json_array_size(list);
    n->children = calloc(count ? count : 1, sizeof *n->children);
    if (!n->children) return status_fail(ST_OOM, "out of memory reading %s", path);
    for (size_t i = 0; i < count; i++) {
        char child_path[512];
        snprintf(child_path, sizeof child_path, "%s.normalizers[%zu]", path, i);
        TRY(normalizer_from_json(&n->children[i], json_array_get(list, i), child_path));
        n->n_children = (int)i + 1;
    }
    return ST_OK;
}

static Status parse_replace(Normalizer *n, json_t *j, const char *path) {
    json_t *pattern = json_object_get(j, "pattern");
    if (json_is_object(pattern) && json_object_get(pattern, "Regex"))
        return status_fail(ST_UNSUPPORTED, "%s: Replace with a Regex pattern is not supported", path);
    if (!json_is_object(pattern) || !json_is_string(json_object_get(pattern, "String")))
        return status_fail(ST_FORMAT, "%s: Replace needs a pattern {\"String\": ...}", path);
    TRY(get_string(pattern, "String", &n->a, path));
    return get_string(j, "content", &n->b, path);
}

static Status parse_bert(Normalizer *n, json_t *j, const char *path) {
    TRY(get_bool(j, "clean_text", true, &n->clean_text, path));
    TRY(get_bool(j, "handle_chinese_chars", true, &n->handle_chinese_chars, path));
    TRY(get_bool(j, "lowercase", true, &n->lowercase, path));
    json_t *sa = json_object_get(j, "strip_accents");
    if (!sa || json_is_null(sa)) n->strip_accents = -1;
    else if (json_is_boolean(sa)) n->strip_accents = json_is_true(sa);
    else return status_fail(ST_FORMAT, "%s: \"strip_accents\" must be true, false or null", path);
    return ST_OK;
}

static Status parse_by_type(Normalizer *n, json_t *j, const char *type, const char *path) {
    static const struct {
        const char *name;
        NormType type;
    } plain[] = {
        {"NFC", NORM_NFC}, {"NFD", NORM_NFD}, {"NFKC", NORM_NFKC}, {"NFKD", NORM_NFKD},
        {"Lowercase", NORM_LOWERCASE}, {"StripAccents", NORM_STRIP_ACCENTS},
    };
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++)
        if (strcmp(type, plain[i].name) == 0) {
            n->type = plain[i].type;
            return ST_OK;
        }
    if (strcmp(type, "Sequence") == 0) {
        n->type = NORM_SEQUENCE;
        return parse_sequence(n, j, path);
    }
    if (strcmp(type, "Prepend") == 0) {
        n->type = NORM_PREPEND;
        return get_string(j, "prepend", &n->a, path);
    }
    if (strcmp(type, "Replace") == 0) {
        n->type = NORM_REPLACE;
        return parse_replace(n, j, path);
    }
    if (strcmp(type, "Strip") == 0) {
        n->type = NORM_STRIP;
        TRY(get_bool(j, "strip_left", true, &n->strip_left, path));
        return get_bool(j, "strip_right", true, &n->strip_right, path);
    }
    if (strcmp(type, "BertNormalizer") == 0) {
        n->type = NORM_BERT;
        return parse_bert(n, j, path);
    }
    return status_fail(ST_UNSUPPORTED, "%s: normalizer type '%s' is not supported", path, type);
}

Status normalizer_from_json(Normalizer *n, json_t *j, const char *path) {
    memset(n, 0, sizeof *n);
    n->strip_accents = -1;
    if (!json_is_object(j)) return status_fail(ST_FORMAT, "%s: a normalizer must be an object", path);
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type) return status_fail(ST_FORMAT, "%s: normalizer without a \"type\"", path);
    Status st = parse_by_type(n, j, type, path);
    if (st != ST_OK) normalizer_free(n);
    return st;
}

void normalizer_free(Normalizer *n) {
    for (int i = 0; i < n->n_children; i++) normalizer_free(&n->children[i]);
    free(n->children);
    free(n->a);
    free(n->b);
    memset(n, 0, sizeof *n);
}
