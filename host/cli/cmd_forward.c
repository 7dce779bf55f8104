// elastilm forward / generate: run a model on token ids.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "models/llama.h"
#include "runtime/log.h"
#include "runtime/mapped_file.h"
#include "text/tokenizer.h"

// Tokenizes a text prompt with the model's own tokenizer (special tokens added
// as the tokenizer's post-processor says).
static Status prompt_ids(const char *model, const char *prompt, int32_t **ids, int32_t **mask, int *n_seq, int *T) {
    Tokenizer *tok;
    TRY(tokenizer_load_for_model(&tok, model));
    TokenList l;
    Status st = tokenizer_encode(tok, prompt, strlen(prompt), true, &l);
    tokenizer_free(tok);
    TRY(st);
    if (l.n == 0) {
        token_list_free(&l);
        return status_fail(ST_USAGE, "--prompt: the prompt has no tokens");
    }
    *ids = malloc(l.n * sizeof **ids);
    *mask = malloc(l.n * sizeof **mask);
    if (!*ids || !*mask) {
        free(*ids);
        free(*mask);
        token_list_free(&l);
        return status_fail(ST_OOM, "out of memory");
    }
    for (size_t i = 0; i < l.n; i++) {
        (*ids)[i] = l.ids[i];
        (*mask)[i] = 1;
    }
    *n_seq = 1;
    *T = (int)l.n;
    token_list_free(&l);
    return ST_OK;
}

// Loads the model and parses --ids or --prompt; the caller frees both.
// The inputs, the model and the view it runs (--level or --mode; cli_load_model_view).
static Status load_inputs(const ArgOpt *opts, int n, LlamaModel *m, Device *dev, int32_t **ids, int32_t **mask,
                          int *n_seq, int *T, CliView *cv, const LlamaView **view) {
    TRY(cli_setup(opts, n, dev));
    const char *text = args_get(opts, n, "ids"), *prompt = args_get(opts, n, "prompt");
    if (!text == !prompt) return status_fail(ST_USAGE, "give exactly one of --ids and --prompt");
    if (text) TRY(cli_parse_ids(text, ids, mask, n_seq, T));
    else TRY(prompt_ids(args_get(opts, n, "model"), prompt, ids, mask, n_seq, T));
    Status st = cli_load_model_view(opts, n, m, cv, view);
    if (st != ST_OK) {
        free(*ids);
        free(*mask);
    }
    return st;
}

static void print_top5(const Tensor *logits, const int32_t *ids, const int32_t *mask, int n_seq, int T) {
    int64_t V = logits->shape[1];
    for (int b = 0; b < n_seq; b++)
        for (int t = 0; t < T; t++) {
            int64_t r = (int64_t)b * T + t;
            if (!mask[r]) continue;
            const float *row = tensor_row_f32(logits, r);
            int top[5] = {-1, -1, -1, -1, -1};
            for (int64_t j = 0; j < V; j++)
                for (int k = 0; k < 5; k++)
                    if (top[k] < 0 || row[j] > row[top[k]]) {
                        memmove(top + k + 1, top + k, (size_t)(4 - k) * sizeof *top);
                        top[k] = (int)j;
                        break;
                    }
            if (n_seq > 1) printf("seq %d ", b);
            printf("pos %d id %d:", t, ids[r]);
            for (int k = 0; k < 5; k++) printf(" %d (%.4f)", top[k], row[top[k]]);
            printf("\n");
        }
}

static Status run_forward(const ArgOpt *opts, int n) {
    LlamaModel m;
    Device dev;
    int32_t *ids, *mask;
    int n_seq, T;
    CliView cv;
    const LlamaView *view;
    TRY(load_inputs(opts, n, &m, &dev, &ids, &mask, &n_seq, &T, &cv, &view));
    LlamaSession s;
    Tensor logits = {0};
    Status st = llama_session_init(&s, &m, n_seq, T, dev);
    if (st == ST_OK) {
        st = llama_session_set_view(&s, &m, view);
        if (st == ST_OK) st = tensor_alloc_2d(&logits, DT_F32, (Device){DEV_CPU, 0}, (int64_t)n_seq * T, m.cfg.vocab_size);
        if (st == ST_OK) st = llama_forward(&m, &s, ids, mask, T, LOGITS_ALL, &logits);
        llama_session_free(&s);
    }
    const char *out = args_get(opts, n, "out");
    if (st == ST_OK && out) {
        st = write_file_atomic(out, logits.data, (size_t)tensor_numel(&logits) * sizeof(float));
        if (st == ST_OK)
            log_info("wrote %d x %d float32 logits to %s", n_seq * T, m.cfg.vocab_size, out);
    } else if (st == ST_OK) {
        print_top5(&logits, ids, mask, n_seq, T);
    }
    tensor_free(&logits);
    cli_view_free(&cv);
    llama_free(&m);
    free(ids);
    free(mask);
    return st;
}

