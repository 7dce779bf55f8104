// elastilm lora: LoRA fine-tuning of a model (or of an elastic level's prefix
// view) on alpaca records or plain text, with LLM-Pruner's defaults.
//
//   elastilm lora --model M --data alpaca.json --out DIR          (DIR/adapter is a peft adapter)
//   elastilm lora --model M --data D --artifact ART.h5 --level 0.5 (stored as lora/0.5 in the artifact)
//   mpirun -np 4 elastilm lora ...                                 (data parallel)
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "dist/dist.h"
#include "io/h5.h"
#include "runtime/log.h"
#include "runtime/mapped_file.h"
#include "train/data.h"
#include "train/lora_store.h"
#include "train/lora_train_model.h"
#include "train/peft.h"
#include "train/trainer.h"

static ArgOpt opts[] = {
    CLI_COMMON_OPTS,
    {"data", true, "training data: alpaca .json/.jsonl[.gz] or plain .txt[.gz] (required)", NULL},
    {"tokenizer", true, "tokenizer.json to use (default: the model's own)", NULL},
    {"format", true, "alpaca or text (default: from the file name)", NULL},
    {"out", true, "output directory: adapter/ (peft), checkpoint.h5, train_log.tsv, result.json", NULL},
    {"adapter", true, "start from this peft adapter directory instead of a fresh initialisation", NULL},
    {"rank", true, "LoRA rank (default 8)", NULL},
    {"alpha", true, "LoRA alpha; scale = alpha / rank (default 16)", NULL},
    {"dropout", true, "dropout on the adapters' input (default 0.05)", NULL},
    {"targets", true, "adapted projections (default q,k,v,o,gate,up,down)", NULL},
    {"lr", true, "peak learning rate (default 1e-4)", NULL},
    {"epochs", true, "passes over the training split (default 2)", NULL},
    {"batch", true, "sequences per optimizer step, over all ranks (default 64)", NULL},
    {"micro-batch", true, "sequences per forward/backward (default 4)", NULL},
    {"cutoff", true, "most tokens per sequence (default 256)", NULL},
    {"warmup", true, "optimizer steps of linear warm-up (default 100)", NULL},
    {"weight-decay", true, "AdamW decoupled weight decay (default 0)", NULL},
    {"max-grad-norm", true, "gradient-norm clipping, 0 = none (default 1)", NULL},
    {"val-data", true, "validate on this file (same format) instead of a split of --data", NULL},
    {"val-size", true, "held-out sequences for validation (default min(2000, n/10))", NULL},
    {"eval-every", true, "optimizer steps between validations (default 100; always at the end)", NULL},
    {"save-every", true, "optimizer steps between checkpoints (default 200; always at the end)", NULL},
    {"max-steps", true, "stop after this many optimizer steps (default: all epochs)", NULL},
    {"seed", true, "seed of the split, the shuffles, the dropout masks and the initialisation (default 42)", NULL},
    {"train-on-inputs", false, "alpaca: loss on the prompt too (default: on the response only)", NULL},
    {"recompute", false, "recompute each layer's activations in the backward (less memory)", NULL},
    {"resume", false, "continue from --out's checkpoint.h5 when it exists", NULL},
    {"kill-after-step", true, "testing: the process SIGKILLs itself after this optimizer step", NULL},
};
#define N_OPTS ((int)(sizeof opts / sizeof *opts))

typedef struct {
    const char *model, *data, *out, *artifact, *adapter;
    char level[32];
    DataOptions dopt;
    LoraConfig lora;
    OptimConfig optim;
    LoopOptions loop;
    long val_size; // -1 = default
    bool recompute;
    bool resume;
    long kill_after; // --kill-after-step (tests)
} LoraArgs;

