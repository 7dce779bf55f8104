#include "strmap.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_bytes(const char *s, size_t n) { // FNV-1a
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static size_t capacity_for(size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2 + 1) cap <<= 1;
    return cap;
}

Status strmap_init(StrMap *m, size_t expected) {
    m->cap = capacity_for(expected);
    m->n = 0;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->lens = calloc(m->cap, sizeof *m->lens);
    m->values = calloc(m->cap, sizeof *m->values);
    if (!m->keys || !m->lens || !m->values) return status_fail(ST_OOM, "out of memory for a vocabulary");
    return ST_OK;
}

static size_t find_slot(const StrMap *m, const char *key, size_t len) {
    size_t i = hash_bytes(key, len) & (m->cap - 1);
    while (m->keys[i] && !(m->lens[i] == len && memcmp(m->keys[i], key, len) == 0)) i = (i + 1) & (m->cap - 1);
    return i;
}

static Status strmap_grow(StrMap *m) {
    StrMap bigger;
    TRY(strmap_init(&bigger, m->cap));
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = find_slot(&bigger, m->keys[i], m->lens[i]);
        bigger.keys[j] = m->keys[i];
        bigger.lens[j] = m->lens[i];
        bigger.values[j] = m->values[i];
        bigger.n++;
    }
    free(m->keys);
    free(m->lens);
    free(m->values);
    *m = bigger;
    return ST_OK;
}

Status strmap_put(StrMap *m, const char *key, size_t len, int32_t value) {
    if ((m->n + 1) * 2 > m->cap) TRY(strmap_grow(m));
    size_t i = find_slot(m, key, len);
    if (!m->keys[i]) {
        m->keys[i] = malloc(len + 1);
        if (!m->keys[i]) return status_fail(ST_OOM, "out of memory for a vocabulary");
        memcpy(m->keys[i], key, len);
        m->keys[i][len] = '\0';
        m->lens[i] = (uint32_t)len;
        m->n++;
    }
    m->values[i] = value;
    return ST_OK;
}

int32_t strmap_get(const StrMap *m, const char *key, size_t len) {
    if (!m->cap) return -1;
    size_t i = find_slot(m, key, len);
    return m->keys[i] ? m->values[i] : -1;
}

void strmap_free(StrMap *m) {
    for (size_t i = 0; m->keys && i < m->cap; i++) free(m->keys[i]);
    free(m->keys);
    free(m->lens);
    free(m->values);
    memset(m, 0, sizeof *m);
}

static uint64_t merge_key(int32_t left, int32_t right) { return (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1; }

static size_t merge_slot(const MergeMap *m, uint64_t key) {
    uint64_t h = key; // splitmix64's finalizer: every key bit reaches the low bits
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
    h ^= h >> 31;
    size_t i = (size_t)h & (m->cap - 1);
    while (m->keys[i] && m->keys[i] != key) i = (i + 1) & (m->cap - 1);
    return i;
}

Status mergemap_init(MergeMap *m, size_t expected) {
    m->cap = capacity_for(expected);
    m->n = 0;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->rank = calloc(m->cap, sizeof *m->rank);
    m->merged = calloc(m->cap, sizeof *m->merged);
    if (!m->keys || !m->rank || !m->merged) return status_fail(ST_OOM, "out of memory for BPE merges");
    return ST_OK;
}

Status mergemap_put(MergeMap *m, int32_t left, int32_t right, int32_t rank, int32_t merged) {
    if ((m->n + 1) * 2 > m->cap) {
        MergeMap bigger;
        TRY(mergemap_init(&bigger, m->cap));
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->keys[i]) continue;
            size_t j = merge_slot(&bigger, m->keys[i]);
            bigger.keys[j] = m->keys[i];
            bigger.rank[j] = m->rank[i];
            bigger.merged[j] = m->merged[i];
            bigger.n++;
        }
        mergemap_free(m);
        *m = bigger;
    }
    uint64_t key = merge_key(left, right);
    size_t i = merge_slot(m, key);
    if (m->keys[i]) return ST_OK; // HF keeps the first (highest-priority) occurrence
    m->keys[i] = key;
    m->rank[i] = rank;
    m->merged[i] = merged;
    m->n++;
    return ST_OK;
}

int mergemap_get(const MergeMap *m, int32_t left, int32_t right, int32_t *rank, int32_t *merged) {
    if (!m->cap) return 0;
    size_t i = merge_slot(m, merge_key(left, right));
    if (!m->keys[i]) return 0;
    *rank = m->rank[i];
    *merged = m->merged[i];
    return 1;
}

void mergemap_free(MergeMap *m) {
    free(m->keys);
    free(m->rank);
    free(m->merged);
    memset(m, 0, sizeof *m);
}
