// elastilm eval: accuracy of a model on one dataset, scored as the artifact
// scores (ELASTICLLM/<DS>.py), with per-question predictions and the
// artifact's result line.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "eval/eval.h"
#include "eval/serve.h"
#include "models/llama.h"
#include "runtime/datadir.h"
#include "runtime/log.h"
#include "runtime/mapped_file.h"
#include "text/tokenizer.h"
#include "tlm/prompt_compress.h"
#include "tlm/tlm_store.h"

typedef struct {
    DatasetId ds;
    Metric metric;
    long limit;
    bool share_prefix, skip_bad;
    const char *model_path, *model_name, *data, *split, *predictions, *results_dir;
    char name_buf[256]; // the default model name
    const char *compress, *tlm, *cl100k; // --compress METHOD --tlm PATH [--cl100k FILE]
    double prompt_ratio;                 // --prompt-ratio (1 = no compression)
} EvalArgs;

static Status parse_eval_args(const ArgOpt *opts, int n, EvalArgs *a) {
    memset(a, 0, sizeof *a);
    const char *ds = args_get(opts, n, "dataset");
    if (!ds) return status_fail(ST_USAGE, "eval: --dataset is required (ARC_E, OBQA, PIQA, SCIQ, Octopus, LlamaTouch)");
    TRY(dataset_parse_name(ds, &a->ds));
    TRY(eval_parse_metric(args_get(opts, n, "metric"), &a->metric));
    a->limit = -1;
    if (args_get(opts, n, "limit")) TRY(args_int(args_get(opts, n, "limit"), "limit", 1, 1L << 30, &a->limit));
    a->share_prefix = !args_get(opts, n, "no-share");
    a->skip_bad = args_get(opts, n, "skip-bad") != NULL;
    a->model_path = args_get(opts, n, "model");
    a->model_name = args_get(opts, n, "model-name");
    a->data = args_get(opts, n, "data");
    a->split = args_get(opts, n, "split");
    a->predictions = args_get(opts, n, "predictions");
    a->results_dir = args_get(opts, n, "results");
    if (!a->results_dir) a->results_dir = "results";
    a->compress = args_get(opts, n, "compress");
    a->tlm = args_get(opts, n, "tlm");
    a->cl100k = args_get(opts, n, "cl100k");
    a->prompt_ratio = 1.0;
    const char *pr = args_get(opts, n, "prompt-ratio");
    if (pr) TRY(args_float(pr, "prompt-ratio", 0, 1, &a->prompt_ratio));
    if (pr && !(a->prompt_ratio > 0)) return status_fail(ST_USAGE, "--prompt-ratio: expected 0 < p <= 1, got %s", pr);
    if (a->compress && !(a->tlm && pr))
        return status_fail(ST_USAGE, "eval: compressing the system prompt takes --compress METHOD, --tlm PATH and "
                                     "--prompt-ratio p together");
    if (a->tlm && !a->compress && !args_get(opts, n, "mode"))
        return status_fail(ST_USAGE, "eval: --tlm goes with --compress METHOD --prompt-ratio p, or with --mode Ours");
    if (pr && !a->compress) return status_fail(ST_USAGE, "eval: --prompt-ratio needs --compress and --tlm");
    if (!a->model_name) { // the model file or folder name, without .gguf
        const char *base = strrchr(a->model_path, '/');
        snprintf(a->name_buf, sizeof a->name_buf, "%s", base && base[1] ? base + 1 : a->model_path);
        size_t len = strlen(a->name_buf);
        if (len > 5 && strcmp(a->name_buf + len - 5, ".gguf") == 0) a->name_buf[len - 5] = '\0';
        a->model_name = a->name_buf;
    }
    return ST_OK;
}

// JSON string escaping for the predictions file.
static void json_escape(FILE *fp, const char *s) {
    fputc('"', fp);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(fp, "\\%c", c);
        else if (c < 0x20) fprintf(fp, "\\u%04x", c);
        else fputc(c, fp);
    }
    fputc('"', fp);
}

typedef struct {
    FILE *fp;       // the predictions being written (temporary name)
    char tmp[1100];
} PredFile;

