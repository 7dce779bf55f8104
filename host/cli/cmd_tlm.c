// elastilm tlm: the tiny language model (TLM). `tlm labels` makes keep/drop
// labels for the score head (from (prompt, compressed prompt) pairs, or from
// the target LLM's self-information); `tlm score` trains the score head on an
// encoder and stores it in the elastic artifact.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <inttypes.h>

#include "cli.h"
#include "dist/dist.h"
#include "runtime/log.h"
#include "runtime/mapped_file.h"
#include "tlm/labels.h"
#include "tlm/score_data.h"
#include "tlm/score_head.h"
#include "tlm/tlm_store.h"
#include "train/trainer.h"

// ---- tlm labels ----------------------------------------------------------------

static ArgOpt label_opts[] = {
    CLI_COMMON_OPTS,
    {"encoder", true, "the encoder (HF directory with tokenizer.json) whose WordPieces cut the words (required)", NULL},
    {"tokenizer", true, "the LLM's tokenizer.json (default: the model's own)", NULL},
    {"text", true, "plain text to label: documents separated by blank lines (with --model)", NULL},
    {"pairs", true, "JSON lines of prompt / compressed_prompt pairs (MeetingBank-LLMCompressed; no --model)", NULL},
    {"keep", true, "fraction of each chunk's words labelled keep: q, or lo,hi drawn per chunk in steps of 0.1 "
                   "(default 0.3,0.7)", NULL},
    {"chunk", true, "chunk size in encoder WordPieces (default 510: a 512-token encoder with [CLS] and [SEP])", NULL},
    {"force", true, "one-character words always kept (default '?')", NULL},
    {"limit", true, "label only the first N documents (or pairs' lines)", NULL},
    {"seed", true, "seed of the per-chunk keep fractions (default 42)", NULL},
    {"out", true, "output labels (.jsonl), written atomically (required)", NULL},
};
#define N_LABEL_OPTS ((int)(sizeof label_opts / sizeof *label_opts))

