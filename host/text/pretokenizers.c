// Pre-tokenizers: Sequence, Split (PCRE2 regex), ByteLevel, Metaspace, and
// the dispatch to the BERT-family ones in pretok_bert.c. Each rewrites the
// pieces of a list that are not already-matched added tokens.
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

// GPT-2's pattern, used by ByteLevel when use_regex is true.
static const char *GPT2_PATTERN =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static Status compile_regex(pcre2_code **out, const char *pattern, size_t len, const char *path) {
    int err;
    PCRE2_SIZE at;
    *out = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_UCP, &err, &at, NULL);
    if (!*out) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return status_fail(ST_FORMAT, "%s: pre-tokenizer regex does not compile at offset %zu: %s", path, (size_t)at,
                           (char *)msg);
    }
    pcre2_jit_compile(*out, PCRE2_JIT_COMPLETE); // a speed-up only; the interpreter is the fallback
    return ST_OK;
}

// A literal string as a regex.
static Status compile_literal(pcre2_code **out, const char *s, const char *path) {
    size_t n = strlen(s);
    char *quoted = malloc(n + 5);
    if (!quoted) return status_fail(ST_OOM, "out of memory");
    snprintf(quoted, n + 5, "\\Q%s\\E", s);
    Status st = strstr(s, "\\E") ? status_fail(ST_UNSUPPORTED, "%s: split string contains \\E", path)
                                  : compile_regex(out, quoted, strlen(quoted), path);
    free(quoted);
    return st;
}

static Status parse_behavior(const char *s, SplitBehavior *b, const char *path) {
    if (!s) return status_fail(ST_FORMAT, "%s: pre-tokenizer without \"behavior\"", path);
    if (strcmp(s, "Removed") == 0) *b = SPLIT_REMOVED;
    else if (strcmp(s, "Isolated") == 0) *b = SPLIT_ISOLATED;
    else if (strcmp(s, "MergedWithPrevious") == 0) *b = SPLIT_MERGED_PREVIOUS;
    else if (strcmp(s, "MergedWithNext") == 0) *b = SPLIT_MERGED_NEXT;
    else if (strcmp(s, "Contiguous") == 0) *b = SPLIT_CONTIGUOUS;
    else return status_fail(ST_UNSUPPORTED, "%s: split behavior '%s' is not supported", path, s);
    return ST_OK;
}

static Status parse_prepend_scheme(json_t *j, PrependScheme *out, const char *path) {
    const char *s = json_string_value(json_object_get(j, "prepend_scheme"));
    json_t *aps = json_object_get(j, "add_prefix_space"); // older files
    if (!s) {
        *out = (aps && json_is_false(aps)) ? PREPEND_NEVER : PREPEND_ALWAYS;
        return ST_OK;
    }
    if (strcmp(s, "always") == 0) *out = PREPEND_ALWAYS;
    else if (strcmp(s, "first") == 0) *out = PREPEND_FIRST;
    else if (strcmp(s, "never") == 0) *out = PREPEND_NEVER;
    else return status_fail(ST_UNSUPPORTED, "%s: prepend_scheme '%s' is not supported", path, s);
    return ST_OK;
}

static bool get_bool(json_t *j, const char *key, bool fallback) {
    json_t *v = json_object_get(j, key);
    return json_is_boolean(v) ? json_is_true(v) : fallback;
}