static Status parse(LoraArgs *a) {
    memset(a, 0, sizeof *a);
    a->model = args_get(opts, N_OPTS, "model");
    a->data = args_get(opts, N_OPTS, "data");
    a->out = args_get(opts, N_OPTS, "out");
    a->artifact = args_get(opts, N_OPTS, "artifact");
    a->adapter = args_get(opts, N_OPTS, "adapter");
    if (!a->data) return status_fail(ST_USAGE, "lora: --data is required");
    if (!a->out && !a->artifact) return status_fail(ST_USAGE, "lora: give --out DIR and/or --artifact FILE");
    double level;
    TRY(args_opt_float(opts, N_OPTS, "level", 1e-6, 1.0, 1.0, &level));
    if (level < 1.0 && !a->artifact) return status_fail(ST_USAGE, "lora: --level below 1 needs --artifact (its level table)");
    snprintf(a->level, sizeof a->level, "%g", level);
    const char *fmt = args_get(opts, N_OPTS, "format");
    if (!fmt) a->dopt.format = DATA_AUTO;
    else if (!strcmp(fmt, "alpaca")) a->dopt.format = DATA_ALPACA;
    else if (!strcmp(fmt, "text")) a->dopt.format = DATA_TEXT;
    else return status_fail(ST_USAGE, "--format: expected alpaca or text, got '%s'", fmt);
    long v;
    double d;
    TRY(args_opt_int(opts, N_OPTS, "cutoff", 2, 1 << 20, 256, &v));
    a->dopt.cutoff = (int)v;
    a->dopt.train_on_inputs = args_get(opts, N_OPTS, "train-on-inputs") != NULL;
    TRY(args_opt_int(opts, N_OPTS, "rank", 1, 4096, 8, &v));
    a->lora.rank = (int)v;
    TRY(args_opt_float(opts, N_OPTS, "alpha", 1e-9, 1e9, 16, &d));
    a->lora.alpha = (float)d;
    TRY(args_opt_float(opts, N_OPTS, "dropout", 0, 0.999, 0.05, &d));
    a->lora.dropout = (float)d;
    const char *targets = args_get(opts, N_OPTS, "targets");
    TRY(lora_parse_targets(targets ? targets : "q,k,v,o,gate,up,down", &a->lora.targets));
    a->optim = optim_defaults();
    TRY(args_opt_float(opts, N_OPTS, "lr", 0, 10, 1e-4, &d));
    a->optim.lr = (float)d;
    TRY(args_opt_float(opts, N_OPTS, "weight-decay", 0, 10, 0, &d));
    a->optim.weight_decay = (float)d;
    TRY(args_opt_float(opts, N_OPTS, "max-grad-norm", 0, 1e9, 1, &d));
    a->optim.max_grad_norm = (float)d;
    TRY(args_opt_int(opts, N_OPTS, "warmup", 0, 1L << 40, 100, &v));
    a->optim.warmup = v;
    TRY(args_opt_int(opts, N_OPTS, "epochs", 1, 1 << 20, 2, &v));
    a->loop.epochs = (int)v;
    TRY(args_opt_int(opts, N_OPTS, "batch", 1, 1 << 24, 64, &v));
    a->loop.batch = (int)v;
    TRY(args_opt_int(opts, N_OPTS, "micro-batch", 1, 1024, 4, &v));
    a->loop.micro_batch = (int)v;
    TRY(args_opt_int(opts, N_OPTS, "eval-every", 0, 1L << 40, 100, &v));
    a->loop.eval_every = (int)v;
    TRY(args_opt_int(opts, N_OPTS, "save-every", 0, 1L << 40, 200, &v));
    a->loop.save_every = (int)v;
    TRY(args_opt_int(opts, N_OPTS, "max-steps", 0, 1L << 40, 0, &v));
    a->loop.max_steps = v;
    TRY(args_opt_int(opts, N_OPTS, "seed", 0, 1L << 62, 42, &v));
    a->loop.seed = (uint64_t)v;
    TRY(args_opt_int(opts, N_OPTS, "kill-after-step", 0, 1L << 40, 0, &a->kill_after));
    a->recompute = args_get(opts, N_OPTS, "recompute") != NULL;
    TRY(args_opt_int(opts, N_OPTS, "val-size", 0, 1L << 30, -1, &a->val_size));
    a->resume = args_get(opts, N_OPTS, "resume") != NULL;
    if (a->resume && !a->out) return status_fail(ST_USAGE, "lora: --resume needs --out (where the checkpoint is)");
    if (a->loop.batch % a->loop.micro_batch)
        return status_fail(ST_USAGE, "--batch (%d) must be a multiple of --micro-batch (%d)", a->loop.batch,
                           a->loop.micro_batch);
    return ST_OK;
}