// Reads the predictions a killed run left in the temporary file: the longest
// run of complete records whose ids are the dataset's first ones, in order.
static Status preds_recover(const char *tmp, const McDataset *d, size_t *done, size_t *right, size_t *good_bytes) {
    *done = *right = *good_bytes = 0;
    char *text = NULL;
    size_t len = 0;
    TRY(read_text_file(tmp, &text, &len));
    for (size_t at = 0; at < len && *done < d->n;) {
        char *nl = memchr(text + at, '\n', len - at);
        if (!nl) break; // a torn last line
        json_t *rec = json_loadb(text + at, (size_t)(nl - text - (long)at), 0, NULL);
        const char *id = json_string_value(json_object_get(rec, "id"));
        bool ok = id && strcmp(id, d->items[*done].id) == 0 && json_is_boolean(json_object_get(rec, "correct"));
        if (ok) *right += json_is_true(json_object_get(rec, "correct"));
        json_decref(rec);
        if (!ok) break;
        (*done)++;
        at = (size_t)(nl - text) + 1;
        *good_bytes = at;
    }
    free(text);
    return ST_OK;
}

// Opens the predictions' temporary file; a run killed earlier is resumed from it.
static Status preds_open(PredFile *p, const char *path, const McDataset *d, size_t *done, size_t *right) {
    p->fp = NULL;
    *done = *right = 0;
    if (!path) return ST_OK;
    snprintf(p->tmp, sizeof p->tmp, "%s.tmp", path);
    struct stat sb;
    if (stat(p->tmp, &sb) == 0) {
        size_t good;
        TRY(preds_recover(p->tmp, d, done, right, &good));
        if (truncate(p->tmp, (off_t)good) != 0) return status_fail(ST_IO, "%s: cannot truncate", p->tmp);
        if (*done) log_info("resuming after %zu questions recorded in %s", *done, p->tmp);
    }
    p->fp = fopen(p->tmp, "a");
    return p->fp ? ST_OK : status_fail(ST_IO, "%s: cannot create", p->tmp);
}

// d: the policy's decision for the question (NULL without a policy): its
// prompt and model ratios are recorded with the prediction.
static void preds_write(PredFile *p, const McQuestion *q, const float *score, int pred, bool correct, const Decision *d) {
    if (!p->fp) return;
    fprintf(p->fp, "{\"id\": ");
    json_escape(p->fp, q->id);
    fprintf(p->fp, ", \"pred\": %d, \"answer\": %d, \"correct\": %s, ", pred, q->answer, correct ? "true" : "false");
    if (d) {
        fprintf(p->fp, "\"prompt_ratio\": %g, ", d->prompt_ratio);
        if (d->model_ratio > 0) fprintf(p->fp, "\"model_ratio\": %g, ", d->model_ratio);
    }
    fprintf(p->fp, "\"scores\": [");
    for (int i = 0; i < q->n_choices; i++) fprintf(p->fp, i ? ", %.7g" : "%.7g", score[i]);
    fprintf(p->fp, "]}\n");
    fflush(p->fp); // a killed run resumes from what reached the file
}

static Status preds_close(PredFile *p, const char *path, bool ok) {
    if (!p->fp) return ST_OK;
    bool good = fflush(p->fp) == 0;
    good = fclose(p->fp) == 0 && good;
    if (!good) return status_fail(ST_IO, "%s: write failed", p->tmp);
    if (!ok) return ST_OK; // kept: a rerun resumes from it
    return rename(p->tmp, path) == 0 ? ST_OK : status_fail(ST_IO, "%s: cannot rename into place", path);
}

// The artifact's result line, "<DS> <model> <mode> <prefill SLO> <decode SLO> <acc>"
// (with --level r: "<DS> <model> Level-r 1.0 1.0 <acc>", one level as it is, never
// mixed up with a policy's lines), appended to <results>/<model>_<DS>.txt.
static Status write_result_line(const EvalArgs *a, const char *mode, double prefill, double decode, double acc) {
    char num[32], pre[32], dec[32], line[512], path[1200];
    cli_py_float(acc, num, sizeof num);
    cli_py_float(prefill, pre, sizeof pre);
    cli_py_float(decode, dec, sizeof dec);
    snprintf(line, sizeof line, "%s %s %s %s %s %s\n", dataset_name(a->ds), a->model_name, mode, pre, dec, num);
    mkdir(a->results_dir, 0777);
    snprintf(path, sizeof path, "%s/%s_%s.txt", a->results_dir, a->model_name, dataset_name(a->ds));
    return cli_append_line(path, line);
}

