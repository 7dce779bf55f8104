// csv.h: one reader of CSV/TSV records over a text in memory (any single-byte
// separator), for the artifact's Octopus CSV and LlamaTouch TSV (eval/dataset.c)
// and its dev files (eval/prompts.c).
//
// The reference is pandas.read_csv(path, header=None, sep=SEP) with the C
// parser's defaults (pandas 3.1 checked on every case below):
//  * A leading UTF-8 BOM (EF BB BF) is dropped; one later in the text is data.
//  * Records end at "\n", "\r\n" or a lone "\r"; the last one needs no line end.
//  * Blank lines are skipped (skip_blank_lines=True): empty lines, and lines of
//    only spaces and tabs that are not the separator ("  \n" is skipped, but in
//    a TSV "\t\n" is a record of two empty fields). A line that starts with
//    spaces and holds anything else keeps them ("  x,y" gives "  x").
//  * A field is quoted only when '"' is its very first byte: inside the quotes
//    "" is one '"', and the separator and any line end ("\r\n" and a lone "\r"
//    included) are kept verbatim. Elsewhere '"' is an ordinary byte: ab"c"d
//    stays ab"c"d, and  "a,b" with a leading space is two fields  "a  and b".
//  * Empty fields are kept ("a,,b" has 3 fields, "a,b," 3, "," 2).
//  * Bytes are not interpreted otherwise: no UTF-8 check, NUL bytes kept (a
//    field's length is exact; callers that need text check the raw record).
//  * The reader returns every record's own field count; the table rules (pandas
//    raises on a record longer than the first, pads a shorter one with NaN,
//    reads "", "NA", "null"... as NaN) are the callers'.
//
// Malformed records. pandas would accept or die on these; the reader instead
// reports each one as a problem of its record, after reading the record to
// its end where pandas would end it, so that the caller may skip it and go on:
//  * "unterminated quoted field": a quote never closed. pandas raises "EOF
//    inside string" for the whole file; the record runs to the end of the text.
//  * "text after a closing quote": bytes other than a separator or a line end
//    after the closing quote ("\"ab\" tail,c"). pandas appends them to the
//    field ("ab tail", and later quotes are literal); the reader gives the same
//    field but flags the record, since such a line is almost always a quote
//    that was meant to be doubled. (Deliberately refused.)
// Line numbers count "\n", "\r\n" and a lone "\r" as one line end each, inside
// quoted fields too; a record's line is the 1-based line where it starts.
//
// Not followed: pandas' C tokenizer drops a separator that starts the line
// after a blank line ended by a lone "\r" ("a,b\n\r,c" reads the second record
// as ["c"]); this reader reads ["", "c"].
//
// Use:
//     CsvReader r;
//     TRY(csv_init(&r, text, len, ',', path));
//     bool more;
//     while ((st = csv_next(&r, &more)) == ST_OK && more) {
//         if (r.problem) { st = csv_record_fail(&r, "%s", r.problem); ... }
//         for (int i = 0; i < r.n_fields; i++) use(csv_field(&r, i), csv_field_len(&r, i));
//     }
//     csv_free(&r);
#ifndef ELASTILM_CSV_H
#define ELASTILM_CSV_H

#include <stdbool.h>
#include <stddef.h>

#include "runtime/status.h"

typedef struct {
    // The text (not owned; it must outlive the reader).
    const char *p, *end;  // next unread byte, end of the text
    long line;            // 1-based line at p
    char sep;
    const char *path;     // names the text in messages (not owned)

    // The current record, valid until the next csv_next.
    int n_fields;
    long rec_line;        // 1-based line where the record starts
    long index;           // 0-based number of the record (blank lines not counted): pandas' row
    const char *raw;      // the record's bytes in the text, raw_len of them (its line end excluded)
    size_t raw_len;
    const char *problem;  // NULL, or the first malformation found (a static string)

    // Scratch, reused from record to record.
    char *buf;            // [buf_len] the fields unquoted, each followed by a NUL
    size_t buf_len, buf_cap;
    size_t *off;          // [n_fields + 1] where each field starts in buf; off[n_fields] = buf_len
    int off_cap;
} CsvReader;

// Starts reading text[0 .. len) with separator sep (not '"', '\r', '\n' or NUL:
// ST_USAGE). Allocates nothing until the first record.
Status csv_init(CsvReader *r, const char *text, size_t len, char sep, const char *path);

// Reads the next record into r: *more = false at the end of the text (r's
// record fields are then cleared). Fails only when out of memory (ST_OOM);
// a malformed record comes back with r->problem set.
Status csv_next(CsvReader *r, bool *more);

// Field i (0 <= i < n_fields) of the current record: NUL-terminated, of
// csv_field_len bytes (it may hold NUL bytes itself).
static inline const char *csv_field(const CsvReader *r, int i) { return r->buf + r->off[i]; }
static inline size_t csv_field_len(const CsvReader *r, int i) { return r->off[i + 1] - r->off[i] - 1; }

// ST_FORMAT "<path>:<rec_line>: <what>" for the current record.
Status csv_record_fail(const CsvReader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void csv_free(CsvReader *r);

#endif
