// A tokenizer from a Hugging Face tokenizer.json, and the encode/decode
// pipeline: added tokens, normalizer, pre-tokenizer, model, post-processor.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "runtime/mapped_file.h"
#include "tokenizer_internal.h"

// ---- token lists --------------------------------------------------------------

Status token_list_push(TokenList *l, int32_t id, int32_t start, int32_t end, bool special) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        int32_t *ids = realloc(l->ids, cap * sizeof *ids);
        if (ids) l->ids = ids;
        int32_t *st = realloc(l->starts, cap * sizeof *st);
        if (st) l->starts = st;
        int32_t *en = realloc(l->ends, cap * sizeof *en);
        if (en) l->ends = en;
        bool *sp = realloc(l->special, cap * sizeof *sp);
        if (sp) l->special = sp;
        if (!ids || !st || !en || !sp) return status_fail(ST_OOM, "out of memory in the tokenizer");
        l->cap = cap;
    }
    l->ids[l->n] = id;
    l->starts[l->n] = start;
    l->ends[l->n] = end;
    l->special[l->n] = special;
    l->n++;
    return ST_OK;
}

void token_list_free(TokenList *l) {
    free(l->ids);
    free(l->starts);
    free(l->ends);
    free(l->special);
    memset(l, 0, sizeof *l);
}

static Status set_token_string(Model *m, int32_t id, const char *s) {
    if (id < 0 || id >= m->vocab_size) return ST_OK;
    free(m->id_to_token[id]);
    m->id_to_token[id] = strdup(s);
    return m->id_to_token[id] ? ST_OK : status_fail(ST_OOM, "out of memory");
}

// Vocabulary size: one past the largest id of the model's vocab and the added tokens.
static int max_id_plus_one(json_t *vocab, json_t *added) {
    int n = 0;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) if (json_integer_value(v) + 1 > n) n = (int)json_integer_value(v) + 1;
    size_t i;
    json_array_foreach(added, i, v) {
        int id = (int)json_integer_value(json_object_get(v, "id"));
        if (id + 1 > n) n = id + 1;
    }
    return n;
}

static Status load_vocab(Model *m, json_t *vocab, json_t *added, const char *path) {
    if (!json_is_object(vocab)) return status_fail(ST_FORMAT, "%s: model.vocab must be an object", path);
    m->vocab_size = max_id_plus_one(vocab, added);
    if (m->vocab_size <= 0 || m->vocab_size > (1 << 24)) return status_fail(ST_FORMAT, "%s: bad vocabulary size", path);
    m->id_to_token = calloc((size_t)m->vocab_size, sizeof *m->id_to_token);
    if (!m->id_to_token) return status_fail(ST_OOM, "out of memory");
    TRY(strmap_init(&m->vocab, json_object_size(vocab)));
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return status_fail(ST_FORMAT, "%s: vocab entry '%s' has no valid id", path, key);
        int32_t id = (int32_t)json_integer_value(v);
        TRY(strmap_put(&m->vocab, key, strlen(key), id));
        TRY(set_token_string(m, id, key));
    }
    return ST_OK;
}

// A merge: "a b" (older files) or ["a", "b"].
static Status merge_parts(json_t *e, const char **a, size_t *al, const char **b, size_t *bl) {
    if (json_is_array(e) && json_array_size(e) == 2) {
        *a = json_string_value(json_array_get(e, 0));
        *b = json_string_value(json_array_get(e, 1));
        if (!*a || !*b) return ST_FORMAT;
        *al = strlen(*a);
        *bl = strlen(*b);
        return ST_OK;
    }
    const char *s = json_string_value(e);
    if (!s) return ST_FORMAT;
    const char *sp = strchr(s + 1, ' '); // the first part is never empty
    if (!sp) return ST_FORMAT;
    *a = s;
    *al = (size_t)(sp - s);
    *b = sp + 1;
    *bl = strlen(sp + 1);
    return ST_OK;
}