// --compress: the system prompt of every question compressed to --prompt-ratio
// by the TLM (only the system prompt; the query and the choices are kept).
typedef struct {
    PromptCompressor *pc;
    PromptMethod method;
    bool compat;
    Encoder tlm;
    bool have_tlm;
    Tokenizer *enc, *cl100k;
    long S;              // LLM tokens of the system prompt
    double kept_tokens;  // LLM tokens of the compressed system prompts, summed
} Compression;

static void compression_close(Compression *c) {
    prompt_compressor_free(c->pc);
    tokenizer_free(c->cl100k);
    tokenizer_free(c->enc);
    if (c->have_tlm) encoder_free(&c->tlm);
    memset(c, 0, sizeof *c);
}

static Status compression_open(Compression *c, const EvalArgs *a, const Tokenizer *llm_tok, Compat compat) {
    memset(c, 0, sizeof *c);
    TRY(prompt_method_parse(a->compress, &c->method));
    c->compat = compat == COMPAT_ARTIFACT && c->method == PC_SCORE;
    Status st = tlm_open(a->tlm, &c->tlm, &c->enc);
    c->have_tlm = st == ST_OK;
    if (st == ST_OK && c->method == PC_LLMLINGUA2) {
        char path[4096];
        cli_cl100k_path(a->cl100k, path, sizeof path);
        st = tokenizer_load_tiktoken(&c->cl100k, path);
        if (st != ST_OK) st = status_wrap(st, "llmlingua2 weighs words by cl100k_base (--cl100k FILE, or datasets/fetch.sh tiktoken)");
    }
    PromptCompressorConfig cfg = {.method = c->method, .compat = c->compat, .tlm = &c->tlm, .enc = c->enc,
                                  .llm_tok = llm_tok, .cl100k = c->cl100k, .seed = 42, .max_len = 512};
    if (st == ST_OK) st = prompt_compressor_new(&c->pc, &cfg);
    if (st != ST_OK) compression_close(c);
    return st;
}

static Status compress_system(Compression *c, const EvalPrompt *p, const McQuestion *q, double ratio, uint64_t request,
                              char **sys) {
    long n = 0;
    TRY(prompt_compress_request(c->pc, p, q->question, (const char *const *)q->choices, q->n_choices, ratio, request,
                                sys, &n));
    c->S = prompt_system_tokens(c->pc); // counted once per system prompt (cached)
    c->kept_tokens += (double)n;
    return ST_OK;
}

