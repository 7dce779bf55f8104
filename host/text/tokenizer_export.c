// A GGUF file's tokenizer written as a Hugging Face tokenizer.json: the
// "gpt2" (byte-level BPE) vocabulary configured as transformers converts it
// (tests/fixtures/tokenizers/smollm2-tokenizer.json is that conversion): a BPE
// model with the GGUF's vocabulary and merges, the added tokens that
// tokenizer_load_gguf matches (CONTROL and USER_DEFINED tokens; CONTROL ones
// special), a ByteLevel pre-tokenizer (no prefix space, GPT-2's regex), an
// empty template and a ByteLevel decoder. Loaded back with tokenizer_load_json
// it encodes and decodes as tokenizer_load_gguf does.
#include <stdlib.h>
#include <string.h>

#include "runtime/mapped_file.h"
#include "tokenizer_internal.h"

static int by_id(const void *a, const void *b) {
    int32_t x = ((const AddedToken *)a)->id, y = ((const AddedToken *)b)->id;
    return (x > y) - (x < y);
}

// The added tokens of t in id order, as transformers lists them.
static Status added_json(const Tokenizer *t, json_t *arr) {
    AddedToken *sorted = malloc(((size_t)t->n_added + 1) * sizeof *sorted);
    if (!sorted) return status_fail(ST_OOM, "out of memory");
    if (t->n_added) memcpy(sorted, t->added, (size_t)t->n_added * sizeof *sorted);
    qsort(sorted, (size_t)t->n_added, sizeof *sorted, by_id);
    Status st = ST_OK;
    for (int i = 0; st == ST_OK && i < t->n_added; i++) {
        const AddedToken *a = &sorted[i];
        json_t *o = json_pack("{s:I, s:s, s:b, s:b, s:b, s:b, s:b}", "id", (json_int_t)a->id, "content", a->content,
                              "single_word", a->single_word, "lstrip", a->lstrip, "rstrip", a->rstrip, "normalized",
                              a->normalized, "special", a->special);
        if (!o || json_array_append_new(arr, o) != 0) st = status_fail(ST_OOM, "out of memory");
    }
    free(sorted);
    return st;
}

// model.vocab from tokenizer.ggml.tokens, in id order. A JSON object holds
// each token string once and its keys cannot carry NUL: such vocabularies are refused.
static Status vocab_json(const GgufFile *g, json_t *vocab) {
    const GgufKV *kv = gguf_find_kv(g, "tokenizer.ggml.tokens"); // checked by tokenizer_load_gguf
    char *key = NULL;
    size_t cap = 0;
    Status st = ST_OK;
    for (uint64_t i = 0; st == ST_OK && i < kv->value.arr.n; i++) {
        GgufStr s = kv->value.arr.strs[i];
        if (s.len + 1 > cap) {
            cap = 2 * (s.len + 1);
            char *k = realloc(key, cap);
            if (!k) {
                st = status_fail(ST_OOM, "out of memory");
                break;
            }
            key = k;
        }
        memcpy(key, s.ptr, s.len);
        key[s.len] = '\0';
        json_t *prev = json_object_get(vocab, key);
        if (memchr(s.ptr, '\0', s.len))
            st = status_fail(ST_UNSUPPORTED, "%s: tokenizer.ggml.tokens[%llu] contains a NUL byte, which a "
                             "tokenizer.json vocabulary cannot hold", g->file.path, (unsigned long long)i);
        else if (prev)
            st = status_fail(ST_UNSUPPORTED, "%s: tokenizer.ggml.tokens[%llu] repeats token %lld ('%.32s'), which a "
                             "tokenizer.json vocabulary cannot hold", g->file.path, (unsigned long long)i,
                             (long long)json_integer_value(prev), key);
        else if (json_object_set_new(vocab, key, json_integer((json_int_t)i)) != 0)
            st = status_fail(ST_UNSUPPORTED, "%s: tokenizer.ggml.tokens[%llu] is not valid UTF-8", g->file.path,
                             (unsigned long long)i);
    }
    free(key);
    return st;
}

