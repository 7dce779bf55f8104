// csv.c: the CSV/TSV record reader (rules in csv.h). The states follow
// pandas' C tokenizer (pandas/_libs/src/parser/tokenizer.c): START_RECORD with
// its whitespace-line skip, START_FIELD, IN_FIELD, IN_QUOTED_FIELD and
// QUOTE_IN_QUOTED_FIELD, the last two flagging what csv.h refuses.
#include "csv.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Status csv_init(CsvReader *r, const char *text, size_t len, char sep, const char *path) {
    memset(r, 0, sizeof *r);
    r->path = path ? path : "<text>";
    if (sep == '"' || sep == '\r' || sep == '\n' || sep == '\0')
        return status_fail(ST_USAGE, "%s: separator 0x%02x cannot separate CSV fields", r->path, (unsigned char)sep);
    if (!text) len = 0;
    r->p = text;
    r->end = text + len;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) r->p += 3; // UTF-8 byte order mark
    r->line = 1;
    r->sep = sep;
    r->index = -1;
    return ST_OK;
}

void csv_free(CsvReader *r) {
    free(r->buf);
    free(r->off);
    memset(r, 0, sizeof *r);
}

Status csv_record_fail(const CsvReader *r, const char *fmt, ...) {
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return status_fail(ST_FORMAT, "%s:%ld: %s", r->path, r->rec_line, what);
}

static Status oom(const CsvReader *r) {
    return status_fail(ST_OOM, "%s: out of memory reading the record at line %ld", r->path, r->rec_line);
}

static Status buf_add(CsvReader *r, const char *s, size_t n) {
    if (n == 0) return ST_OK; // memcpy may not see the NULL buf of a fresh reader
    if (r->buf_cap - r->buf_len < n) {
        size_t cap = r->buf_cap ? r->buf_cap : 4096;
        while (cap - r->buf_len < n) {
            if (cap > SIZE_MAX / 2) return oom(r);
            cap *= 2;
        }
        char *b = realloc(r->buf, cap);
        if (!b) return oom(r);
        r->buf = b;
        r->buf_cap = cap;
    }
    memcpy(r->buf + r->buf_len, s, n);
    r->buf_len += n;
    return ST_OK;
}

// Records that field n_fields starts at buf_len.
static Status field_start(CsvReader *r) {
    if (r->n_fields + 1 >= r->off_cap) {
        if (r->off_cap > (1 << 29)) return oom(r);
        int cap = r->off_cap ? r->off_cap * 2 : 64;
        size_t *o = realloc(r->off, (size_t)cap * sizeof *o);
        if (!o) return oom(r);
        r->off = o;
        r->off_cap = cap;
    }
    r->off[r->n_fields++] = r->buf_len;
    return ST_OK;
}

// Moves p past the line end at p ("\n", "\r\n" or "\r"), counting the line.
static void eat_line_end(CsvReader *r) {
    if (*r->p == '\r' && r->p + 1 < r->end && r->p[1] == '\n') r->p++;
    r->p++;
    r->line++;
}

// Skips blank lines (empty, or spaces and tabs other than the separator);
// false when only blank lines were left.
static bool skip_blank_lines(CsvReader *r) {
    while (r->p < r->end) {
        const char *q = r->p;
        while (q < r->end && (*q == ' ' || *q == '\t') && *q != r->sep) q++;
        if (q == r->end) { // a last line of whitespace
            r->p = q;
            return false;
        }
        if (*q != '\n' && *q != '\r') return true; // the record starts at p, its leading blanks included
        r->p = q;
        eat_line_end(r);
    }
    return false;
}

// A quoted field's body after its opening quote, up to and past the closing
// one; false when the text ends first.
static Status quoted_body(CsvReader *r, bool *closed) {
    for (;;) {
        const char *s = r->p;
        while (r->p < r->end && *r->p != '"' && *r->p != '\n' && *r->p != '\r') r->p++;
        TRY(buf_add(r, s, (size_t)(r->p - s)));
        if (r->p >= r->end) {
            *closed = false;
            return ST_OK;
        }
        if (*r->p == '"') {
            r->p++;
            if (r->p < r->end && *r->p == '"') { // "" is one quote
                r->p++;
                TRY(buf_add(r, "\"", 1));
                continue;
            }
            *closed = true;
            return ST_OK;
        }
        // a line end inside the quotes: kept verbatim, counted once
        s = r->p;
        eat_line_end(r);
        TRY(buf_add(r, s, (size_t)(r->p - s)));
    }
}

Status csv_next(CsvReader *r, bool *more) {
    r->n_fields = 0;
    r->buf_len = 0;
    r->problem = NULL;
    r->raw = NULL;
    r->raw_len = 0;
    if (!skip_blank_lines(r)) {
        *more = false;
        return ST_OK;
    }
    *more = true;
    r->index++;
    r->rec_line = r->line;
    r->raw = r->p;
    for (;;) { // one field per iteration
        TRY(field_start(r));
        if (r->p < r->end && *r->p == '"') {
            r->p++;
            bool closed;
            TRY(quoted_body(r, &closed));
            if (!closed && !r->problem) r->problem = "unterminated quoted field";
            else if (r->p < r->end && *r->p != r->sep && *r->p != '\n' && *r->p != '\r' && !r->problem)
                r->problem = "text after a closing quote";
        }
        // unquoted bytes, or what follows a closing quote (pandas keeps it, quotes included)
        const char *s = r->p;
        while (r->p < r->end && *r->p != r->sep && *r->p != '\n' && *r->p != '\r') r->p++;
        TRY(buf_add(r, s, (size_t)(r->p - s)));
        TRY(buf_add(r, "", 1));
        if (r->p < r->end && *r->p == r->sep) {
            r->p++;
            continue;
        }
        break;
    }
    r->off[r->n_fields] = r->buf_len;
    r->raw_len = (size_t)(r->p - r->raw);
    if (r->p < r->end) eat_line_end(r);
    return ST_OK;
}
