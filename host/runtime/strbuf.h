// strbuf.h: a growable, always NUL-terminated byte string.
#ifndef ELASTILM_STRBUF_H
#define ELASTILM_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *s;          // NULL until the first append; then NUL-terminated
    size_t len, cap;  // bytes held (without the NUL), bytes allocated
} StrBuf;

// Appends n bytes; false when out of memory (b is then unchanged).
bool strbuf_add(StrBuf *b, const char *s, size_t n);
bool strbuf_puts(StrBuf *b, const char *s);
// The string (malloc'd; "" for an empty buffer, NULL when out of memory); b is reset.
char *strbuf_take(StrBuf *b);

#endif