static Status load_merges(Model *m, json_t *merges, const char *path) {
    if (!json_is_array(merges)) return status_fail(ST_FORMAT, "%s: model.merges must be an array", path);
    TRY(mergemap_init(&m->merges, json_array_size(merges)));
    size_t plen = m->continuing_subword_prefix ? strlen(m->continuing_subword_prefix) : 0;
    char *joined = NULL;
    size_t jcap = 0;
    for (size_t i = 0; i < json_array_size(merges); i++) {
        const char *a, *b;
        size_t al, bl;
        if (merge_parts(json_array_get(merges, i), &a, &al, &b, &bl) != ST_OK) {
            free(joined);
            return status_fail(ST_FORMAT, "%s: merge %zu is not \"a b\" or [a, b]", path, i);
        }
        int32_t ia = strmap_get(&m->vocab, a, al), ib = strmap_get(&m->vocab, b, bl);
        // the merged token: a + b without b's continuing-subword prefix
        size_t skip = (plen && bl >= plen && strncmp(b, m->continuing_subword_prefix, plen) == 0) ? plen : 0;
        if (al + bl + 1 > jcap) {
            jcap = (al + bl + 1) * 2;
            char *nj = realloc(joined, jcap);
            if (!nj) {
                free(joined);
                return status_fail(ST_OOM, "out of memory");
            }
            joined = nj;
        }
        memcpy(joined, a, al);
        memcpy(joined + al, b + skip, bl - skip);
        int32_t im = strmap_get(&m->vocab, joined, al + bl - skip);
        if (ia < 0 || ib < 0 || im < 0) {
            free(joined);
            return status_fail(ST_FORMAT, "%s: merge %zu ('%.*s' + '%.*s') uses a token missing from the vocabulary", path, i,
                               (int)al, a, (int)bl, b);
        }
        Status st = mergemap_put(&m->merges, ia, ib, (int32_t)i, im);
        if (st != ST_OK) {
            free(joined);
            return st;
        }
    }
    free(joined);
    return ST_OK;
}

// A string option; absent, null and "" all mean none.
static char *opt_string(json_t *obj, const char *key) {
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) && json_string_length(v) > 0 ? strdup(json_string_value(v)) : NULL;
}

static Status load_model(Tokenizer *t, json_t *model, json_t *added, const char *path) {
    Model *m = &t->model;
    m->unk_id = -1;
    for (int b = 0; b < 256; b++) m->byte_ids[b] = -1;
    const char *type = json_string_value(json_object_get(model, "type"));
    json_t *vocab = json_object_get(model, "vocab");
    if (!type && json_object_get(model, "merges")) type = "BPE";
    if (!type) return status_fail(ST_FORMAT, "%s: model without \"type\"", path);
    TRY(load_vocab(m, vocab, added, path));
    char *unk = opt_string(model, "unk_token");
    if (unk) {
        m->unk_id = strmap_get(&m->vocab, unk, strlen(unk));
        free(unk);
    }
    if (strcmp(type, "BPE") == 0) {
        m->type = MODEL_BPE;
        m->byte_fallback = json_is_true(json_object_get(model, "byte_fallback"));
        m->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));
        m->fuse_unk = json_is_true(json_object_get(model, "fuse_unk"));
        m->continuing_subword_prefix = opt_string(model, "continuing_subword_prefix");
        m->end_of_word_suffix = opt_string(model, "end_of_word_suffix");
        if (m->end_of_word_suffix)
            return status_fail(ST_UNSUPPORTED, "%s: BPE end_of_word_suffix is not supported", path);
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            m->byte_ids[b] = strmap_get(&m->vocab, name, 6);
        }
        snprintf(t->kind, sizeof t->kind, "%s", m->byte_fallback ? "SentencePiece-style BPE" : "byte-level BPE");
        return load_merges(m, json_object_get(model, "merges"), path);
    }
    if (strcmp(type, "WordPiece") == 0) {
        m->type = MODEL_WORDPIECE;
        m->wp_prefix = opt_string(model, "continuing_subword_prefix");
        if (!m->wp_prefix) m->wp_prefix = strdup("##");
        json_t *mx = json_object_get(model, "max_input_chars_per_word");
        m->max_input_chars_per_word = json_is_integer(mx) ? (int)json_integer_value(mx) : 100;
        snprintf(t->kind, sizeof t->kind, "WordPiece");
        return ST_OK;
    }
    return status_fail(ST_UNSUPPORTED, "%s: model type '%s' is not supported (BPE, WordPiece)", path, type);
}

static Status load_added(Tokenizer *t, json_t *added, const char *path) {
    if (!added || json_is_null(added)) return ST_OK;
    if (!json_is_array(added)) return status_fail(ST_FORMAT, "%s: added_tokens must be an array", path);
    t->added = calloc(json_array_size(added) + 1, sizeof *t->added);
    if (!t->added) return status_fail(ST_OOM, "out of memory");
    size_t i;
    json_t *v;
    json_array_foreach(added, i, v) {
        AddedToken *a = &t->added[t->n_added];
        json_t *id = json_object_get(v, "id");
        a->content = opt_string(v, "content");
        if (!a->content || !json_is_integer(id) || a->content[0] == '\0') {
            free(a->content);
            return status_fail(ST_FORMAT, "%s: added_tokens[%zu] needs an id and non-empty content", path, i);
        }
        t->n_added++;
        a->id = (int32_t)json_integer_value(id);
        a->special = json_is_true(json_object_get(v, "special"));
        a->lstrip = json_is_true(json_object_get(v, "lstrip"));
        a->rstrip = json_is_true(json_object_get(v, "rstrip"));
        a->single_word = json_is_true(json_object_get(v, "single_word"));
        a->normalized = !json_is_false(json_object_get(v, "normalized"));
        TRY(set_token_string(&t->model, a->id, a->content));
    }
    added_tokens_prepare(t);
    return ST_OK;
}

