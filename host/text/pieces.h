// pieces.h: text under tokenization, with its way back to the input.
//
// Normalizers rewrite a Piece (the text changes, every output byte keeps the
// span of input bytes it came from); pre-tokenizers cut one Piece into
// several. Token offsets are then read off `src`, so every token of every
// tokenizer can name the input characters it covers.
#ifndef ELASTILM_PIECES_H
#define ELASTILM_PIECES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/status.h"

typedef struct {
    int32_t start, end; // input byte range [start, end) this byte came from
} Span;

typedef struct {
    char *text;      // UTF-8, NUL-terminated, owned
    size_t len;      // bytes in text
    Span *src;       // [len] where each byte of text came from, owned
    int32_t token;   // >= 0: an added/special token already matched (text is its content); -1 otherwise
} Piece;

typedef struct {
    Piece *items; // [n], owned
    size_t n, cap;
} PieceList;

// A piece covering input bytes [base, base+len) one to one.
Status piece_from_input(Piece *p, const char *text, size_t len, int32_t base);
// A copy of bytes [from, to) of p (src spans copied).
Status piece_slice(Piece *out, const Piece *p, size_t from, size_t to);
void piece_free(Piece *p);

// Builds a new piece byte by byte: append bytes with the span they came from.
typedef struct {
    char *text;
    Span *src;
    size_t len, cap;
} PieceBuilder;
Status pb_append(PieceBuilder *b, const char *bytes, size_t n, Span from);
// Moves the built text into p (replacing p's text/src; token kept).
void pb_finish(PieceBuilder *b, Piece *p);
void pb_free(PieceBuilder *b);

Status pieces_push(PieceList *l, Piece p); // takes ownership of p
void pieces_free(PieceList *l);

// The input byte range a run of bytes [from, to) of p covers (start of the first, end of the last).
Span piece_span(const Piece *p, size_t from, size_t to);

// UTF-8: length of the sequence starting at s (1..4), or 0 when invalid / truncated.
int utf8_len(const unsigned char *s, size_t avail);
// Checks that text is valid UTF-8; the error names the byte offset.
Status utf8_validate(const char *text, size_t len);

#endif
