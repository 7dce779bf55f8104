// elastilm ppl: perplexity of a model (or of an elastic level) on held-out
// text or alpaca records, the same sequences `lora` would train on.
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "runtime/log.h"
#include "train/data.h"
#include "ops/ops.h"
#include "train/llama_train.h"

static ArgOpt opts[] = {
    CLI_COMMON_OPTS,
    {"data", true, "plain text (.txt[.gz]) or alpaca (.json/.jsonl[.gz]) (required)", NULL},
    {"format", true, "alpaca or text (default: from the file name)", NULL},
    {"tokenizer", true, "tokenizer.json to use (default: the model's own)", NULL},
    {"cutoff", true, "tokens per window (default 256)", NULL},
    {"batch", true, "sequences per forward (default 8)", NULL},
    {"limit", true, "use only the first N sequences", NULL},
    {"path", true,
     "train (the packed training forward; the CPU's default with f32 weights) or serve (the inference forward over a "
     "KV cache, right-padded batches; the only one on a GPU or with --weights bf16|q8)",
     NULL},
};
#define N_OPTS ((int)(sizeof opts / sizeof *opts))

// The loss sum and counted targets of sequences [0, n) through the inference
// forward: batches of `batch` sequences right-padded to the batch's longest (a
// last short batch padded with empty sequences), logits of every position,
// op_cross_entropy's loss on the rows with a target. The same sum as the training
// forward's (causal attention: no real token sees the padding after it).
static Status ppl_serve(const LlamaModel *m, const LlamaView *view, const TokenData *d, int n, int batch, int max_len,
                        double *sum, int64_t *counted, int64_t *tokens, Progress *p) {
    const int V = m->cfg.vocab_size;
    LlamaSession s;
    TRY(llama_session_init(&s, m, batch, max_len, m->dev));
    Tensor logits = {0};
    size_t cells = (size_t)batch * (size_t)max_len;
    int32_t *ids = calloc(cells, sizeof *ids), *mask = calloc(cells, sizeof *mask), *tg = malloc(cells * sizeof *tg);
    Status st = llama_session_set_view(&s, m, view);
    if (st == ST_OK) st = tensor_alloc_2d(&logits, DT_F32, m->dev, (int64_t)cells, V);
    if (st == ST_OK && (!ids || !mask || !tg)) st = status_fail(ST_OOM, "out of memory");
    for (int i = 0; st == ST_OK && i < n; i += batch) {
        int k = n - i < batch ? n - i : batch, T = 1;
        for (int b = 0; b < k; b++) T = data_len(d, i + b) > T ? data_len(d, i + b) : T;
        for (size_t c = 0; c < (size_t)batch * T; c++) ids[c] = 0, mask[c] = 0, tg[c] = -1;
        for (int b = 0; b < k; b++) {
            int len = data_len(d, i + b);
            memcpy(ids + (size_t)b * T, d->ids + d->start[i + b], (size_t)len * sizeof *ids);
            for (int t = 0; t < len; t++) mask[(size_t)b * T + t] = 1;
            data_targets(d, i + b, tg + (size_t)b * T);
            *tokens += len;
        }
        Tensor lg = tensor_rows(&logits, 0, (int64_t)batch * T);
        llama_session_reset(&s);
        st = llama_forward(m, &s, ids, mask, T, LOGITS_ALL, &lg);
        if (st != ST_OK) break;
        *sum += op_cross_entropy(NULL, &lg, tg, 1.0f);
        for (size_t c = 0; c < (size_t)batch * T; c++) *counted += tg[c] >= 0;
        progress_step(p, k);
    }
    free(ids), free(mask), free(tg);
    tensor_free(&logits);
    llama_session_free(&s);
    return st;
}

static Status run(void) {
    Device dev;
    TRY(cli_setup(opts, N_OPTS, &dev));
    const char *path = args_get(opts, N_OPTS, "path");
    if (path && strcmp(path, "train") && strcmp(path, "serve"))
        return status_fail(ST_USAGE, "--path: expected train or serve, got '%s'", path);
    // the inference forward by default on a GPU and for low-bit CPU weights (training reads f32)
    bool serve = path ? !strcmp(path, "serve") : dev.kind != DEV_CPU || cli_weights() != DT_F32;
    if (!serve) TRY(cli_require_cpu(opts, N_OPTS, &dev, "ppl --path train (the training forward)"));
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
    if (st == ST_OK && !serve)
        st = llama_train_init(&t, &m, view ? view->widths : NULL, view ? (LoraSet *)view->lora : NULL, &to,
                              max_len * (int)batch);
    int32_t *ids = malloc((size_t)max_len * (size_t)batch * sizeof *ids);
    int32_t *tg = malloc((size_t)max_len * (size_t)batch * sizeof *tg), *cu = malloc(((size_t)batch + 1) * sizeof *cu);
    if (st == ST_OK && (!ids || !tg || !cu)) st = status_fail(ST_OOM, "out of memory");
    double sum = 0, t0 = time_now();
    int64_t counted = 0, tokens = 0;
    Progress p;
    progress_begin(&p, "ppl", n);
    if (st == ST_OK && serve) st = ppl_serve(&m, view, &d, n, (int)batch, max_len > 0 ? max_len : 1, &sum, &counted,
                                             &tokens, &p);
    for (int i = 0; st == ST_OK && !serve && i < n; i += (int)batch) {
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
        printf("{\"data\": \"%s\", \"level\": \"%s\", \"lora\": %s, \"path\": \"%s\", \"sequences\": %d, "
               "\"tokens\": %lld, \"loss\": %.8f, \"ppl\": %.4f, \"seconds\": %.2f}\n",
               data_path, level ? level : "1", lv.has_lora ? "true" : "false", serve ? "serve" : "train", n,
               (long long)counted, mean, exp(mean), secs);
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