// ---- post-processor -------------------------------------------------------------

static Status push_id(int32_t **arr, int *n, int32_t id) {
    int32_t *a = realloc(*arr, (size_t)(*n + 1) * sizeof *a);
    if (!a) return status_fail(ST_OOM, "out of memory");
    a[(*n)++] = id;
    *arr = a;
    return ST_OK;
}

static Status load_template(Tokenizer *t, json_t *pp, const char *path) {
    json_t *single = json_object_get(pp, "single"), *specials = json_object_get(pp, "special_tokens");
    if (!json_is_array(single)) return status_fail(ST_FORMAT, "%s: TemplateProcessing without \"single\"", path);
    bool seen_seq = false;
    size_t i;
    json_t *item;
    json_array_foreach(single, i, item) {
        json_t *sp = json_object_get(item, "SpecialToken");
        if (json_object_get(item, "Sequence")) {
            seen_seq = true;
            continue;
        }
        const char *name = json_string_value(json_object_get(sp, "id"));
        json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids");
        if (!name || !json_is_array(ids))
            return status_fail(ST_FORMAT, "%s: TemplateProcessing special token '%s' is not defined", path, name ? name : "?");
        size_t k;
        json_t *id;
        json_array_foreach(ids, k, id) {
            if (seen_seq) TRY(push_id(&t->post.suffix, &t->post.n_suffix, (int32_t)json_integer_value(id)));
            else TRY(push_id(&t->post.prefix, &t->post.n_prefix, (int32_t)json_integer_value(id)));
        }
    }
    return ST_OK;
}

static Status load_post(Tokenizer *t, json_t *pp, const char *path) {
    if (!pp || json_is_null(pp)) return ST_OK;
    const char *type = json_string_value(json_object_get(pp, "type"));
    if (!type) return status_fail(ST_FORMAT, "%s: post_processor without \"type\"", path);
    if (strcmp(type, "Sequence") == 0) {
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(pp, "processors"), i, c) TRY(load_post(t, c, path));
        return ST_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        t->bytelevel_post_trim = json_is_true(json_object_get(pp, "trim_offsets"));
        return ST_OK;
    }
    if (strcmp(type, "TemplateProcessing") == 0) return load_template(t, pp, path);
    if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0) {
        json_t *cls = json_object_get(pp, "cls"), *sep = json_object_get(pp, "sep");
        if (!json_is_array(cls) || !json_is_array(sep))
            return status_fail(ST_FORMAT, "%s: %s needs \"cls\" and \"sep\"", path, type);
        TRY(push_id(&t->post.prefix, &t->post.n_prefix, (int32_t)json_integer_value(json_array_get(cls, 1))));
        return push_id(&t->post.suffix, &t->post.n_suffix, (int32_t)json_integer_value(json_array_get(sep, 1)));
    }
    return status_fail(ST_UNSUPPORTED, "%s: post_processor type '%s' is not supported", path, type);
}

// ---- loading ----------------------------------------------------------------------

static Status load_component(json_t *root, const char *key, void **out, size_t size,
                             Status (*parse)(void *, json_t *, const char *), const char *path) {
    json_t *j = json_object_get(root, key);
    if (!j || json_is_null(j)) return ST_OK;
    *out = calloc(1, size);
    if (!*out) return status_fail(ST_OOM, "out of memory");
    return parse(*out, j, path);
}

static Status parse_normalizer(void *p, json_t *j, const char *path) { return normalizer_from_json(p, j, path); }
static Status parse_pretokenizer(void *p, json_t *j, const char *path) { return pretokenizer_from_json(p, j, path); }
static Status parse_decoder(void *p, json_t *j, const char *path) { return decoder_from_json(p, j, path); }