int cmd_forward(int argc, char **argv) {
    ArgOpt opts[] = {CLI_COMMON_OPTS,
                     {"ids", true, "token ids, \"1 2 3\"; several sequences \"1 2 3; 4 5\" are left-padded", NULL},
                     {"prompt", true, "a text prompt, tokenized with the model's tokenizer (instead of --ids)", NULL},
                     {"out", true, "write the [T x V] float32 little-endian logits of every position here", NULL},
                     CLI_POLICY_OPTS};
    int n = (int)(sizeof opts / sizeof *opts);
    Status st = args_parse(argc, argv, opts, n, "forward");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(opts, n, "help")) {
        args_print_help("forward", "Runs the model on token ids; prints the top-5 next tokens at each position.", opts, n);
        return 0;
    }
    st = run_forward(opts, n);
    return st == ST_OK ? 0 : cli_fail(st);
}

static Status run_generate(const ArgOpt *opts, int n) {
    long steps = 16;
    const char *steps_text = args_get(opts, n, "steps");
    if (steps_text) TRY(args_int(steps_text, "steps", 1, 1 << 20, &steps));
    LlamaModel m;
    Device dev;
    int32_t *ids, *mask;
    int n_seq, T;
    CliView cv;
    const LlamaView *view;
    TRY(load_inputs(opts, n, &m, &dev, &ids, &mask, &n_seq, &T, &cv, &view));
    int32_t *out = malloc((size_t)n_seq * (size_t)steps * sizeof *out);
    Status st = out ? ST_OK : status_fail(ST_OOM, "out of memory");
    double t0 = time_now();
    if (st == ST_OK) st = llama_generate_greedy(&m, view, ids, mask, n_seq, T, (int)steps, dev, out);
    if (st == ST_OK && args_get(opts, n, "prompt")) {
        Tokenizer *tok;
        char *text = NULL;
        st = tokenizer_load_for_model(&tok, args_get(opts, n, "model"));
        size_t until = 0; // the text ends at the model's end-of-sequence token, as HF generate stops
        while (until < (size_t)steps && out[until] != m.cfg.eos_token_id) until++;
        if (st == ST_OK) {
            st = tokenizer_decode(tok, out, until, false, &text, NULL);
            tokenizer_free(tok);
        }
        if (st == ST_OK) printf("%s\n", text);
        free(text);
    } else if (st == ST_OK) {
        for (int b = 0; b < n_seq; b++) {
            for (long k = 0; k < steps; k++) printf(k ? " %d" : "%d", out[b * steps + k]);
            printf("\n");
        }
    }
    if (st == ST_OK) log_info("%d x %ld tokens in %.2fs", n_seq, steps, time_now() - t0);
    cli_view_free(&cv);
    free(out);
    llama_free(&m);
    free(ids);
    free(mask);
    return st;
}

int cmd_generate(int argc, char **argv) {
    ArgOpt opts[] = {CLI_COMMON_OPTS,
                     {"ids", true, "prompt token ids, \"1 2 3\" (several: \"1 2; 3 4 5\", left-padded)", NULL},
                     {"prompt", true, "a text prompt (instead of --ids); the output is then decoded text", NULL},
                     {"steps", true, "tokens to generate (default 16)", NULL},
                     CLI_POLICY_OPTS};
    int n = (int)(sizeof opts / sizeof *opts);
    Status st = args_parse(argc, argv, opts, n, "generate");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(opts, n, "help")) {
        args_print_help("generate", "Greedy decoding with a KV cache; prints the generated ids, one line per prompt.", opts, n);
        return 0;
    }
    st = run_generate(opts, n);
    return st == ST_OK ? 0 : cli_fail(st);
}
