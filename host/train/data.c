// Training data: alpaca records and plain text into token sequences.
#include "data.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/mapped_file.h"
#include "runtime/rng.h"

static const char *const PROMPT_INPUT =
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n%s\n\n### Input:\n%s\n\n### Response:\n";
static const char *const PROMPT_NO_INPUT =
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n%s\n\n### Response:\n";

char *alpaca_prompt(const char *instruction, const char *input) {
    char *out = NULL;
    int rc = input && *input ? asprintf(&out, PROMPT_INPUT, instruction, input)
                             : asprintf(&out, PROMPT_NO_INPUT, instruction);
    return rc < 0 ? NULL : out;
}

// ---- growing the token store -------------------------------------------------------

typedef struct {
    TokenData *d;
    int64_t n_ids, cap_ids;
    int cap_seq;
} Builder;

static Status push_seq(Builder *b, const int32_t *ids, int n, int n_masked) {
    TokenData *d = b->d;
    if (b->n_ids + n > b->cap_ids) {
        int64_t cap = b->cap_ids ? b->cap_ids * 2 : 1 << 16;
        while (cap < b->n_ids + n) cap *= 2;
        int32_t *p = realloc(d->ids, (size_t)cap * sizeof *p);
        if (!p) return status_fail(ST_OOM, "out of memory for training tokens");
        d->ids = p, b->cap_ids = cap;
    }
    if (d->n + 2 > b->cap_seq) {
        int cap = b->cap_seq ? b->cap_seq * 2 : 1024;
        int64_t *s = realloc(d->start, (size_t)cap * sizeof *s);
        if (s) d->start = s;
        int32_t *m = realloc(d->n_masked, (size_t)cap * sizeof *m);
        if (m) d->n_masked = m;
        if (!s || !m) return status_fail(ST_OOM, "out of memory for training sequences");
        b->cap_seq = cap;
    }
    memcpy(d->ids + b->n_ids, ids, (size_t)n * sizeof *ids);
    d->start[d->n] = b->n_ids;
    d->n_masked[d->n] = n_masked;
    b->n_ids += n;
    d->n++;
    d->start[d->n] = b->n_ids;
    return ST_OK;
}

static Status encode(const Tokenizer *tok, const char *text, TokenList *out, const char *where) {
    token_list_free(out);
    Status st = tokenizer_encode(tok, text, strlen(text), true, out);
    return st == ST_OK ? ST_OK : status_wrap(st, "%s", where);
}

// ---- alpaca ---------------------------------------------------------------------------

static Status get_field(json_t *rec, const char *key, bool required, const char **out, const char *where) {
    json_t *v = json_object_get(rec, key);
    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required) return status_fail(ST_FORMAT, "%s: the record has no \"%s\"", where, key);
        return ST_OK;
    }
    if (!json_is_string(v)) return status_fail(ST_FORMAT, "%s: \"%s\" must be a string", where, key);
    *out = json_string_value(v);
    return ST_OK;
}

static Status add_alpaca(Builder *b, json_t *rec, const Tokenizer *tok, const DataOptions *o, const char *where) {
    if (!json_is_object(rec)) return status_fail(ST_FORMAT, "%s: a record must be a JSON object", where);
    const char *instruction, *input, *output;
    TRY(get_field(rec, "instruction", true, &instruction, where));
    TRY(get_field(rec, "input", false, &input, where));
    TRY(get_field(rec, "output", true, &output, where));
    char *user = alpaca_prompt(instruction, input);
    char *full = user ? malloc(strlen(user) + strlen(output) + 1) : NULL;
    if (!full) {
        free(user);
        return status_fail(ST_OOM, "out of memory");
    }
    strcpy(full, user);
    strcat(full, output);
    TokenList tf = {0}, tu = {0};
    Status st = encode(tok, full, &tf, where);
    if (st == ST_OK && !o->train_on_inputs) st = encode(tok, user, &tu, where);
    if (st == ST_OK) {
        int n = (int)tf.n < o->cutoff ? (int)tf.n : o->cutoff;
        if (o->eos_id >= 0 && n > 0 && n < o->cutoff && tf.ids[n - 1] != o->eos_id) {
            st = token_list_push(&tf, o->eos_id, 0, 0, true); // n == tf.n here: nothing was cut
            n++;
        }
        int masked = o->train_on_inputs ? 0 : (int)tu.n;
        if (st == ST_OK) {
            if (n >= 2 && masked < n) st = push_seq(b, tf.ids, n, masked);
            else b->d->dropped++;
        }
    }
    token_list_free(&tf);
    token_list_free(&tu);
    free(user);
    free(full);
    return st;
}