// Documents of a text file: runs of lines separated by blank lines.
static Status split_docs(char *buf, size_t len, long limit, char ***docs, int32_t **lens, int *n) {
    int cap = 64, k = 0;
    char **d = malloc((size_t)cap * sizeof *d);
    int32_t *l = malloc((size_t)cap * sizeof *l);
    if (!d || !l) return free(d), free(l), status_fail(ST_OOM, "out of memory");
    size_t i = 0;
    while (i < len && (limit < 0 || k < limit)) {
        while (i < len && (buf[i] == '\n' || buf[i] == '\r' || buf[i] == ' ' || buf[i] == '\t')) i++;
        if (i >= len) break;
        size_t s = i, e = i;
        for (;;) { // to the end of the line; stop at a blank line
            while (e < len && buf[e] != '\n') e++;
            size_t nx = e + 1, j = nx;
            while (j < len && (buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\r')) j++;
            if (e >= len || j >= len || buf[j] == '\n') break;
            e = nx;
        }
        if (k == cap) {
            cap *= 2;
            char **d2 = realloc(d, (size_t)cap * sizeof *d);
            if (d2) d = d2;
            int32_t *l2 = realloc(l, (size_t)cap * sizeof *l);
            if (l2) l = l2;
            if (!d2 || !l2) return free(d), free(l), status_fail(ST_OOM, "out of memory");
        }
        if (e - s > (size_t)INT32_MAX) return free(d), free(l), status_fail(ST_UNSUPPORTED, "a document over 2 GB");
        d[k] = buf + s, l[k] = (int32_t)(e - s), k++;
        i = e + 1;
    }
    *docs = d, *lens = l, *n = k;
    return ST_OK;
}

static Status parse_keep(const char *v, double *lo, double *hi) {
    char *end;
    *lo = strtod(v, &end);
    *hi = *lo;
    if (*end == ',') *hi = strtod(end + 1, &end);
    if (*end || !(*lo > 0 && *lo <= *hi && *hi <= 1))
        return status_fail(ST_USAGE, "--keep: expected q or lo,hi with 0 < lo <= hi <= 1, got '%s'", v);
    return ST_OK;
}

static Status run_labels(void) {
    const ArgOpt *o = label_opts;
    const int n = N_LABEL_OPTS;
    const char *enc_dir = args_get(o, n, "encoder"), *out = args_get(o, n, "out");
    const char *text = args_get(o, n, "text"), *pairs = args_get(o, n, "pairs");
    if (!enc_dir || !out) return status_fail(ST_USAGE, "tlm labels: --encoder and --out are required");
    if (!text == !pairs) return status_fail(ST_USAGE, "tlm labels: give one of --text (with --model) or --pairs");
    SurprisalOptions so = {.keep_lo = 0.3, .keep_hi = 0.7, .seed = 42, .max_pieces = 510, .force = "?"};
    long chunk = 510, limit = -1, seed = 42;
    const char *v;
    if ((v = args_get(o, n, "keep"))) TRY(parse_keep(v, &so.keep_lo, &so.keep_hi));
    if ((v = args_get(o, n, "chunk"))) TRY(args_int(v, "chunk", 8, 1 << 20, &chunk));
    if ((v = args_get(o, n, "limit"))) TRY(args_int(v, "limit", 1, 1L << 30, &limit));
    if ((v = args_get(o, n, "seed"))) TRY(args_int(v, "seed", 0, 1L << 62, &seed));
    if ((v = args_get(o, n, "force"))) so.force = v;
    so.max_pieces = (int)chunk, so.seed = (uint64_t)seed;
    Tokenizer *enc = NULL;
    TRY(tokenizer_load_for_model(&enc, enc_dir));
    LabelSet s = {0};
    Status st = ST_OK;
    if (pairs) {
        static const char *const unused[] = {"model", "keep", "seed", "force"};
        for (size_t i = 0; i < sizeof unused / sizeof *unused; i++)
            if (args_get(o, n, unused[i])) log_warn("tlm labels: --%s is not used with --pairs", unused[i]);
        st = labels_from_pairs(&s, enc, pairs, (int)chunk, limit);
    } else {
        Device dev;
        LlamaModel m = {0};
        Tokenizer *tok = NULL;
        char *buf = NULL, **docs = NULL;
        size_t blen = 0;
        int32_t *lens = NULL;
        int nd = 0;
        st = cli_setup(o, n, &dev);
        if (st == ST_OK) st = read_file_maybe_gz(text, &buf, &blen);
        if (st == ST_OK) st = split_docs(buf, blen, limit, &docs, &lens, &nd);
        if (st == ST_OK && nd == 0) st = status_fail(ST_FORMAT, "%s: no text", text);
        bool loaded = false;
        if (st == ST_OK) st = cli_load_model(o, n, &m), loaded = st == ST_OK;
        if (st == ST_OK) st = cli_load_tokenizer(o, n, &tok);
        if (st == ST_OK) {
            Progress p;
            progress_begin(&p, "documents", nd);
            st = labels_from_surprisal(&s, &m, tok, enc, (const char *const *)docs, lens, nd, &so, &p);
            progress_end(&p);
            if (st != ST_OK) st = status_wrap(st, "%s", text);
        }
        tokenizer_free(tok);
        if (loaded) llama_free(&m);
        free(docs), free(lens), free(buf);
    }
    if (st == ST_OK) st = labels_write(&s, out);
    if (st == ST_OK) {
        int64_t words = 0, kept = 0;
        for (int i = 0; i < s.n; i++)
            for (int k = 0; k < s.items[i].n_spans; k++) words++, kept += s.items[i].spans[k].label;
        log_info("%d labelled texts, %lld spans, %.1f%% keep -> %s", s.n, (long long)words,
                 words ? 100.0 * (double)kept / (double)words : 0.0, out);
    }
    labels_free(&s);
    tokenizer_free(enc);
    return st;
}


// ---- tlm score ------------------------------------------------------------------

static ArgOpt score_opts[] = {
    {"encoder", true, "HF encoder directory (BERT or MobileBERT; config.json, model.safetensors, tokenizer.json) "
                      "(required)", NULL},
    {"labels", true, "labels from `tlm labels` (.jsonl[.gz]) (required)", NULL},
    {"artifact", true, "elastic artifact (.h5): the trained score head is stored there as tlm/score", NULL},
    {"export", true, "also write the trained model as an HF BertForTokenClassification directory", NULL},
    {"out", true, "run directory: checkpoint.h5, train_log.tsv, result.json (needed for --resume)", NULL},
    {"resume", false, "continue from --out's checkpoint (the same settings)", NULL},
    {"epochs", true, "epochs (default 3)", NULL},
    {"batch", true, "sequences per optimizer step, over all ranks (default 16)", NULL},
    {"micro-batch", true, "sequences per forward/backward (default 4)", NULL},
    {"lr", true, "AdamW learning rate (default 5e-5, constant: the artifact uses no scheduler)", NULL},
    {"warmup", true, "optimizer steps of linear warm-up, then linear decay (default 0 = a constant rate)", NULL},
    {"weight-decay", true, "AdamW weight decay (default 0)", NULL},
    {"max-grad-norm", true, "gradient clipping (default 0 = none, as the artifact)", NULL},
    {"dropout", true, "hidden / attention dropout while training (default 0.1, transformers' train mode)", NULL},
    {"freeze", true, "encoder layers below this get no update (default: half of them, as the artifact)", NULL},
    {"max-len", true, "tokens per sequence with [CLS] and [SEP] (default 512, or the encoder's positions if fewer)", NULL},
    {"val", true, "fraction of the labelled texts held out for validation and F1 (default 0.1)", NULL},
    {"eval-every", true, "optimizer steps between validations (default 50; always at the end)", NULL},
    {"save-every", true, "optimizer steps between checkpoints (default 50; always at the end)", NULL},
    {"max-steps", true, "stop after this many optimizer steps (default: all epochs)", NULL},
    {"seed", true, "head initialisation, split, shuffle and dropout seed (default 42)", NULL},
    {"compat", true, "paper (default) or artifact: [CLS]/[SEP]/[PAD] labelled and padded to --max-len, no mask "
                     "(docs/deviations.md)", NULL},
    {"kill-after-step", true, "testing: the process SIGKILLs itself after this optimizer step", NULL},
    {"threads", true, "CPU threads (default: the cores other processes leave free; $ELASTILM_THREADS)", NULL},
    {"quiet", false, "no progress or info messages", NULL},
    {"help", false, "show this help", NULL},
};
#define N_SCORE_OPTS ((int)(sizeof score_opts / sizeof *score_opts))



// A number for JSON, or null when it is NaN (not measured).
static void json_num(char *buf, size_t n, double v, const char *fmt) {
    if (isnan(v)) snprintf(buf, n, "null");
    else snprintf(buf, n, fmt, v);
}


static Status run_score(const Dist *dist) {
    const ArgOpt *o = score_opts;
    const int n = N_SCORE_OPTS;
    const char *enc_dir = args_get(o, n, "encoder"), *labels = args_get(o, n, "labels");
    const char *artifact = args_get(o, n, "artifact"), *export_dir = args_get(o, n, "export");
    const char *out = args_get(o, n, "out"), *compat_s = args_get(o, n, "compat");
    if (!enc_dir || !labels) return status_fail(ST_USAGE, "tlm score: --encoder and --labels are required");
    if (!artifact && !export_dir)
        return status_fail(ST_USAGE, "tlm score: give --artifact and/or --export (where the trained head goes)");
    bool resume = args_get(o, n, "resume") != NULL;
    if (resume && !out) return status_fail(ST_USAGE, "tlm score: --resume needs --out (where the checkpoint is)");
    Compat cc;
    TRY(compat_parse(compat_s, &cc));
    bool compat = cc == COMPAT_ARTIFACT;
    TRY(cli_threads(o, n));
    log_set_quiet(args_get(o, n, "quiet") != NULL || dist->rank != 0);
    long epochs, batch, micro, warmup, freeze, max_len, eval_every, save_every, max_steps, seed, kill;
    double lr, wd, clip, dropout, val;
    TRY(args_opt_int(o, n, "epochs", 1, 1 << 20, 3, &epochs));
    TRY(args_opt_int(o, n, "batch", 1, 1 << 24, 16, &batch));
    TRY(args_opt_int(o, n, "micro-batch", 1, 1024, 4, &micro));
    TRY(args_opt_int(o, n, "warmup", 0, 1L << 40, 0, &warmup));
    TRY(args_opt_int(o, n, "freeze", 0, 1 << 20, -1, &freeze));
    TRY(args_opt_int(o, n, "max-len", 3, 1 << 20, -1, &max_len)); // default: 512, or the encoder's positions if fewer
    TRY(args_opt_int(o, n, "eval-every", 0, 1L << 40, 50, &eval_every));
    TRY(args_opt_int(o, n, "save-every", 0, 1L << 40, 50, &save_every));
    TRY(args_opt_int(o, n, "max-steps", 0, 1L << 40, 0, &max_steps));
    TRY(args_opt_int(o, n, "seed", 0, 1L << 62, 42, &seed));
    TRY(args_opt_int(o, n, "kill-after-step", 0, 1L << 40, 0, &kill));
    TRY(args_opt_float(o, n, "lr", 0, 10, 5e-5, &lr));
    TRY(args_opt_float(o, n, "weight-decay", 0, 10, 0, &wd));
    TRY(args_opt_float(o, n, "max-grad-norm", 0, 1e9, 0, &clip));
    TRY(args_opt_float(o, n, "dropout", 0, 0.999, 0.1, &dropout));
    TRY(args_opt_float(o, n, "val", 0, 0.9, 0.1, &val));
    if (batch % micro) return status_fail(ST_USAGE, "--batch (%ld) must be a multiple of --micro-batch (%ld)", batch, micro);

    Encoder m = {0};
    Tokenizer *enc = NULL;
    LabelSet ls = {0};
    ScoreData data = {0};
    DataSplit split = {0};
    TRY(encoder_load(&m, enc_dir));
    Status st = tokenizer_load_for_model(&enc, enc_dir);
    if (st == ST_OK) st = tlm_check_vocab(&m, enc, enc_dir);
    if (max_len < 0) max_len = m.cfg.max_position < 512 ? m.cfg.max_position : 512;
    if (st == ST_OK && max_len > m.cfg.max_position)
        st = status_fail(ST_USAGE, "--max-len %ld is longer than the encoder's %d positions", max_len, m.cfg.max_position);
    if (st == ST_OK) st = labels_read(&ls, labels);
    if (st == ST_OK && (st = score_data_build(&data, &ls, enc, (int)max_len, compat)) != ST_OK)
        st = status_wrap(st, "%s", labels);
    if (st == ST_OK) {
        int n_val = (int)(val * data.n);
        if (val > 0 && n_val == 0 && data.n >= 2) n_val = 1; // at least one text for validation and F1
        if (val > 0 && n_val == 0) log_warn("%s: one labelled text: nothing held out for validation", labels);
        if (data.n - n_val < 1) st = status_fail(ST_USAGE, "%s: %d labelled texts leave none to train on", labels, data.n);
        else st = split_examples(data.n, n_val, (uint64_t)seed, &split);
    }
    // a fresh 2-label token head unless the checkpoint already has one
    if (st == ST_OK && !(m.cfg.head == HEAD_TOKEN && m.cfg.num_labels == 2))
        st = encoder_set_head(&m, HEAD_TOKEN, 2, (uint64_t)seed);
    if (freeze < 0) freeze = m.cfg.n_layers / 2;
    if (st == ST_OK && freeze > m.cfg.n_layers)
        st = status_fail(ST_USAGE, "--freeze %ld: the encoder has %d layers", freeze, m.cfg.n_layers);
    static char fp[8192];
    if (st == ST_OK)
        snprintf(fp, sizeof fp,
                 "tlm-score encoder=%s labels=%s compat=%d epochs=%ld batch=%ld micro=%ld lr=%g warmup=%ld wd=%g clip=%g "
                 "dropout=%g freeze=%ld max_len=%ld val=%g max_steps=%ld seed=%ld",
                 enc_dir, labels, compat, epochs, batch, micro, lr, warmup, wd, clip, dropout, freeze, max_len, val,
                 max_steps, seed);
    TrainResult res = {0};
    EncoderTaskModel sm = {0};
    TokenF1 f1 = {0};
    if (st == ST_OK) {
        int64_t keep = 0;
        for (int64_t t = 0; t < data.n_tokens; t++) keep += data.targets[t] == 1;
        log_info("%s: %d labelled texts (%d train, %d held out), %" PRId64 " labelled tokens, %.1f%% keep", labels,
                 data.n, split.n_train, split.n_val, data.n_counted, 100.0 * (double)keep / (double)data.n_counted);
        EncoderTrainOptions eo = {.freeze_below = (int)freeze, .freeze_embeddings = false, .dropout = (float)dropout};
        st = score_train_model_init(&sm, &m, &data, &eo, (int)micro);
    }
    if (st == ST_OK) {
        OptimConfig oc = optim_defaults();
        oc.lr = (float)lr, oc.weight_decay = (float)wd, oc.max_grad_norm = (float)clip, oc.warmup = warmup;
        oc.eps = 1e-6f;            // transformers.AdamW's default (the artifact's optimizer)
        oc.constant = warmup == 0; // no scheduler
        LoopOptions lo = {.epochs = (int)epochs, .batch = (int)batch, .micro_batch = (int)micro,
                          .eval_every = (int)eval_every, .save_every = (int)save_every, .max_steps = max_steps,
                          .seed = (uint64_t)seed};
        TrainJob job = {.model = &sm.tm, .split = &split, .optim = oc, .loop = lo, .out_dir = out, .resume = resume,
                        .fingerprint = fp, .dist = dist, .after_step = kill > 0 ? cli_kill_after_step : NULL,
                        .step_ctx = &kill};
        log_info("score head on %s: %" PRId64 " trainable parameters (layers >= %ld, embeddings, head), %" PRId64
                 " steps, %d rank(s)",
                 enc_dir, sm.tm.n_params, freeze, trainer_total_steps(&job), dist->world);
        st = trainer_run(&job, &res);
    }
    encoder_task_free(&sm); // the model keeps the best parameters
    if (st == ST_OK && dist->rank == 0 && split.n_val > 0) st = score_head_f1(&m, &data, split.val, split.n_val, &f1);
    if (st == ST_OK && dist->rank == 0 && artifact) {
        char info[512];
        snprintf(info, sizeof info, "labels=%s compat=%s steps=%" PRId64 " best_val_loss=%.6f val_f1=%.4f", labels,
                 compat ? "artifact" : "paper", res.steps, res.best_val_loss, split.n_val > 0 ? f1.f1 : NAN);
        st = tlm_store_save(artifact, TLM_SCORE_GROUP, &m, enc_dir, info);
    }
    if (st == ST_OK && dist->rank == 0 && export_dir) st = encoder_save_hf(&m, export_dir, enc_dir);
    if (st == ST_OK && dist->rank == 0) {
        // JSON: values not measured (nothing held out) are null
        char fv[32], bv[32], pr[32], rc[32], ff[32], ac[32];
        bool held = split.n_val > 0;
        json_num(fv, sizeof fv, res.first_val_loss, "%.6f");
        json_num(bv, sizeof bv, res.best_val_loss, "%.6f");
        json_num(pr, sizeof pr, held ? f1.precision : NAN, "%.4f");
        json_num(rc, sizeof rc, held ? f1.recall : NAN, "%.4f");
        json_num(ff, sizeof ff, held ? f1.f1 : NAN, "%.4f");
        json_num(ac, sizeof ac, held ? f1.accuracy : NAN, "%.4f");
        char line[1024];
        snprintf(line, sizeof line,
                 "{\"steps\": %" PRId64 ", \"train_texts\": %d, \"val_texts\": %d, \"first_val_loss\": %s, "
                 "\"best_val_loss\": %s, \"best_step\": %" PRId64 ", \"last_train_loss\": %.6f, "
                 "\"val_precision\": %s, \"val_recall\": %s, \"val_f1\": %s, \"val_accuracy\": %s, "
                 "\"tokens_per_s\": %.1f}\n",
                 res.steps, split.n_train, split.n_val, fv, bv, res.best_step, res.last_train_loss, pr, rc, ff, ac,
                 res.size_per_s);
        fputs(line, stdout);
        if (out) {
            char path[4096];
            snprintf(path, sizeof path, "%s/result.json", out);
            st = write_file_atomic(path, line, strlen(line));
        }
    }
    data_split_free(&split);
    score_data_free(&data);
    labels_free(&ls);
    tokenizer_free(enc);
    encoder_free(&m);
    return st;
}

// ---- tlm scores ----------------------------------------------------------------

static ArgOpt scores_opts[] = {
    {"tlm", true, "the TLM: an artifact with tlm/score or an HF token-classification encoder directory (required)",
     NULL},
    {"text", true, "the text to score", NULL},
    {"file", true, "read the text from this file instead", NULL},
    {"threads", true, "CPU threads (default: the cores other processes leave free; $ELASTILM_THREADS)", NULL},
    {"help", false, "show this help", NULL},
};
#define N_SCORES_OPTS ((int)(sizeof scores_opts / sizeof *scores_opts))

// One line per encoder piece: its byte span, the score head's two logits and p(keep).
static Status run_scores(void) {
    const ArgOpt *o = scores_opts;
    const int n = N_SCORES_OPTS;
    const char *tlm = args_get(o, n, "tlm"), *text = args_get(o, n, "text"), *file = args_get(o, n, "file");
    if (!tlm) return status_fail(ST_USAGE, "tlm scores: --tlm is required");
    if (!text == !file) return status_fail(ST_USAGE, "tlm scores: give one of --text or --file");
    TRY(cli_threads(o, n));
    char *buf = NULL;
    if (file) TRY(read_text_file(file, &buf, NULL));
    const char *t = file ? buf : text;
    Encoder m;
    Tokenizer *enc = NULL;
    EncoderSession *s = NULL;
    TokenList l = {0};
    float *lg = NULL;
    Status st = tlm_open(tlm, &m, &enc);
    bool have_m = st == ST_OK;
    int max_len = have_m && m.cfg.max_position < 512 ? m.cfg.max_position : 512;
    if (st == ST_OK) st = tokenizer_encode(enc, t, strlen(t), false, &l);
    if (st == ST_OK) st = encoder_session_new(&s, &m, max_len);
    if (st == ST_OK && !(lg = malloc((l.n ? l.n : 1) * 2 * sizeof *lg))) st = status_fail(ST_OOM, "out of memory");
    if (st == ST_OK) st = score_head_logits(s, &m, enc, &l, max_len, lg);
    if (st == ST_OK) {
        printf("piece\tstart\tend\tlogit_drop\tlogit_keep\tp_keep\n");
        for (size_t i = 0; i < l.n; i++) {
            const char *piece = tokenizer_id_to_token(enc, l.ids[i]);
            double p = 1.0 / (1.0 + exp((double)lg[2 * i] - (double)lg[2 * i + 1]));
            printf("%s\t%d\t%d\t%.6g\t%.6g\t%.6f\n", piece ? piece : "?", l.starts[i], l.ends[i], lg[2 * i],
                   lg[2 * i + 1], p);
        }
    }
    free(lg);
    token_list_free(&l);
    if (s) encoder_session_free(s);
    tokenizer_free(enc);
    if (have_m) encoder_free(&m);
    free(buf);
    return st;
}

// ---- dispatch ------------------------------------------------------------------

int cmd_tlm(int argc, char **argv) {
    const char *sub = argc > 0 ? argv[0] : NULL;
    if (!sub || !strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        fprintf(sub ? stdout : stderr,
                "usage: elastilm tlm <labels|score|scores|decision-labels|decision> [options]\n\n"
                "  labels   keep/drop labels for the score head, from the target LLM's self-information (--text)\n"
                "           or from (prompt, compressed prompt) pairs (--pairs)\n"
                "  score    train the score head (token classification) on an encoder; store it in the artifact\n"
                "  scores   the score head's keep logits and probability for every piece of a text\n"
                "  decision-labels  correctness of held-out questions at every (prompt ratio, model ratio): the\n"
                "           decision head's labels (the target LLM's levels and the score head)\n"
                "  decision train the decision head (prompt and model ratio per request and SLO); store it in the "
                "artifact\n\n"
                "'elastilm tlm <sub> --help' lists its options.\n");
        return sub ? 0 : 2;
    }
    if (!strcmp(sub, "labels")) {
        Status st = args_parse(argc - 1, argv + 1, label_opts, N_LABEL_OPTS, "tlm labels");
        if (st != ST_OK) return cli_fail(st);
        if (args_get(label_opts, N_LABEL_OPTS, "help")) {
            args_print_help("tlm labels", "keep/drop labels for the TLM's score head", label_opts, N_LABEL_OPTS);
            return 0;
        }
        st = run_labels();
        return st == ST_OK ? 0 : cli_fail(st);
    }
    if (!strcmp(sub, "scores")) {
        Status st = args_parse(argc - 1, argv + 1, scores_opts, N_SCORES_OPTS, "tlm scores");
        if (st != ST_OK) return cli_fail(st);
        if (args_get(scores_opts, N_SCORES_OPTS, "help")) {
            args_print_help("tlm scores", "the score head's keep logits and probability for every piece of a text",
                            scores_opts, N_SCORES_OPTS);
            return 0;
        }
        st = run_scores();
        return st == ST_OK ? 0 : cli_fail(st);
    }
    if (!strcmp(sub, "score")) {
        Status st = args_parse(argc - 1, argv + 1, score_opts, N_SCORE_OPTS, "tlm score");
        if (st != ST_OK) return cli_fail(st);
        if (args_get(score_opts, N_SCORE_OPTS, "help")) {
            args_print_help("tlm score", "train the TLM's score head (keep/drop per token) on an encoder", score_opts,
                            N_SCORE_OPTS);
            return 0;
        }
        Dist dist;
        st = dist_init(&dist);
        if (st == ST_OK) st = run_score(&dist);
        int rc = st == ST_OK ? 0 : cli_fail(st);
        dist_finalize();
        return rc;
    }
    if (!strcmp(sub, "decision-labels") || !strcmp(sub, "decision")) return cmd_tlm_decision(sub, argc - 1, argv + 1);
    return cli_fail(status_fail(ST_USAGE, "tlm: unknown subcommand '%s' (labels, score, scores, decision-labels or "
                                          "decision)", sub));
}
