// strmap.h: open-addressing hash maps for vocabularies and BPE merges.
#ifndef ELASTILM_STRMAP_H
#define ELASTILM_STRMAP_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/status.h"

typedef struct {
    char **keys;      // [cap] owned copies; NULL = empty slot
    uint32_t *lens;   // [cap]
    int32_t *values;  // [cap]
    size_t cap, n;
} StrMap;

Status strmap_init(StrMap *m, size_t expected);
// Inserts or overwrites key -> value.
Status strmap_put(StrMap *m, const char *key, size_t len, int32_t value);
// The value, or -1 when absent.
int32_t strmap_get(const StrMap *m, const char *key, size_t len);
void strmap_free(StrMap *m);

typedef struct {
    uint64_t *keys;   // [cap] (left << 32 | right) + 1; 0 = empty
    int32_t *rank;    // [cap]
    int32_t *merged;  // [cap] id of the merged token
    size_t cap, n;
} MergeMap;

Status mergemap_init(MergeMap *m, size_t expected);
Status mergemap_put(MergeMap *m, int32_t left, int32_t right, int32_t rank, int32_t merged);
// Returns 1 and fills rank/merged when (left, right) merges, else 0.
int mergemap_get(const MergeMap *m, int32_t left, int32_t right, int32_t *rank, int32_t *merged);
void mergemap_free(MergeMap *m);

#endif
