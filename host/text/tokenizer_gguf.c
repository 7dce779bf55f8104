// A tokenizer from a GGUF file's tokenizer.ggml.* metadata. Only the "gpt2"
// (byte-level BPE) vocabulary is read; it is configured the way transformers
// converts it (tests/fixtures/tokenizers/smollm2-tokenizer.json is that
// conversion, and the parity test checks the two give identical ids).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer_internal.h"

enum { GGUF_TOKEN_CONTROL = 3, GGUF_TOKEN_USER_DEFINED = 4 };

static Status string_array(const GgufFile *g, const char *key, const GgufStr **items, uint64_t *n) {
    const GgufKV *kv = gguf_find_kv(g, key);
    if (!kv) return status_fail(ST_FORMAT, "%s: missing key '%s'", g->file.path, key);
    if (kv->value.type != GGUF_T_ARRAY || kv->value.arr.elem != GGUF_T_STRING)
        return status_fail(ST_FORMAT, "%s: key '%s' must be an array of strings", g->file.path, key);
    *items = kv->value.arr.strs;
    *n = kv->value.arr.n;
    return ST_OK;
}

static char *dup_str(GgufStr s) {
    char *p = malloc(s.len + 1);
    if (p) {
        memcpy(p, s.ptr, s.len);
        p[s.len] = '\0';
    }
    return p;
}

static Status load_vocab(Tokenizer *t, const GgufFile *g, const GgufStr *tokens, uint64_t n) {
    Model *m = &t->model;
    m->vocab_size = (int)n;
    m->id_to_token = calloc(n, sizeof *m->id_to_token);
    if (!m->id_to_token) return status_fail(ST_OOM, "out of memory");
    TRY(strmap_init(&m->vocab, n));
    for (uint64_t i = 0; i < n; i++) {
        m->id_to_token[i] = dup_str(tokens[i]);
        if (!m->id_to_token[i]) return status_fail(ST_OOM, "out of memory");
        TRY(strmap_put(&m->vocab, tokens[i].ptr, tokens[i].len, (int32_t)i));
    }
    (void)g;
    return ST_OK;
}

static Status load_merges(Tokenizer *t, const GgufFile *g) {
    const GgufStr *merges;
    uint64_t n;
    TRY(string_array(g, "tokenizer.ggml.merges", &merges, &n));
    Model *m = &t->model;
    TRY(mergemap_init(&m->merges, n));
    char buf[1024];
    for (uint64_t i = 0; i < n; i++) {
        const char *s = merges[i].ptr;
        const char *sp = merges[i].len > 1 ? memchr(s + 1, ' ', merges[i].len - 1) : NULL;
        if (!sp || merges[i].len >= sizeof buf)
            return status_fail(ST_FORMAT, "%s: tokenizer.ggml.merges[%llu] is not \"a b\"", g->file.path, (unsigned long long)i);
        size_t al = (size_t)(sp - s), bl = merges[i].len - al - 1;
        memcpy(buf, s, al);
        memcpy(buf + al, sp + 1, bl);
        int32_t a = strmap_get(&m->vocab, s, al), b = strmap_get(&m->vocab, sp + 1, bl), ab = strmap_get(&m->vocab, buf, al + bl);
        if (a < 0 || b < 0 || ab < 0)
            return status_fail(ST_FORMAT, "%s: tokenizer.ggml.merges[%llu] uses a token missing from the vocabulary",
                               g->file.path, (unsigned long long)i);
        TRY(mergemap_put(&m->merges, a, b, (int32_t)i, ab));
    }
    return ST_OK;
}

// Control and user-defined tokens are matched before the model, as added tokens.
static Status load_added(Tokenizer *t, const GgufFile *g) {
    const GgufKV *kv = gguf_find_kv(g, "tokenizer.ggml.token_type");
    if (!kv) return ST_OK;
    if (kv->value.type != GGUF_T_ARRAY || kv->value.arr.elem != GGUF_T_INT32 || kv->value.arr.n != (uint64_t)t->model.vocab_size)
        return status_fail(ST_FORMAT, "%s: tokenizer.ggml.token_type must be an int32 array with one entry per token",
                           g->file.path);
    t->added = calloc((size_t)t->model.vocab_size + 1, sizeof *t->added);
    if (!t->added) return status_fail(ST_OOM, "out of memory");
    for (int i = 0; i < t->model.vocab_size; i++) {
        int32_t type;
        memcpy(&type, kv->value.arr.data + 4 * (size_t)i, 4);
        if (type != GGUF_TOKEN_CONTROL && type != GGUF_TOKEN_USER_DEFINED) continue;
        AddedToken *a = &t->added[t->n_added];
        a->content = strdup(t->model.id_to_token[i]);
        if (!a->content) return status_fail(ST_OOM, "out of memory");
        if (!a->content[0]) {
            free(a->content);
            continue;
        }
        a->id = i;
        a->special = type == GGUF_TOKEN_CONTROL;
        a->normalized = false;
        t->n_added++;
    }
    added_tokens_prepare(t);
    return ST_OK;
}

static Status configure_bytelevel(Tokenizer *t) {
    t->pretokenizer = calloc(1, sizeof *t->pretokenizer);
    t->decoder = calloc(1, sizeof *t->decoder);
    if (!t->pretokenizer || !t->decoder) return status_fail(ST_OOM, "out of memory");
    json_t *pre = json_pack("{s:s, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 0, "use_regex", 1);
    Status st = pretokenizer_from_json(t->pretokenizer, pre, "gguf");
    json_decref(pre);
    TRY(st);
    t->decoder->type = DEC_BYTELEVEL;
    return ST_OK;
}

Status tokenizer_load_gguf(Tokenizer **out, const GgufFile *g) {
    *out = NULL;
    GgufStr model;
    TRY(gguf_get_str(g, "tokenizer.ggml.model", &model));
    if (model.len != 4 || memcmp(model.ptr, "gpt2", 4) != 0)
        return status_fail(ST_UNSUPPORTED, "%s: tokenizer.ggml.model '%.*s' is not supported (gpt2)", g->file.path,
                           (int)(model.len > 32 ? 32 : model.len), model.ptr);
    const GgufStr *tokens;
    uint64_t n;
    TRY(string_array(g, "tokenizer.ggml.tokens", &tokens, &n));
    if (n == 0 || n > (1u << 24)) return status_fail(ST_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries", g->file.path,
                                                    (unsigned long long)n);
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) return status_fail(ST_OOM, "out of memory");
    t->model.type = MODEL_BPE;
    t->model.unk_id = -1;
    for (int b = 0; b < 256; b++) t->model.byte_ids[b] = -1;
    snprintf(t->kind, sizeof t->kind, "byte-level BPE");
    Status st = load_vocab(t, g, tokens, n);
    if (st == ST_OK) st = load_merges(t, g);
    if (st == ST_OK) st = load_added(t, g);
    if (st == ST_OK) st = configure_bytelevel(t);
    if (st != ST_OK) {
        tokenizer_free(t);
        return st;
    }
    *out = t;
    return ST_OK;
}
