// Decoders: HF's decode chain over the list of token strings.
#include <stdlib.h>
#include <string.h>

#include "runtime/strbuf.h"
#include "tokenizer_internal.h"

static char *dup_or_null(json_t *v) { return json_is_string(v) ? strdup(json_string_value(v)) : NULL; }

Status decoder_from_json(Decoder *d, json_t *j, const char *path) {
    memset(d, 0, sizeof *d);
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!type) return status_fail(ST_FORMAT, "%s: decoder without \"type\"", path);
    if (strcmp(type, "Sequence") == 0) {
        json_t *list = json_object_get(j, "decoders");
        if (!json_is_array(list)) return status_fail(ST_FORMAT, "%s: Sequence decoder without \"decoders\"", path);
        d->type = DEC_SEQUENCE;
        d->children = calloc(json_array_size(list) + 1, sizeof *d->children);
        if (!d->children) return status_fail(ST_OOM, "out of memory");
        for (size_t i = 0; i < json_array_size(list); i++) {
            d->n_children++;
            TRY(decoder_from_json(&d->children[i], json_array_get(list, i), path));
        }
    } else if (strcmp(type, "ByteLevel") == 0) {
        d->type = DEC_BYTELEVEL;
    } else if (strcmp(type, "Metaspace") == 0) {
        d->type = DEC_METASPACE;
        d->a = dup_or_null(json_object_get(j, "replacement"));
        if (!d->a) d->a = strdup("\xe2\x96\x81");
        const char *s = json_string_value(json_object_get(j, "prepend_scheme"));
        json_t *aps = json_object_get(j, "add_prefix_space");
        d->prepend_scheme = s ? (strcmp(s, "never") == 0 ? PREPEND_NEVER : strcmp(s, "first") == 0 ? PREPEND_FIRST : PREPEND_ALWAYS)
                              : (json_is_false(aps) ? PREPEND_NEVER : PREPEND_ALWAYS);
    } else if (strcmp(type, "ByteFallback") == 0) {
        d->type = DEC_BYTE_FALLBACK;
    } else if (strcmp(type, "Fuse") == 0) {
        d->type = DEC_FUSE;
    } else if (strcmp(type, "Strip") == 0) {
        d->type = DEC_STRIP;
        d->a = dup_or_null(json_object_get(j, "content"));
        d->strip_start = (int)json_integer_value(json_object_get(j, "start"));
        d->strip_stop = (int)json_integer_value(json_object_get(j, "stop"));
        if (!d->a) return status_fail(ST_FORMAT, "%s: Strip decoder without \"content\"", path);
    } else if (strcmp(type, "Replace") == 0) {
        d->type = DEC_REPLACE;
        d->a = dup_or_null(json_object_get(json_object_get(j, "pattern"), "String"));
        d->b = dup_or_null(json_object_get(j, "content"));
        if (!d->a || !d->b) return status_fail(ST_UNSUPPORTED, "%s: Replace decoder needs a String pattern and content", path);
    } else if (strcmp(type, "WordPiece") == 0) {
        d->type = DEC_WORDPIECE;
        d->a = dup_or_null(json_object_get(j, "prefix"));
        if (!d->a) d->a = strdup("##");
        json_t *c = json_object_get(j, "cleanup");
        d->cleanup = !json_is_false(c);
    } else {
        return status_fail(ST_UNSUPPORTED, "%s: decoder type '%s' is not supported", path, type);
    }
    return ST_OK;
}

void decoder_free(Decoder *d) {
    for (int i = 0; i < d->n_children; i++) decoder_free(&d->children[i]);
    free(d->children);
    free(d->a);
    free(d->b);
    memset(d, 0, sizeof *d);
}

// ---- a growable string ----------------------------------------------------------

typedef StrBuf Buf;

static Status buf_add(Buf *b, const char *s, size_t n) {
    return strbuf_add(b, s, n) ? ST_OK : status_fail(ST_OOM, "out of memory in decode");
}