static Status run_eval(const ArgOpt *opts, int n_opts, const EvalArgs *a, Device dev) {
    char path[1200], artifact_dir[1100];
    datadir_set(args_get(opts, n_opts, "data-dir"));
    const char *data_origin, *data_dir = datadir_get(&data_origin);
    snprintf(artifact_dir, sizeof artifact_dir, "%s/elastilm-artifact", data_dir);
    if (!a->data) TRY(dataset_find_default(a->ds, a->split, path, sizeof path));
    else snprintf(path, sizeof path, "%s", a->data);
    McDataset data;
    TRY(dataset_load(&data, a->ds, path, a->skip_bad));
    LlamaModel m;
    Tokenizer *tok = NULL;
    EvalPrompt prompt = {0};
    Server sv = {0};
    bool model_ok = false;
    LevelView lv = {0};
    const LlamaView *view = NULL;
    CliPolicy pol = {0};
    const char *level = args_get(opts, n_opts, "level");
    Status st = ST_OK;
    if (level && (args_get(opts, n_opts, "mode") || args_get(opts, n_opts, "prefill-slo") ||
                  args_get(opts, n_opts, "decode-slo")))
        st = status_fail(ST_USAGE, "--level runs one level as it is; with --mode and SLOs, the policy picks the view");
    if (st == ST_OK && level) { // one elastic level, as elasticize and lora made it
        st = cli_load_model(opts, n_opts, &m);
        model_ok = st == ST_OK;
        if (st == ST_OK) st = cli_level_view(opts, n_opts, &m, &lv, &view);
    } else if (st == ST_OK) { // a policy under an SLO (full by default)
        st = cli_policy_open(opts, n_opts, &m, &pol);
        model_ok = st == ST_OK;
    }
    if (st == ST_OK) st = tokenizer_load_for_model(&tok, a->model_path);
    Compression cz = {0};
    Compat cz_compat = COMPAT_PAPER; // --compat applies to the score method's selection too (with --level as well)
    if (st == ST_OK && a->compress) st = compat_parse(args_get(opts, n_opts, "compat"), &cz_compat);
    if (st == ST_OK && a->compress) st = compression_open(&cz, a, tok, cz_compat);
    if (st == ST_OK) st = eval_prompt_build(&prompt, a->ds, artifact_dir);
    if (st == ST_IO) // the few-shot examples come from the bundled data folder
        st = status_wrap(st, "data folder %s from %s (set it with --data-dir DIR or $ELASTILM_DATA)", data_dir,
                         data_origin);
    if (st == ST_OK)
        st = server_init(&sv, &m, tok, dev, a->share_prefix, 8192, pol.open ? pol.policy : NULL, pol.state);
    if (st == ST_OK && view) st = server_set_view(&sv, view);
    double sum_p = 0, sum_r = 0; // the policy's chosen ratios, summed (r over elastic levels only)
    long n_decided = 0, n_levels = 0;
    PredFile preds = {0};
    size_t n = a->limit > 0 && (size_t)a->limit < data.n ? (size_t)a->limit : data.n, right = 0, done = 0;
    if (st == ST_OK) st = preds_open(&preds, a->predictions, &data, &done, &right);
    if (done > n) done = n;
    Progress bar;
    progress_begin(&bar, dataset_name(a->ds), (long)n);
    progress_step(&bar, (long)done);
    double t0 = time_now();
    for (size_t i = done; st == ST_OK && i < n; i++) {
        const McQuestion *q = &data.items[i];
        Decision d = {0};
        if (pol.open) { // the policy's view for this request; a new decision drops the cached prefix
            PolicyRequest rq = {.system = prompt.system, .query = prompt.query, .question = q->question,
                                .choices = (const char *const *)q->choices, .n_choices = q->n_choices};
            bool first = !sv.decided[0];
            st = server_decide(&sv, &rq, &pol.slo, &d, NULL);
            if (st == ST_OK && d.compress && cz.pc)
                st = status_fail(ST_USAGE, "--mode %s compresses the prompt itself: drop --compress", pol.policy->name);
            if (st != ST_OK) break;
            if (first) log_info("%s at SLO (%g, %g): %s", pol.policy->name, pol.slo.prefill, pol.slo.decode, d.what);
            sum_p += d.prompt_ratio, n_decided++;
            if (d.model_ratio > 0) sum_r += d.model_ratio, n_levels++;
        }
        EvalResult r;
        EvalPrompt qp = prompt; // the system prompt compressed for this question, or as it is
        char *sys = NULL;
        if (cz.pc) st = compress_system(&cz, &prompt, q, a->prompt_ratio, (uint64_t)i, &sys);
        else st = server_transform(&d, &prompt, q, (uint64_t)i, &sys);
        if (st != ST_OK) {
            st = status_wrap(st, "%s (question %s)", q->where, q->id);
            break;
        }
        if (sys) qp.system = sys;
        st = eval_question(&sv.scorer, &qp, a->ds, q, a->metric, &r);
        free(sys);
        if (st != ST_OK) {
            st = status_wrap(st, "%s (question %s)", q->where, q->id);
            break;
        }
        right += r.correct;
        preds_write(&preds, q, r.scores, r.pred, r.correct, pol.open ? &d : NULL);
        free(r.scores);
        progress_step(&bar, 1);
    }
    progress_end(&bar);
    double secs = time_now() - t0;
    Status pst = preds_close(&preds, a->predictions, st == ST_OK);
    if (st == ST_OK) st = pst;
    if (st == ST_OK) {
        double acc = n ? (double)right / (double)n : 0.0;
        printf("%s %s: accuracy %.4f (%zu/%zu, metric %s%s), %.1fs, %.1f questions/s, %.0f tokens/s%s\n", dataset_name(a->ds),
               a->model_name, acc, right, n, eval_metric_name(a->metric), a->ds == DS_OCTOPUS ? ", top-5" : "", secs,
               (double)(n - done) / secs, (double)sv.scorer.tokens_run / secs, a->share_prefix ? "" : " (no prefix sharing)");
        if (data.n_bad) printf("skipped %zu malformed records (--skip-bad)\n", data.n_bad);
        if (pol.open && sv.decided[0]) printf("view: %s\n", sv.decided);
        if (pol.open && n_levels)
            printf("decisions: mean prompt ratio %.3f, mean model ratio %.3f over %ld questions\n",
                   sum_p / (double)n_decided, sum_r / (double)n_levels, n_decided);
        if (cz.pc)
            printf("system prompt: %s at p = %g, %.1f of %ld LLM tokens kept on average\n",
                   prompt_method_name(cz.method), a->prompt_ratio, n > done ? cz.kept_tokens / (double)(n - done) : 0.0,
                   cz.S);
        if ((a->limit < 0 || args_get(opts, n_opts, "results")) && a->metric == METRIC_ARTIFACT) {
            // a compressed system prompt is part of the mode: "<mode>+<method>[-artifact]:<p>"
            char mode[128];
            if (level) snprintf(mode, sizeof mode, "Level-%g", strtod(level, NULL)); // a fixed level, not a policy
            else snprintf(mode, sizeof mode, "%s", pol.policy->name);
            if (cz.pc)
                snprintf(mode + strlen(mode), sizeof mode - strlen(mode), "+%s%s:%g", prompt_method_name(cz.method),
                         cz.compat ? "-artifact" : "", a->prompt_ratio);
            if (level) st = write_result_line(a, mode, 1.0, 1.0, acc);
            else st = write_result_line(a, mode, pol.slo.prefill, pol.slo.decode, acc);
        }
    }
    server_free(&sv);
    compression_close(&cz);
    eval_prompt_free(&prompt);
    tokenizer_free(tok);
    level_view_free(&lv);
    cli_policy_close(&pol);
    if (model_ok) llama_free(&m);
    dataset_free(&data);
    return st;
}

