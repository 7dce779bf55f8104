#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

bool strbuf_add(StrBuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) return false;
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return true;
}

bool strbuf_puts(StrBuf *b, const char *s) { return strbuf_add(b, s, strlen(s)); }

char *strbuf_take(StrBuf *b) {
    char *s = b->s ? b->s : strdup("");
    memset(b, 0, sizeof *b);
    return s;
}