Status pretokenizer_from_json(PreTokenizer *p, json_t *j, const char *path) {
    memset(p, 0, sizeof *p);
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type) return status_fail(ST_FORMAT, "%s: pre_tokenizer without \"type\"", path);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "pretokenizers");
        if (!json_is_array(list)) return status_fail(ST_FORMAT, "%s: Sequence pre_tokenizer without \"pretokenizers\"", path);
        p->type = PRE_SEQUENCE;
        p->children = calloc(json_array_size(list) + 1, sizeof *p->children);
        if (!p->children) return status_fail(ST_OOM, "out of memory");
        for (size_t i = 0; i < json_array_size(list); i++) {
            p->n_children++;
            TRY(pretokenizer_from_json(&p->children[i], json_array_get(list, i), path));
        }
    } else if (strcmp(type, "Split") == 0) {
        p->type = PRE_SPLIT;
        json_t *pat = json_object_get(j, "pattern");
        const char *regex = json_string_value(json_object_get(pat, "Regex"));
        const char *str = json_string_value(json_object_get(pat, "String"));
        if (regex) TRY(compile_regex(&p->regex, regex, strlen(regex), path));
        else if (str) TRY(compile_literal(&p->regex, str, path));
        else return status_fail(ST_FORMAT, "%s: Split pre_tokenizer without a pattern", path);
        TRY(parse_behavior(json_string_value(json_object_get(j, "behavior")), &p->behavior, path));
        p->invert = get_bool(j, "invert", false);
    } else if (strcmp(type, "ByteLevel") == 0) {
        p->type = PRE_BYTELEVEL;
        p->add_prefix_space = get_bool(j, "add_prefix_space", true);
        if (get_bool(j, "use_regex", true)) TRY(compile_regex(&p->regex, GPT2_PATTERN, strlen(GPT2_PATTERN), path));
    } else if (strcmp(type, "Metaspace") == 0) {
        p->type = PRE_METASPACE;
        const char *r = json_string_value(json_object_get(j, "replacement"));
        snprintf(p->replacement, sizeof p->replacement, "%s", r ? r : "\xe2\x96\x81");
        TRY(parse_prepend_scheme(j, &p->prepend_scheme, path));
        p->split = get_bool(j, "split", true);
    } else if (strcmp(type, "Digits") == 0) {
        p->type = PRE_DIGITS;
        p->individual_digits = get_bool(j, "individual_digits", false);
    } else if (strcmp(type, "BertPreTokenizer") == 0) {
        p->type = PRE_BERT;
    } else if (strcmp(type, "Whitespace") == 0) {
        p->type = PRE_WHITESPACE;
    } else if (strcmp(type, "WhitespaceSplit") == 0) {
        p->type = PRE_WHITESPACE_SPLIT;
    } else if (strcmp(type, "Punctuation") == 0) {
        p->type = PRE_PUNCTUATION;
        const char *b = json_string_value(json_object_get(j, "behavior"));
        p->behavior = SPLIT_ISOLATED;
        if (b) TRY(parse_behavior(b, &p->behavior, path));
    } else {
        return status_fail(ST_UNSUPPORTED, "%s: pre_tokenizer type '%s' is not supported", path, type);
    }
    return ST_OK;
}

void pretokenizer_free(PreTokenizer *p) {
    for (int i = 0; i < p->n_children; i++) pretokenizer_free(&p->children[i]);
    free(p->children);
    if (p->regex) pcre2_code_free(p->regex);
    memset(p, 0, sizeof *p);
}

// ---- splitting by regex matches ---------------------------------------------

typedef struct {
    size_t start, end;
    bool match;
} Segment;

// Cuts p into alternating match / non-match segments covering it.
static Status regex_segments(const pcre2_code *re, const Piece *p, Segment **out, size_t *n_out) {
    size_t cap = 16, n = 0, at = 0;
    Segment *seg = malloc(cap * sizeof *seg);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!seg || !md) {
        free(seg);
        pcre2_match_data_free(md);
        return status_fail(ST_OOM, "out of memory");
    }
    Status st = ST_OK;
    while (at <= p->len) {
        int rc = pcre2_match(re, (PCRE2_SPTR)p->text, p->len, at, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            st = status_fail(ST_FORMAT, "pre-tokenizer regex failed (PCRE2 error %d)", rc);
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (n + 2 > cap) {
            cap *= 2;
            Segment *s2 = realloc(seg, cap * sizeof *seg);
            if (!s2) { st = status_fail(ST_OOM, "out of memory"); break; }
            seg = s2;
        }
        if (ms > at) seg[n++] = (Segment){at, ms, false};
        if (me > ms) seg[n++] = (Segment){ms, me, true};
        if (me == ms) { // empty match: step over one character
            int cl = ms < p->len ? utf8_len((const unsigned char *)p->text + ms, p->len - ms) : 1;
            if (ms >= p->len) break;
            if (n > 0 && !seg[n - 1].match && seg[n - 1].end == ms) seg[n - 1].end += (size_t)(cl ? cl : 1);
            else seg[n++] = (Segment){ms, ms + (size_t)(cl ? cl : 1), false};
            at = ms + (size_t)(cl ? cl : 1);
        } else {
            at = me;
        }
    }
    if (st == ST_OK && at < p->len) {
        if (n + 1 > cap) {
            Segment *s2 = realloc(seg, (cap + 1) * sizeof *seg);
            if (!s2) st = status_fail(ST_OOM, "out of memory");
            else seg = s2;
        }
        if (st == ST_OK) {
            if (n > 0 && !seg[n - 1].match && seg[n - 1].end == at) seg[n - 1].end = p->len;
            else seg[n++] = (Segment){at, p->len, false};
        }
    }
    pcre2_match_data_free(md);
    if (st != ST_OK) {
        free(seg);
        return st;
    }
    *out = seg;
    *n_out = n;
    return ST_OK;
}