// Everything that decides the numbers of a run, to refuse resuming another run's checkpoint.
static Status fingerprint(const LoraArgs *a, char *buf, size_t n) {
    char targets[64];
    const char *tok = args_get(opts, N_OPTS, "tokenizer");
    int len = snprintf(buf, n,
             "format=%d cutoff=%d train_on_inputs=%d level=%s rank=%d alpha=%g dropout=%g targets=%s lr=%g wd=%g "
             "clip=%g warmup=%" PRId64 " epochs=%d batch=%d micro=%d max_steps=%" PRId64 " val=%ld seed=%" PRIu64
             " recompute=%d model=%s data=%s val_data=%s artifact=%s adapter=%s tokenizer=%s",
             a->dopt.format, a->dopt.cutoff, a->dopt.train_on_inputs, a->level, a->lora.rank, a->lora.alpha,
             a->lora.dropout, lora_targets_string(a->lora.targets, targets, sizeof targets), a->optim.lr,
             a->optim.weight_decay, a->optim.max_grad_norm, a->optim.warmup, a->loop.epochs, a->loop.batch,
             a->loop.micro_batch, a->loop.max_steps, a->val_size, a->loop.seed, a->recompute, a->model, a->data,
             args_get(opts, N_OPTS, "val-data") ? args_get(opts, N_OPTS, "val-data") : "-",
             a->artifact ? a->artifact : "-", a->adapter ? a->adapter : "-", tok ? tok : "-");
    if (len < 0 || (size_t)len >= n) return status_fail(ST_USAGE, "lora: the paths given are too long");
    return ST_OK;
}

static Status write_result(const LoraArgs *a, const TrainResult *r, const TokenData *d, const DataSplit *sp) {
    char line[1024];
    snprintf(line, sizeof line,
             "{\"level\": \"%s\", \"steps\": %" PRId64 ", \"train_sequences\": %d, \"val_sequences\": %d, "
             "\"dropped_records\": %d, \"first_val_loss\": %.6f, \"best_val_loss\": %.6f, \"best_step\": %" PRId64
             ", \"last_train_loss\": %.6f, \"tokens_per_s\": %.1f}\n",
             a->level, r->steps, sp->n_train, sp->n_val, d->dropped, r->first_val_loss, r->best_val_loss, r->best_step,
             r->last_train_loss, r->size_per_s);
    fputs(line, stdout);
    if (!a->out) return ST_OK;
    char path[4096];
    snprintf(path, sizeof path, "%s/result.json", a->out);
    return write_file_atomic(path, line, strlen(line));
}

static Status save_outputs(const LoraArgs *a, const LoraSet *s) {
    if (a->out && !a->artifact) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/adapter", a->out);
        TRY(peft_export(s, dir, a->model));
    } else if (a->out) { // trained on the reordered model: peft could not apply it to the original
        log_info("the adapter is stored in %s as lora/%s (no peft export: it belongs to the reordered model; "
                 "`elastilm elasticize --export` writes that model)", a->artifact, a->level);
    }
    if (a->artifact) {
        H5Store *f;
        TRY(h5_open_update(&f, a->artifact));
        char group[64];
        snprintf(group, sizeof group, "lora/%s", a->level);
        Status st = lora_store_write(f, group, s);
        if (st != ST_OK) {
            h5_close(f);
            return st;
        }
        TRY(h5_commit(f));
    }
    return ST_OK;
}

static Status load_widths(const LoraArgs *a, const LlamaConfig *c, LlamaWidth **widths) {
    *widths = NULL;
    if (!a->artifact || !strcmp(a->level, "1")) return ST_OK;
    *widths = malloc((size_t)c->n_layers * sizeof **widths);
    if (!*widths) return status_fail(ST_OOM, "out of memory");
    H5Store *f;
    TRY(h5_open_read(&f, a->artifact));
    Status st = artifact_level_widths(f, a->level, c, *widths);
    h5_close(f);
    return st;
}

// --val-data: the file's sequences follow the training ones and are all validation.
static Status load_val_data(TokenData *data, const char *path, const Tokenizer *tok, const DataOptions *o,
                            DataSplit *split) {
    TokenData val;
    TRY(data_load(&val, path, tok, o));
    int n_train = data->n;
    Status st = data_append(data, &val);
    data_free(&val);
    TRY(st);
    split->n_train = n_train;
    split->n_val = data->n - n_train;
    split->train = malloc((size_t)split->n_train * sizeof *split->train);
    split->val = malloc((size_t)split->n_val * sizeof *split->val);
    if (!split->train || !split->val) return status_fail(ST_OOM, "out of memory");
    for (int i = 0; i < data->n; i++) {
        if (i < n_train) split->train[i] = i;
        else split->val[i - n_train] = i;
    }
    log_info("%s: %d training sequences; %s: %d validation sequences", "--data", n_train, path, split->n_val);
    return ST_OK;
}