static Status load_alpaca(Builder *b, const char *path, char *text, size_t len, const Tokenizer *tok,
                          const DataOptions *o) {
    char where[4200];
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r')) i++;
    if (i < len && text[i] == '[') { // one JSON array
        json_error_t err;
        json_t *root = json_loadb(text, len, 0, &err);
        if (!root) return status_fail(ST_FORMAT, "%s:%d: malformed JSON: %s", path, err.line, err.text);
        Status st = ST_OK;
        size_t k;
        json_t *rec;
        json_array_foreach(root, k, rec) {
            snprintf(where, sizeof where, "%s: record %zu", path, k);
            st = add_alpaca(b, rec, tok, o, where);
            if (st != ST_OK) break;
        }
        json_decref(root);
        return st;
    }
    int line = 0;
    for (char *p = text, *end = text + len; p < end;) { // JSON lines
        char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        size_t blank = 0;
        while (blank < n && (p[blank] == ' ' || p[blank] == '\t' || p[blank] == '\r')) blank++;
        if (blank < n) {
            json_error_t err;
            json_t *rec = json_loadb(p, n, 0, &err);
            snprintf(where, sizeof where, "%s:%d", path, line);
            if (!rec) return status_fail(ST_FORMAT, "%s: malformed JSON: %s", where, err.text);
            Status st = add_alpaca(b, rec, tok, o, where);
            json_decref(rec);
            TRY(st);
        }
        p += n + 1;
    }
    return ST_OK;
}

// ---- plain text -------------------------------------------------------------------------

static Status add_document(Builder *b, const char *doc, const Tokenizer *tok, const DataOptions *o, const char *where) {
    TokenList tl = {0};
    TRY(encode(tok, doc, &tl, where));
    Status st = ST_OK;
    for (size_t at = 0; st == ST_OK && at < tl.n; at += (size_t)o->cutoff) {
        int n = tl.n - at < (size_t)o->cutoff ? (int)(tl.n - at) : o->cutoff;
        if (n >= 2) st = push_seq(b, tl.ids + at, n, 0);
        else b->d->dropped++;
    }
    token_list_free(&tl);
    return st;
}

static Status load_text(Builder *b, const char *path, char *text, size_t len, const Tokenizer *tok,
                        const DataOptions *o) {
    char where[4200];
    int line = 1, doc_line = 1;
    char *doc = NULL;
    size_t doc_len = 0;
    Status st = ST_OK;
    for (char *p = text, *end = text + len; st == ST_OK && p <= end;) {
        char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n > 0 && p[n - 1] == '\r') n--; // CRLF files
        size_t k = 0;
        while (k < n && (p[k] == ' ' || p[k] == '\t')) k++;
        bool blank = k == n;
        if (!blank) { // append the line to the document
            if (!doc_len) doc_line = line;
            char *grown = realloc(doc, doc_len + n + 2);
            if (!grown) {
                st = status_fail(ST_OOM, "out of memory");
                break;
            }
            doc = grown;
            if (doc_len) doc[doc_len++] = '\n';
            memcpy(doc + doc_len, p, n);
            doc_len += n;
            doc[doc_len] = 0;
        }
        if ((blank || !nl) && doc_len) {
            snprintf(where, sizeof where, "%s:%d", path, doc_line);
            st = add_document(b, doc, tok, o, where);
            doc_len = 0;
        }
        if (!nl) break;
        p = nl + 1;
        line++;
    }
    free(doc);
    return st;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