// Applies a split behavior to segments: pushes the resulting pieces of p to out.
static Status split_by_segments(const Piece *p, Segment *seg, size_t n, SplitBehavior b, PieceList *out) {
    // Build the list of [start, end) ranges to keep, then slice.
    size_t *starts = malloc((n + 1) * sizeof *starts), *ends = malloc((n + 1) * sizeof *ends), k = 0;
    if (!starts || !ends) {
        free(starts);
        free(ends);
        return status_fail(ST_OOM, "out of memory");
    }
    bool pending_next = false; // MergedWithNext: a delimiter waiting for the next segment
    size_t pending_start = 0;
    for (size_t i = 0; i < n; i++) {
        Segment s = seg[i];
        switch (b) {
        case SPLIT_REMOVED:
            if (!s.match) { starts[k] = s.start; ends[k++] = s.end; }
            break;
        case SPLIT_ISOLATED:
            starts[k] = s.start; ends[k++] = s.end;
            break;
        case SPLIT_MERGED_PREVIOUS:
            if (s.match && k > 0 && ends[k - 1] == s.start) ends[k - 1] = s.end;
            else { starts[k] = s.start; ends[k++] = s.end; }
            break;
        case SPLIT_MERGED_NEXT:
            if (s.match) {
                if (pending_next) { starts[k] = pending_start; ends[k++] = s.start; }
                pending_next = true;
                pending_start = s.start;
            } else if (pending_next) {
                starts[k] = pending_start; ends[k++] = s.end;
                pending_next = false;
            } else {
                starts[k] = s.start; ends[k++] = s.end;
            }
            break;
        case SPLIT_CONTIGUOUS:
            if (s.match && k > 0 && i > 0 && seg[i - 1].match && ends[k - 1] == s.start) ends[k - 1] = s.end;
            else { starts[k] = s.start; ends[k++] = s.end; }
            break;
        }
    }
    if (pending_next) { starts[k] = pending_start; ends[k++] = p->len; }
    Status st = ST_OK;
    for (size_t i = 0; i < k && st == ST_OK; i++) {
        if (ends[i] <= starts[i]) continue;
        Piece q;
        st = piece_slice(&q, p, starts[i], ends[i]);
        if (st == ST_OK) st = pieces_push(out, q);
    }
    free(starts);
    free(ends);
    return st;
}

static Status split_piece_regex(const pcre2_code *re, const Piece *p, SplitBehavior b, bool invert, PieceList *out) {
    Segment *seg = NULL;
    size_t n = 0;
    TRY(regex_segments(re, p, &seg, &n));
    if (invert)
        for (size_t i = 0; i < n; i++) seg[i].match = !seg[i].match;
    Status st = split_by_segments(p, seg, n, b, out);
    free(seg);
    return st;
}

// ---- per-piece rewrites ------------------------------------------------------

uint32_t bytelevel_char(unsigned char b) {
    if (b <= 32) return 256u + b;                 // ranks 0..32
    if (b >= 127 && b <= 160) return 256u + 33u + (uint32_t)(b - 127); // ranks 33..66
    if (b == 173) return 256u + 67u;             // rank 67
    return b;
}

int bytelevel_byte(uint32_t cp) {
    if (cp < 256) return bytelevel_char((unsigned char)cp) == cp ? (int)cp : -1;
    uint32_t k = cp - 256;
    if (k <= 32) return (int)k;
    if (k <= 66) return (int)(127 + k - 33);
    return k == 67 ? 173 : -1;
}

static void byte_to_utf8(unsigned char byte, char out[3], int *n) {
    uint32_t cp = bytelevel_char(byte);
    if (cp < 0x80) {
        out[0] = (char)cp;
        *n = 1;
    } else {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        *n = 2;
    }
}

Status bytelevel_map_piece(Piece *p) {
    PieceBuilder b = {0};
    for (size_t i = 0; i < p->len; i++) {
        char u[3];
        int n;
        byte_to_utf8((unsigned char)p->text[i], u, &n);
        Status st = pb_append(&b, u, (size_t)n, p->src[i]);
        if (st != ST_OK) {
            pb_free(&b);
            return st;
        }
    }
    pb_finish(&b, p);
    return ST_OK;
}