// Replaces every occurrence of `from` by `to` in t.
static Status replace_all(DStr *t, const char *from, const char *to) {
    Buf b = {0};
    size_t fl = strlen(from), tl = strlen(to);
    for (size_t i = 0; i < t->len;) {
        if (fl && i + fl <= t->len && memcmp(t->s + i, from, fl) == 0) {
            TRY(buf_add(&b, to, tl));
            i += fl;
        } else {
            TRY(buf_add(&b, t->s + i, 1));
            i++;
        }
    }
    free(t->s);
    t->len = b.len;
    t->s = strbuf_take(&b);
    return t->s ? ST_OK : status_fail(ST_OOM, "out of memory in decode");
}

// Replaces tokens[0..n) with the single string in b.
static Status fuse_into(DStr *tokens, size_t *n, Buf *b) {
    size_t len = b->len;
    char *s = strbuf_take(b);
    if (!s) return status_fail(ST_OOM, "out of memory in decode");
    for (size_t i = 0; i < *n; i++) {
        free(tokens[i].s);
        tokens[i] = (DStr){NULL, 0};
    }
    tokens[0] = (DStr){s, len};
    *n = 1;
    return ST_OK;
}

// ---- the decoders ------------------------------------------------------------

static uint32_t decode_cp(const unsigned char *s, int n) {
    if (n == 1) return s[0];
    uint32_t cp = s[0] & (0x7f >> n);
    for (int i = 1; i < n; i++) cp = (cp << 6) | (s[i] & 0x3f);
    return cp;
}

// Appends bytes as UTF-8, invalid sequences replaced by U+FFFD the way Rust's
// String::from_utf8_lossy does (one per maximal invalid prefix).
static Status add_lossy(Buf *b, const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int cl = utf8_len(s + i, n - i);
        if (cl > 0) {
            TRY(buf_add(b, (const char *)s + i, (size_t)cl));
            i += (size_t)cl;
            continue;
        }
        TRY(buf_add(b, "\xef\xbf\xbd", 3));
        unsigned char c = s[i];
        size_t want = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1, skip = 1;
        bool lead_ok = c >= 0xc2 && c <= 0xf4;
        while (lead_ok && skip < want && i + skip < n && (s[i + skip] & 0xc0) == 0x80) {
            unsigned char d = s[i + skip];
            if (skip == 1 && ((c == 0xe0 && d < 0xa0) || (c == 0xed && d > 0x9f) || (c == 0xf0 && d < 0x90) ||
                              (c == 0xf4 && d > 0x8f)))
                break;
            skip++;
        }
        i += skip;
    }
    return ST_OK;
}

static Status decode_bytelevel(DStr *tokens, size_t *n) {
    Buf bytes = {0}, out = {0};
    Status st = ST_OK;
    for (size_t i = 0; i < *n && st == ST_OK; i++) {
        const unsigned char *s = (const unsigned char *)tokens[i].s;
        for (size_t k = 0; k < tokens[i].len && st == ST_OK;) {
            int cl = utf8_len(s + k, tokens[i].len - k);
            if (cl <= 0) cl = 1;
            int byte = bytelevel_byte(decode_cp(s + k, cl));
            if (byte >= 0) {
                char c = (char)byte;
                st = buf_add(&bytes, &c, 1);
            } else { // not a byte-level character (an added token's text): kept as is
                st = buf_add(&bytes, (const char *)s + k, (size_t)cl);
            }
            k += (size_t)cl;
        }
    }
    if (st == ST_OK) st = add_lossy(&out, (const unsigned char *)(bytes.s ? bytes.s : ""), bytes.len);
    free(bytes.s);
    if (st == ST_OK) return fuse_into(tokens, n, &out);
    free(out.s);
    return st;
}

