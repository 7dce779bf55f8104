// elastilm tokenize: text -> ids (and offsets), ids -> text.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "runtime/log.h"
#include "text/tokenizer.h"

static Status load_tokenizer(const ArgOpt *opts, int n, Tokenizer **t) {
    const char *tok = args_get(opts, n, "tokenizer"), *model = args_get(opts, n, "model");
    if (tok) return tokenizer_load_json(t, tok);
    if (model) return tokenizer_load_for_model(t, model);
    return status_fail(ST_USAGE, "tokenize: --model or --tokenizer is required");
}

static Status run_decode(const Tokenizer *t, const char *ids_text, bool skip_special) {
    int32_t *ids, *mask;
    int n_seq, T;
    TRY(cli_parse_ids(ids_text, &ids, &mask, &n_seq, &T));
    Status st = n_seq == 1 ? ST_OK : status_fail(ST_USAGE, "--decode takes one sequence");
    char *text = NULL;
    size_t len = 0;
    if (st == ST_OK) st = tokenizer_decode(t, ids, (size_t)T, skip_special, &text, &len);
    if (st == ST_OK) {
        fwrite(text, 1, len, stdout);
        printf("\n");
    }
    free(text);
    free(ids);
    free(mask);
    return st;
}

static Status run_encode(const Tokenizer *t, const char *text, bool add_special, bool offsets) {
    TokenList l;
    TRY(tokenizer_encode(t, text, strlen(text), add_special, &l));
    if (!offsets) {
        for (size_t i = 0; i < l.n; i++) printf(i ? " %d" : "%d", l.ids[i]);
        printf("\n");
    } else {
        for (size_t i = 0; i < l.n; i++)
            printf("%d\t%ld\t%ld\t%.*s\n", l.ids[i], utf8_char_offset(text, l.starts[i]), utf8_char_offset(text, l.ends[i]),
                   (int)(l.ends[i] - l.starts[i]), text + l.starts[i]);
    }
    token_list_free(&l);
    return ST_OK;
}

int cmd_tokenize(int argc, char **argv) {
    ArgOpt opts[] = {
        {"model", true, "HF model directory (its tokenizer.json) or .gguf file", NULL},
        {"tokenizer", true, "a tokenizer.json (or .json.gz) instead of a model", NULL},
        {"text", true, "text to encode", NULL},
        {"decode", true, "ids to decode, \"1 2 3\"", NULL},
        {"no-special", false, "encode without BOS/[CLS]/[SEP]; decode without special tokens", NULL},
        {"offsets", false, "print one token per line: id, start and end character, text", NULL},
        {"quiet", false, "no info messages", NULL},
        {"help", false, "show this help", NULL},
    };
    int n = (int)(sizeof opts / sizeof *opts);
    Status st = args_parse(argc, argv, opts, n, "tokenize");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(opts, n, "help")) {
        args_print_help("tokenize", "Encodes --text to token ids, or decodes --decode ids to text.", opts, n);
        return 0;
    }
    log_set_quiet(args_get(opts, n, "quiet") != NULL);
    const char *text = args_get(opts, n, "text"), *ids = args_get(opts, n, "decode");
    if (!text == !ids) return cli_fail(status_fail(ST_USAGE, "tokenize: give exactly one of --text and --decode"));
    Tokenizer *t;
    if ((st = load_tokenizer(opts, n, &t)) != ST_OK) return cli_fail(st);
    bool no_special = args_get(opts, n, "no-special") != NULL;
    st = text ? run_encode(t, text, !no_special, args_get(opts, n, "offsets") != NULL) : run_decode(t, ids, no_special);
    tokenizer_free(t);
    return st == ST_OK ? 0 : cli_fail(st);
}