Status data_load(TokenData *d, const char *path, const Tokenizer *tok, const DataOptions *o) {
    memset(d, 0, sizeof *d);
    if (o->cutoff < 2) return status_fail(ST_USAGE, "the cutoff length must be at least 2 tokens (got %d)", o->cutoff);
    DataFormat fmt = o->format;
    if (fmt == DATA_AUTO) {
        if (ends_with(path, ".json") || ends_with(path, ".jsonl") || ends_with(path, ".json.gz") ||
            ends_with(path, ".jsonl.gz"))
            fmt = DATA_ALPACA;
        else if (ends_with(path, ".txt") || ends_with(path, ".txt.gz"))
            fmt = DATA_TEXT;
        else
            return status_fail(ST_USAGE, "%s: cannot tell the data format from the name (.json/.jsonl = alpaca, "
                                         ".txt = plain text); say --format alpaca|text", path);
    }
    char *text = NULL;
    size_t len = 0;
    TRY(read_file_maybe_gz(path, &text, &len));
    Builder b = {.d = d};
    Status st = fmt == DATA_ALPACA ? load_alpaca(&b, path, text, len, tok, o) : load_text(&b, path, text, len, tok, o);
    free(text);
    if (st == ST_OK && d->n == 0)
        st = status_fail(ST_FORMAT, "%s: no training sequence (%d records too short or without a response)", path,
                         d->dropped);
    if (st != ST_OK) data_free(d);
    return st;
}

void data_free(TokenData *d) {
    free(d->ids);
    free(d->start);
    free(d->n_masked);
    memset(d, 0, sizeof *d);
}

Status data_append(TokenData *dst, const TokenData *src) {
    int64_t n_ids = dst->start[dst->n], add = src->start[src->n];
    int32_t *ids = realloc(dst->ids, (size_t)(n_ids + add) * sizeof *ids);
    if (ids) dst->ids = ids;
    int64_t *start = realloc(dst->start, (size_t)(dst->n + src->n + 1) * sizeof *start);
    if (start) dst->start = start;
    int32_t *masked = realloc(dst->n_masked, (size_t)(dst->n + src->n) * sizeof *masked);
    if (masked) dst->n_masked = masked;
    if (!ids || !start || !masked) return status_fail(ST_OOM, "out of memory for training data");
    memcpy(dst->ids + n_ids, src->ids, (size_t)add * sizeof *ids);
    for (int i = 0; i < src->n; i++) {
        dst->start[dst->n + i + 1] = n_ids + src->start[i + 1];
        dst->n_masked[dst->n + i] = src->n_masked[i];
    }
    dst->n += src->n;
    dst->dropped += src->dropped;
    return ST_OK;
}

int data_counted(const TokenData *d, int i) {
    int len = data_len(d, i), first = d->n_masked[i] > 1 ? d->n_masked[i] - 1 : 0;
    return len - 1 - first;
}

void data_targets(const TokenData *d, int i, int32_t *t) {
    const int32_t *ids = d->ids + d->start[i];
    int len = data_len(d, i);
    for (int p = 0; p < len; p++) t[p] = p + 1 < len && p + 1 >= d->n_masked[i] ? ids[p + 1] : -1;
}

Status data_split(const TokenData *d, int n_val, uint64_t seed, DataSplit *s) {
    return split_examples(d->n, n_val, seed, s);
}

Status split_examples(int n, int n_val, uint64_t seed, DataSplit *s) {
    memset(s, 0, sizeof *s);
    if (n_val < 0 || n_val >= n)
        return status_fail(ST_USAGE, "a validation split of %d leaves no training data (%d sequences)", n_val, n);
    int *order = malloc((size_t)n * sizeof *order);
    s->val = malloc(((size_t)n_val + 1) * sizeof *s->val);
    s->train = malloc((size_t)(n - n_val) * sizeof *s->train);
    if (!order || !s->val || !s->train) {
        free(order);
        data_split_free(s);
        return status_fail(ST_OOM, "out of memory");
    }
    Rng rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) order[i] = i;
    rng_shuffle(&rng, order, (size_t)n, sizeof *order);
    s->n_val = n_val;
    s->n_train = n - n_val;
    memcpy(s->val, order, (size_t)n_val * sizeof *order);
    memcpy(s->train, order + n_val, (size_t)s->n_train * sizeof *order);
    free(order);
    return ST_OK;
}

void data_split_free(DataSplit *s) {
    free(s->train);
    free(s->val);
    memset(s, 0, sizeof *s);
}