// "<0xAB>" -> 0xAB, or -1.
static int byte_token(const DStr *t) {
    if (t->len != 6 || strncmp(t->s, "<0x", 3) != 0 || t->s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = t->s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

// Runs of byte tokens become the text they spell; HF gives one U+FFFD per
// byte token when the run is not valid UTF-8.
static Status decode_byte_fallback(DStr *tokens, size_t *n) {
    size_t w = 0;
    for (size_t i = 0; i < *n;) {
        if (byte_token(&tokens[i]) < 0) {
            tokens[w++] = tokens[i++];
            continue;
        }
        size_t j = i;
        Buf b = {0};
        for (; j < *n && byte_token(&tokens[j]) >= 0; j++) {
            char c = (char)byte_token(&tokens[j]);
            TRY(buf_add(&b, &c, 1));
        }
        if (utf8_validate(b.s, b.len) != ST_OK) {
            b.len = 0;
            for (size_t k = i; k < j; k++) TRY(buf_add(&b, "\xef\xbf\xbd", 3));
        }
        for (size_t k = i; k < j; k++) free(tokens[k].s);
        size_t len = b.len;
        tokens[w++] = (DStr){strbuf_take(&b), len};
        i = j;
    }
    for (size_t k = w; k < *n; k++) tokens[k] = (DStr){NULL, 0}; // moved or freed above
    *n = w;
    return ST_OK;
}

static Status decode_fuse(DStr *tokens, size_t *n) {
    Buf out = {0};
    for (size_t i = 0; i < *n; i++) TRY(buf_add(&out, tokens[i].s, tokens[i].len));
    return fuse_into(tokens, n, &out);
}

static void decode_strip(const Decoder *d, DStr *tokens, size_t n) {
    size_t cl = strlen(d->a);
    for (size_t i = 0; i < n; i++) {
        DStr *t = &tokens[i];
        size_t from = 0, to = t->len;
        for (int k = 0; k < d->strip_start && from + cl <= to && memcmp(t->s + from, d->a, cl) == 0; k++) from += cl;
        for (int k = 0; k < d->strip_stop && to >= from + cl && memcmp(t->s + to - cl, d->a, cl) == 0; k++) to -= cl;
        memmove(t->s, t->s + from, to - from);
        t->len = to - from;
        t->s[t->len] = '\0';
    }
}

static Status decode_metaspace(const Decoder *d, DStr *tokens, size_t n) {
    for (size_t i = 0; i < n; i++) {
        TRY(replace_all(&tokens[i], d->a, " "));
        DStr *t = &tokens[i];
        if (i == 0 && d->prepend_scheme != PREPEND_NEVER && t->len && t->s[0] == ' ') {
            memmove(t->s, t->s + 1, t->len);
            t->len--;
        }
    }
    return ST_OK;
}

static Status wordpiece_cleanup(DStr *t) {
    static const char *pairs[][2] = {{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
                                     {" n't", "n't"}, {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"},
                                     {" 've", "'ve"}, {" 're", "'re"}};
    for (size_t k = 0; k < sizeof pairs / sizeof *pairs; k++) TRY(replace_all(t, pairs[k][0], pairs[k][1]));
    return ST_OK;
}

static Status decode_wordpiece(const Decoder *d, DStr *tokens, size_t n) {
    size_t pl = strlen(d->a);
    for (size_t i = 0; i < n; i++) {
        DStr *t = &tokens[i];
        if (i > 0 && t->len >= pl && memcmp(t->s, d->a, pl) == 0) {
            memmove(t->s, t->s + pl, t->len - pl + 1);
            t->len -= pl;
        } else if (i > 0) {
            Buf b = {0};
            TRY(buf_add(&b, " ", 1));
            TRY(buf_add(&b, t->s, t->len));
            free(t->s);
            t->len = b.len;
            t->s = strbuf_take(&b);
        }
        if (d->cleanup) TRY(wordpiece_cleanup(t));
    }
    return ST_OK;
}

Status decoder_apply(const Decoder *d, DStr *tokens, size_t *n) {
    if (*n == 0) return ST_OK;
    switch (d->type) {
    case DEC_SEQUENCE:
        for (int i = 0; i < d->n_children; i++) TRY(decoder_apply(&d->children[i], tokens, n));
        return ST_OK;
    case DEC_BYTELEVEL: return decode_bytelevel(tokens, n);
    case DEC_METASPACE: return decode_metaspace(d, tokens, *n);
    case DEC_BYTE_FALLBACK: return decode_byte_fallback(tokens, n);
    case DEC_FUSE: return decode_fuse(tokens, n);
    case DEC_STRIP: decode_strip(d, tokens, *n); return ST_OK;
    case DEC_REPLACE:
        for (size_t i = 0; i < *n; i++) TRY(replace_all(&tokens[i], d->a, d->b));
        return ST_OK;
    case DEC_WORDPIECE: return decode_wordpiece(d, tokens, *n);
    }
    return ST_OK;
}
