// elastilm ppl: perplexity of a model (or of an elastic level) on held-out
// text or alpaca records, the same sequences `lora` would train on.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "runtime/log.h"
#include "train/data.h"
#include "train/llama_train.h"

static ArgOpt opts[] = {
    CLI_COMMON_OPTS,
    {"data", true, "plain text (.txt[.gz]) or alpaca (.json/.jsonl[.gz]) (required)", NULL},
    {"format", true, "alpaca or text (default: from the file name)", NULL},
    {"tokenizer", true, "tokenizer.json to use (default: the model's own)", NULL},
    {"cutoff", true, "tokens per window (default 256)", NULL},
    {"batch", true, "sequences per forward (default 8)", NULL},
    {"limit", true, "use only the first N sequences", NULL},
};
#define N_OPTS ((int)(sizeof opts / sizeof *opts))

static Status run(void) {
    Device dev;
    TRY(cli_setup(opts, N_OPTS, &dev));
    TRY(cli_require_cpu(opts, N_OPTS, &dev, "ppl (the training forward)"));
    const char *data_path = args_get(opts, N_OPTS, "data");
    if (!data_path) return status_fail(ST_USAGE, "ppl: --data is required");
    long cutoff = 256, batch = 8, limit = -1;
    const char *v;
    if ((v = args_get(opts, N_OPTS, "cutoff"))) TRY(args_int(v, "cutoff", 2, 1 << 20, &cutoff));
    if ((v = args_get(opts, N_OPTS, "batch"))) TRY(args_int(v, "batch", 1, 1 << 16, &batch));
    if ((v = args_get(opts, N_OPTS, "limit"))) TRY(args_int(v, "limit", 1, 1L << 30, &limit));
    DataOptions dopt = {.format = DATA_AUTO, .cutoff = (int)cutoff};
    if ((v = args_get(opts, N_OPTS, "format"))) {
        if (!strcmp(v, "alpaca")) dopt.format = DATA_ALPACA;
        else if (!strcmp(v, "text")) dopt.format = DATA_TEXT;
        else return status_fail(ST_USAGE, "--format: expected alpaca or text, got '%s'", v);
    }
    LlamaModel m;
    TRY(cli_load_model(opts, N_OPTS, &m));
    dopt.eos_id = m.cfg.eos_token_id;
    Tokenizer *tok = NULL;
    TokenData d = {0};
    LevelView lv = {0};
    const LlamaView *view = NULL;
    LlamaTrain t = {0};
    Status st = cli_load_tokenizer(opts, N_OPTS, &tok);
    if (st == ST_OK) st = data_load(&d, data_path, tok, &dopt);
    if (st == ST_OK) st = cli_level_view(opts, N_OPTS, &m, &lv, &view);
    int n = d.n;
    if (limit > 0 && limit < n) n = (int)limit;
    int max_len = 0;
    for (int i = 0; i < n; i++) max_len = data_len(&d, i) > max_len ? data_len(&d, i) : max_len;
    if (st == ST_OK && (int64_t)max_len * batch > (1 << 30))
        st = status_fail(ST_USAGE, "ppl: --batch %ld x %d tokens per sequence is too large", batch, max_len);
    TrainOptions to = {.eval_only = true};
    if (st == ST_OK)
        st = llama_train_init(&t, &m, view ? view->widths : NULL, view ? (LoraSet *)view->lora : NULL, &to,
                              max_len * (int)batch);
    int32_t *ids = malloc((size_t)max_len * (size_t)batch * sizeof *ids);
    int32_t *tg = malloc((size_t)max_len * (size_t)batch * sizeof *tg), *cu = malloc(((size_t)batch + 1) * sizeof *cu);
    if (st == ST_OK && (!ids || !tg || !cu)) st = status_fail(ST_OOM, "out of memory");
    double sum = 0, t0 = time_now();
    int64_t counted = 0, tokens = 0;
    Progress p;
    progress_begin(&p, "ppl", n);
    for (int i = 0; st == ST_OK && i < n; i += (int)batch) {
        int k = n - i < batch ? n - i : (int)batch, at = 0;
        cu[0] = 0;
        for (int s = 0; s < k; s++) {
            int len = data_len(&d, i + s);
            memcpy(ids + at, d.ids + d.start[i + s], (size_t)len * sizeof *ids);
            data_targets(&d, i + s, tg + at);
            at += len;
            cu[s + 1] = at;
        }
        TrainBatch b = {.ids = ids, .targets = tg, .cu = cu, .n_seq = k, .n_tokens = at};
        double loss;
        int64_t c;
        st = llama_train_eval(&t, &b, &loss, &c);
        sum += loss, counted += c, tokens += at;
        progress_step(&p, k);
    }
    progress_end(&p);
    if (st == ST_OK) {
        double mean = counted ? sum / (double)counted : NAN, secs = time_now() - t0;
        const char *level = args_get(opts, N_OPTS, "level");
        printf("{\"data\": \"%s\", \"level\": \"%s\", \"lora\": %s, \"sequences\": %d, \"tokens\": %lld, "
               "\"loss\": %.6f, \"ppl\": %.4f, \"seconds\": %.2f}\n",
               data_path, level ? level : "1", lv.has_lora ? "true" : "false", n, (long long)counted, mean, exp(mean),
               secs);
        log_info("%lld tokens in %.1fs (%.0f tokens/s)", (long long)tokens, secs, tokens / secs);
    }
    free(ids), free(tg), free(cu);
    llama_train_free(&t);
    level_view_free(&lv);
    data_free(&d);
    tokenizer_free(tok);
    llama_free(&m);
    return st;
}

int cmd_ppl(int argc, char **argv) {
    Status st = args_parse(argc, argv, opts, N_OPTS, "ppl");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(opts, N_OPTS, "help")) {
        args_print_help("ppl", "Perplexity on held-out text (mean next-token loss), optionally at an elastic level.",
                        opts, N_OPTS);
        return 0;
    }
    st = run();
    return st == ST_OK ? 0 : cli_fail(st);
}