static Status tokenizer_from_json_root(Tokenizer *t, json_t *root, const char *path) {
    if (!json_is_object(root)) return status_fail(ST_FORMAT, "%s: not a JSON object", path);
    json_t *model = json_object_get(root, "model"), *added = json_object_get(root, "added_tokens");
    if (!json_is_object(model)) return status_fail(ST_FORMAT, "%s: missing key 'model'", path);
    TRY(load_model(t, model, added, path));
    TRY(load_added(t, added, path));
    TRY(load_component(root, "normalizer", (void **)&t->normalizer, sizeof(Normalizer), parse_normalizer, path));
    TRY(load_component(root, "pre_tokenizer", (void **)&t->pretokenizer, sizeof(PreTokenizer), parse_pretokenizer, path));
    TRY(load_component(root, "decoder", (void **)&t->decoder, sizeof(Decoder), parse_decoder, path));
    return load_post(t, json_object_get(root, "post_processor"), path);
}

Status tokenizer_load_json(Tokenizer **out, const char *path) {
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    TRY(read_file_maybe_gz(path, &text, &len));
    Status st = tokenizer_load_json_text(out, text, len, path);
    free(text);
    return st;
}

Status tokenizer_load_json_text(Tokenizer **out, const char *text, size_t len, const char *path) {
    *out = NULL;
    json_error_t err;
    json_t *root = json_loadb(text, len, 0, &err);
    if (!root) return status_fail(ST_FORMAT, "%s: malformed JSON (line %d: %s)", path, err.line, err.text);
    Tokenizer *t = calloc(1, sizeof *t);
    Status st = t ? tokenizer_from_json_root(t, root, path) : status_fail(ST_OOM, "out of memory");
    json_decref(root);
    if (st != ST_OK) {
        tokenizer_free(t);
        return st;
    }
    *out = t;
    return ST_OK;
}

Status tokenizer_json_add_tokens(const char *json, size_t len, const char *const *tokens, int n, int first_id,
                                 const char *what, char **out) {
    *out = NULL;
    Tokenizer *t;
    TRY(tokenizer_load_json_text(&t, json, len, what)); // checks the text and answers "is it in the vocabulary?"
    Status st = ST_OK;
    if (first_id < tokenizer_vocab_size(t))
        st = status_fail(ST_USAGE, "%s: new tokens from id %d would overlap the %d tokens it has", what, first_id,
                         tokenizer_vocab_size(t));
    for (int i = 0; st == ST_OK && i < n; i++)
        if (tokenizer_token_id(t, tokens[i]) >= 0)
            st = status_fail(ST_USAGE, "%s: token '%s' is already in the vocabulary", what, tokens[i]);
    tokenizer_free(t);
    if (st != ST_OK) return st;
    json_t *root = json_loadb(json, len, 0, NULL), *added = json_object_get(root, "added_tokens");
    if (!json_is_array(added)) {
        added = json_array();
        json_object_set_new(root, "added_tokens", added);
    }
    for (int i = 0; i < n; i++)
        json_array_append_new(added, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", first_id + i, "content",
                                               tokens[i], "single_word", 0, "lstrip", 0, "rstrip", 0, "normalized", 1,
                                               "special", 0));
    *out = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return *out ? ST_OK : status_fail(ST_OOM, "out of memory");
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    if (t->normalizer) normalizer_free(t->normalizer);
    free(t->normalizer);
    if (t->pretokenizer) pretokenizer_free(t->pretokenizer);
    free(t->pretokenizer);
    if (t->decoder) decoder_free(t->decoder);
    free(t->decoder);
    Model *m = &t->model;
    strmap_free(&m->vocab);
    mergemap_free(&m->merges);
    for (int i = 0; m->id_to_token && i < m->vocab_size; i++) free(m->id_to_token[i]);
    free(m->id_to_token);
    free(m->continuing_subword_prefix);
    free(m->end_of_word_suffix);
    free(m->wp_prefix);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    free(t->post.prefix);
    free(t->post.suffix);
    free(t);
}

Status tokenizer_load_for_model(Tokenizer **out, const char *model_path) {
    struct stat sb;
    if (stat(model_path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        char path[1200];
        snprintf(path, sizeof path, "%s/tokenizer.json", model_path);
        return tokenizer_load_json(out, path);
    }
    GgufFile g;
    TRY(gguf_open(&g, model_path));
    Status st = tokenizer_load_gguf(out, &g);
    gguf_close(&g);
    return st;
}

int tokenizer_vocab_size(const Tokenizer *t) { return t->model.vocab_size; }
const char *tokenizer_kind(const Tokenizer *t) { return t->kind; }
int32_t tokenizer_token_id(const Tokenizer *t, const char *token) {
    for (int i = 0; i < t->n_added; i++)
        if (strcmp(t->added[i].content, token) == 0) return t->added[i].id;
    return strmap_get(&t->model.vocab, token, strlen(token));
}