int cmd_eval(int argc, char **argv) {
    ArgOpt opts[] = {CLI_COMMON_OPTS,
                     {"dataset", true, "ARC_E, OBQA, PIQA, SCIQ, Octopus or LlamaTouch (required)", NULL},
                     {"data", true, "the dataset file (default: the fetched copy, or the bundled one for Octopus/LlamaTouch)", NULL},
                     {"data-dir", true, "the bundled data folder (default: $ELASTILM_DATA, else the built-in one)", NULL},
                     {"split", true, "validation|test (ARC_E), val|dev (Octopus), test|dev (LlamaTouch)", NULL},
                     {"limit", true, "score only the first N questions (a result line only with an explicit --results)", NULL},
                     {"metric", true, "artifact (mean log-prob, default), acc (sum) or acc_norm (sum / bytes)", NULL},
                     {"no-share", false, "score every candidate from scratch (no shared-prefix KV cache)", NULL},
                     {"predictions", true, "write per-question predictions here (JSONL); a killed run resumes from them", NULL},
                     {"results", true, "folder of the result files (default results)", NULL},
                     {"model-name", true, "model name in the result line and file (default: from --model)", NULL},
                     {"skip-bad", false, "skip malformed records (counted) instead of stopping", NULL},
                     {"compress", true, "compress each question's system prompt: score (the TLM's score head), random "
                                        "or llmlingua2 (with --tlm and --prompt-ratio)", NULL},
                     {"prompt-ratio", true, "prompt ratio p in (0, 1] for --compress (sys_ratio = max(0, ((S+Q)p - Q)/S))",
                      NULL},
                     {"tlm", true, "the TLM: an artifact with tlm/score (and tlm/decision for --mode Ours; default "
                                   "--artifact) or, for --compress, an HF token-classification encoder directory",
                      NULL},
                     {"cl100k", true, "cl100k_base.tiktoken for --compress llmlingua2 (default: from datasets/fetch.sh)",
                      NULL},
                     CLI_POLICY_OPTS};
    int n = (int)(sizeof opts / sizeof *opts);
    Status st = args_parse(argc, argv, opts, n, "eval");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(opts, n, "help")) {
        args_print_help("eval", "Multiple-choice accuracy on a dataset, scored as the ElastiLM artifact scores.", opts, n);
        return 0;
    }
    Device dev;
    EvalArgs a;
    if ((st = cli_setup(opts, n, &dev)) != ST_OK || (st = parse_eval_args(opts, n, &a)) != ST_OK) return cli_fail(st);
    st = run_eval(opts, n, &a, dev);
    return st == ST_OK ? 0 : cli_fail(st);
}