// model.merges from tokenizer.ggml.merges, in rank order, as ["a", "b"] pairs
// split where tokenizer_load_gguf splits them (the first space after the first byte).
static Status merges_json(const GgufFile *g, json_t *merges) {
    const GgufKV *kv = gguf_find_kv(g, "tokenizer.ggml.merges"); // checked by tokenizer_load_gguf
    for (uint64_t i = 0; i < kv->value.arr.n; i++) {
        GgufStr s = kv->value.arr.strs[i];
        const char *sp = memchr(s.ptr + 1, ' ', s.len - 1);
        size_t al = (size_t)(sp - s.ptr);
        json_t *a = json_stringn(s.ptr, al), *b = json_stringn(sp + 1, s.len - al - 1);
        if (!a || !b) {
            json_decref(a), json_decref(b);
            return status_fail(ST_UNSUPPORTED, "%s: tokenizer.ggml.merges[%llu] is not valid UTF-8", g->file.path,
                               (unsigned long long)i);
        }
        if (json_array_append_new(merges, json_pack("[o, o]", a, b)) != 0) return status_fail(ST_OOM, "out of memory");
    }
    return ST_OK;
}

static Status build(const GgufFile *g, const Tokenizer *t, json_t **out) {
    json_t *added = json_array(), *vocab = json_object(), *merges = json_array();
    Status st = added && vocab && merges ? ST_OK : status_fail(ST_OOM, "out of memory");
    if (st == ST_OK) st = added_json(t, added);
    if (st == ST_OK) st = vocab_json(g, vocab);
    if (st == ST_OK) st = merges_json(g, merges);
    if (st != ST_OK) {
        json_decref(added), json_decref(vocab), json_decref(merges);
        return st;
    }
    json_t *seq_a = json_pack("{s:{s:s, s:i}}", "Sequence", "id", "A", "type_id", 0);
    json_t *seq_b = json_pack("{s:{s:s, s:i}}", "Sequence", "id", "B", "type_id", 1);
    json_t *post = json_pack("{s:s, s:[O], s:[O, O], s:{}}", "type", "TemplateProcessing", "single", seq_a, "pair",
                             seq_a, seq_b, "special_tokens");
    json_decref(seq_a), json_decref(seq_b);
    json_t *model = json_pack("{s:s, s:n, s:n, s:s, s:s, s:b, s:b, s:b, s:o, s:o}", "type", "BPE", "dropout",
                              "unk_token", "continuing_subword_prefix", "", "end_of_word_suffix", "", "fuse_unk", 0,
                              "byte_fallback", 0, "ignore_merges", 0, "vocab", vocab, "merges", merges);
    json_t *root = json_pack("{s:s, s:n, s:n, s:o, s:n, s:{s:s, s:b, s:b, s:b}, s:o, s:{s:s, s:b, s:b, s:b}, s:o}",
                             "version", "1.0", "truncation", "padding", "added_tokens", added, "normalizer",
                             "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", 0, "trim_offsets", 1,
                             "use_regex", 1, "post_processor", post, "decoder", "type", "ByteLevel",
                             "add_prefix_space", 1, "trim_offsets", 1, "use_regex", 1, "model", model);
    if (!root) return status_fail(ST_OOM, "out of memory"); // json_pack released what it was given
    *out = root;
    return ST_OK;
}

Status tokenizer_export_gguf_json(const GgufFile *g, const char *path) {
    Tokenizer *t;
    TRY(tokenizer_load_gguf(&t, g)); // checks the metadata and refuses vocabularies other than gpt2
    json_t *root = NULL;
    Status st = build(g, t, &root);
    tokenizer_free(t);
    TRY(st);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text) return status_fail(ST_OOM, "out of memory");
    st = write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}