static Status run(const Dist *dist) {
    LoraArgs a;
    Device dev;
    TRY(cli_setup(opts, N_OPTS, &dev));
    TRY(cli_require_cpu(opts, N_OPTS, &dev, "LoRA training"));
    TRY(parse(&a));
    if (dist->rank != 0) log_set_quiet(true);
    LlamaModel m;
    TRY(cli_load_model(opts, N_OPTS, &m)); // reordered by --artifact's permutation
    Tokenizer *tok = NULL;
    TokenData data = {0};
    DataSplit split = {0};
    LoraSet lora = {0};
    LlamaWidth *widths = NULL;
    Status st = cli_load_tokenizer(opts, N_OPTS, &tok);
    a.dopt.eos_id = m.cfg.eos_token_id;
    if (st == ST_OK) st = data_load(&data, a.data, tok, &a.dopt);
    const char *val_path = args_get(opts, N_OPTS, "val-data");
    if (st == ST_OK && val_path) st = load_val_data(&data, val_path, tok, &a.dopt, &split);
    else if (st == ST_OK) {
        int n_val = a.val_size >= 0 ? (int)a.val_size : (data.n / 10 < 2000 ? data.n / 10 : 2000);
        st = data_split(&data, n_val, a.loop.seed, &split);
        log_info("%s: %d sequences (%d train, %d validation); %d records dropped (too short or no response)", a.data,
                 data.n, split.n_train, split.n_val, data.dropped);
    }
    if (st == ST_OK) st = load_widths(&a, &m.cfg, &widths);
    if (st == ST_OK) st = a.adapter ? peft_import(&lora, &m.cfg, widths, a.adapter)
                                    : lora_init(&lora, &m.cfg, widths, &a.lora, a.loop.seed);
    if (st == ST_OK && a.adapter) lora.cfg.dropout = a.lora.dropout; // a loaded adapter trains with this run's dropout
    static char fp[20000];
    if (st == ST_OK) st = fingerprint(&a, fp, sizeof fp);
    TrainResult res;
    if (st == ST_OK) {
        LoraTrainModel lm;
        TrainJob job = {.model = &lm.tm, .split = &split, .optim = a.optim, .loop = a.loop, .out_dir = a.out,
                        .resume = a.resume, .fingerprint = fp, .dist = dist,
                        .after_step = a.kill_after > 0 ? cli_kill_after_step : NULL, .step_ctx = &a.kill_after};
        log_info("LoRA r=%d alpha=%g on %" PRId64 " parameters, %" PRId64 " steps, level %s, %d rank(s)", lora.cfg.rank,
                 lora.cfg.alpha, lora.n_params, trainer_total_steps(&job), a.level, dist->world);
        st = lora_train_model_init(&lm, &m, widths, &lora, &data, a.loop.micro_batch, a.recompute);
        if (st == ST_OK) st = trainer_run(&job, &res);
        lora_train_model_free(&lm);
    }
    if (st == ST_OK && dist->rank == 0) st = save_outputs(&a, &lora);
    if (st == ST_OK && dist->rank == 0) st = write_result(&a, &res, &data, &split);
    lora_free(&lora);
    free(widths);
    data_split_free(&split);
    data_free(&data);
    tokenizer_free(tok);
    llama_free(&m);
    return st;
}

int cmd_lora(int argc, char **argv) {
    Status st = args_parse(argc, argv, opts, N_OPTS, "lora");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(opts, N_OPTS, "help")) {
        args_print_help("lora", "LoRA fine-tuning (LLM-Pruner's recipe); data parallel under mpirun", opts, N_OPTS);
        return 0;
    }
    Dist dist;
    st = dist_init(&dist);
    if (st == ST_OK) st = run(&dist);
    int rc = st == ST_OK ? 0 : cli_fail(st);
    dist_finalize();
    return rc;
}