// Prepends `s` to p; the new bytes take the span of p's first character, as
// HF's NormalizedString::prepend aligns them.
static Status piece_prepend(Piece *p, const char *s) {
    PieceBuilder b = {0};
    Span at = p->len ? p->src[0] : (Span){0, 0};
    Status st = pb_append(&b, s, strlen(s), at);
    if (st == ST_OK && p->len) {
        // keep the rest with its spans
        for (size_t i = 0; i < p->len && st == ST_OK; i++) st = pb_append(&b, p->text + i, 1, p->src[i]);
    }
    if (st != ST_OK) {
        pb_free(&b);
        return st;
    }
    pb_finish(&b, p);
    return ST_OK;
}

static Status metaspace_piece(const PreTokenizer *pre, Piece *p, bool is_first) {
    PieceBuilder b = {0};
    Status st = ST_OK;
    for (size_t i = 0; i < p->len && st == ST_OK; i++) {
        if (p->text[i] == ' ') st = pb_append(&b, pre->replacement, strlen(pre->replacement), p->src[i]);
        else st = pb_append(&b, p->text + i, 1, p->src[i]);
    }
    if (st != ST_OK) {
        pb_free(&b);
        return st;
    }
    pb_finish(&b, p);
    size_t rl = strlen(pre->replacement);
    bool starts = p->len >= rl && memcmp(p->text, pre->replacement, rl) == 0;
    if (p->len && !starts && (pre->prepend_scheme == PREPEND_ALWAYS || (pre->prepend_scheme == PREPEND_FIRST && is_first)))
        TRY(piece_prepend(p, pre->replacement));
    return ST_OK;
}

// Rewrites each un-matched piece of l with fn, or splits it with the regex.
static Status for_each_piece(const PreTokenizer *pre, PieceList *l) {
    PieceList out = {0};
    Status st = ST_OK;
    for (size_t i = 0; i < l->n && st == ST_OK; i++) {
        Piece *p = &l->items[i];
        if (p->token >= 0) {
            st = pieces_push(&out, *p);
            memset(p, 0, sizeof *p);
            continue;
        }
        bool first = i == 0;
        switch (pre->type) {
        case PRE_SPLIT:
            st = split_piece_regex(pre->regex, p, pre->behavior, pre->invert, &out);
            break;
        case PRE_BYTELEVEL: {
            if (pre->add_prefix_space && p->len && p->text[0] != ' ') st = piece_prepend(p, " ");
            if (st != ST_OK) break;
            size_t before = out.n;
            if (pre->regex) st = split_piece_regex(pre->regex, p, SPLIT_ISOLATED, false, &out);
            else if (p->len) {
                Piece q;
                st = piece_slice(&q, p, 0, p->len);
                if (st == ST_OK) st = pieces_push(&out, q);
            }
            for (size_t k = before; k < out.n && st == ST_OK; k++) st = bytelevel_map_piece(&out.items[k]);
            break;
        }
        case PRE_METASPACE: {
            st = metaspace_piece(pre, p, first);
            if (st != ST_OK) break;
            if (pre->split && p->len) {
                pcre2_code *re;
                st = compile_literal(&re, pre->replacement, "metaspace");
                if (st == ST_OK) {
                    st = split_piece_regex(re, p, SPLIT_MERGED_NEXT, false, &out);
                    pcre2_code_free(re);
                }
            } else if (p->len) {
                Piece q;
                st = piece_slice(&q, p, 0, p->len);
                if (st == ST_OK) st = pieces_push(&out, q);
            }
            break;
        }
        default:
            break;
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

Status pretokenizer_apply(const PreTokenizer *pre, PieceList *l, bool first_piece_is_start) {
    (void)first_piece_is_start;
    switch (pre->type) {
    case PRE_SEQUENCE:
        for (int i = 0; i < pre->n_children; i++) TRY(pretokenizer_apply(&pre->children[i], l, first_piece_is_start));
        return ST_OK;
    case PRE_SPLIT:
    case PRE_BYTELEVEL:
    case PRE_METASPACE:
        return for_each_piece(pre, l);
    case PRE_DIGITS: return pretok_digits(l, pre->individual_digits);
    case PRE_BERT: return pretok_bert(l);
    case PRE_WHITESPACE: return pretok_whitespace(l);
    case PRE_WHITESPACE_SPLIT: return pretok_whitespace_split(l);
    case PRE_PUNCTUATION: return pretok_punctuation(l, pre->behavior);
    }
    return ST_OK;
}
