// Encode throughput of the tokenizers, one thread, on the parity corpus.
//   bench_tokenizers CORPUS.jsonl.gz NAME=TOKENIZER.json[.gz]...
// Encodes the corpus string by string (no special tokens), once to warm up
// and then in whole passes until 2 s have passed; prints one line per
// tokenizer: "elastilm tokenizer=<name> mb_s=<MB of UTF-8 input per second>",
// the same measure as bench_tokenizers.py.
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "runtime/log.h"
#include "text/tokenizer.h"

typedef struct {
    char **texts;
    size_t *lens;
    size_t n, bytes;
} Corpus;

static int read_corpus(const char *path, Corpus *c) {
    gzFile f = gzopen(path, "rb");
    if (!f) return fprintf(stderr, "bench_tokenizers: cannot open %s\n", path), 1;
    size_t cap = 1 << 16, len = 0, items_cap = 0;
    char *line = malloc(cap);
    int ch;
    memset(c, 0, sizeof *c);
    while ((ch = gzgetc(f)) != -1) {
        if (ch != '\n') {
            if (len + 2 > cap) line = realloc(line, cap *= 2);
            line[len++] = (char)ch;
            continue;
        }
        json_error_t err;
        json_t *v = json_loadb(line, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
        len = 0;
        if (!json_is_string(v)) return fprintf(stderr, "bench_tokenizers: %s: line %zu is not a JSON string\n", path, c->n + 1), 1;
        if (c->n == items_cap) {
            items_cap = items_cap ? items_cap * 2 : 1024;
            c->texts = realloc(c->texts, items_cap * sizeof *c->texts);
            c->lens = realloc(c->lens, items_cap * sizeof *c->lens);
        }
        c->lens[c->n] = json_string_length(v);
        c->texts[c->n] = malloc(c->lens[c->n] + 1);
        memcpy(c->texts[c->n], json_string_value(v), c->lens[c->n] + 1);
        c->bytes += c->lens[c->n++];
        json_decref(v);
    }
    free(line);
    gzclose(f);
    return 0;
}

static int encode_all(const Tokenizer *t, const Corpus *c) {
    for (size_t i = 0; i < c->n; i++) {
        TokenList l;
        if (tokenizer_encode(t, c->texts[i], c->lens[i], false, &l) != ST_OK) {
            fprintf(stderr, "bench_tokenizers: %s\n", status_message());
            return 1;
        }
        token_list_free(&l);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) return fprintf(stderr, "usage: bench_tokenizers CORPUS NAME=TOKENIZER...\n"), 2;
    Corpus c;
    if (read_corpus(argv[1], &c)) return 1;
    for (int a = 2; a < argc; a++) {
        char *eq = strchr(argv[a], '=');
        if (!eq) return fprintf(stderr, "bench_tokenizers: expected NAME=PATH, got %s\n", argv[a]), 2;
        *eq = '\0';
        Tokenizer *t;
        if (tokenizer_load_json(&t, eq + 1) != ST_OK) return fprintf(stderr, "bench_tokenizers: %s\n", status_message()), 1;
        if (encode_all(t, &c)) return 1; // warm-up
        double t0 = time_now(), elapsed;
        size_t passes = 0;
        do {
            if (encode_all(t, &c)) return 1;
            passes++;
            elapsed = time_now() - t0;
        } while (elapsed < 2.0);
        printf("elastilm tokenizer=%s mb_s=%.2f\n", argv[a], (double)c.bytes * (double)passes / elapsed / 1e6);
        fflush(stdout);
        tokenizer_free(t);
    }
    for (size_t i = 0; i < c.n; i++) free(c.texts[i]);
    free(c.texts);
    free(c.lens);
    return 0;
}
