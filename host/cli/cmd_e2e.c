// elastilm e2e: a trace replayed through one mode (e2e/replay.h), with the
// artifact's result line (res_<model>.txt), per-request records and a CSV
// summary row; elastilm profile: the full model's latency on this device
// (e2e/profile.h), stored in the artifact.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "dist/dist.h"
#include "e2e/profile.h"
#include "e2e/replay.h"
#include "ops/ops.h"
#include "runtime/datadir.h"
#include "runtime/log.h"
#include "runtime/mapped_file.h"

#define PROFILE_LENGTHS "64,128,256,512,1024,2048"
// The scorer's longest candidate (eval's too): the profile measures in a session of that size.
#define SCORER_TOKENS 8192

// "64,128,..." into ascending lengths, each at most max_tokens (longer ones are dropped with a note).
static Status parse_lengths(const char *text, int max_tokens, int *out, int *n) {
    *n = 0;
    const char *p = text;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || (*end && *end != ',') || *n == PROFILE_MAX_LENGTHS)
            return status_fail(ST_USAGE, "--lengths: expected up to %d positive integers separated by commas, got '%s'",
                               PROFILE_MAX_LENGTHS, text);
        if (*n && v <= out[*n - 1]) return status_fail(ST_USAGE, "--lengths must ascend, got '%s'", text);
        if (v <= max_tokens) out[(*n)++] = (int)v;
        else log_info("profile: %ld tokens exceed the model's %d positions: not measured", v, max_tokens);
        p = *end ? end + 1 : end;
    }
    return *n ? ST_OK : status_fail(ST_USAGE, "--lengths: no length within the model's %d positions", max_tokens);
}

// The full model's profile on this device: from the artifact when it holds one
// for this device, else measured now (and stored when store is set).
// tpot_context 0: 256 tokens, or half the model's positions when fewer.
static Status get_profile(const LlamaModel *m, Device dev, const char *artifact, const char *lengths, long reps,
                          long tpot_context, bool store, bool reuse, LatencyProfile *p) {
    char key[160], desc[256];
    profile_device(dev, cli_weights(), ops_get_threads(), key, sizeof key, desc, sizeof desc);
    bool found = false;
    if (artifact && reuse) TRY(profile_load(artifact, key, p, &found));
    if (found) return ST_OK;
    int len[PROFILE_MAX_LENGTHS], n = 0;
    TRY(parse_lengths(lengths, m->cfg.max_position, len, &n));
    if (tpot_context == 0) tpot_context = m->cfg.max_position / 2 < 256 ? m->cfg.max_position / 2 : 256;
    CausalLM lm = causal_lm_llama(m);
    log_info("profile: measuring the full model on %s", desc);
    TRY(profile_measure(&lm, dev, m->cfg.max_position, len, n, (int)reps, (int)tpot_context, SCORER_TOKENS, p));
    snprintf(p->key, sizeof p->key, "%s", key);
    snprintf(p->device, sizeof p->device, "%s", desc);
    if (store && artifact) TRY(profile_store(artifact, p));
    return ST_OK;
}

int cmd_profile(int argc, char **argv) {
    ArgOpt opts[] = {CLI_COMMON_OPTS,
                     {"lengths", true, "prompt lengths in tokens, ascending (default " PROFILE_LENGTHS ")", NULL},
                     {"reps", true, "prefills per length, the median kept (default 3)", NULL},
                     {"tpot-context", true, "tokens in the KV cache for the decode steps (default 256, or half the model's positions)", NULL},
                     {"if-missing", false, "measure only when the artifact holds no profile for this device yet", NULL}};
    int n = (int)(sizeof opts / sizeof *opts);
    Status st = args_parse(argc, argv, opts, n, "profile");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(opts, n, "help")) {
        args_print_help("profile", "The full model's TTFT by prompt length and TPOT on this device (the reference "
                                   "of the SLO fractions); stored in --artifact under profile/<device>.", opts, n);
        return 0;
    }
    Device dev;
    long reps = 3, ctx = 0;
    if ((st = cli_setup(opts, n, &dev)) != ST_OK) return cli_fail(st);
    if ((st = args_opt_int(opts, n, "reps", 1, 1000, 3, &reps)) != ST_OK ||
        (st = args_opt_int(opts, n, "tpot-context", 1, 1 << 20, 0, &ctx)) != ST_OK)
        return cli_fail(st);
    if (args_get(opts, n, "level")) return cli_fail(status_fail(ST_USAGE, "profile measures the full model: drop --level"));
    if (args_get(opts, n, "if-missing") && !args_get(opts, n, "artifact"))
        return cli_fail(status_fail(ST_USAGE, "profile: --if-missing looks in --artifact"));
    LlamaModel m;
    if ((st = llama_load(&m, args_get(opts, n, "model"))) != ST_OK) return cli_fail(st);
    st = cli_place_model(&m);
    const char *lengths = args_get(opts, n, "lengths");
    LatencyProfile p;
    if (st == ST_OK)
        st = get_profile(&m, dev, args_get(opts, n, "artifact"), lengths ? lengths : PROFILE_LENGTHS, reps, ctx, true,
                         args_get(opts, n, "if-missing") != NULL, &p);
    if (st == ST_OK) {
        profile_print(&p);
        if (args_get(opts, n, "artifact")) printf("in %s as profile/%s\n", args_get(opts, n, "artifact"), p.key);
    }
    llama_free(&m);
    return st == ST_OK ? 0 : cli_fail(st);
}

// ---- e2e -------------------------------------------------------------------------

typedef struct {
    const char *trace, *results, *model_name;
    char name_buf[256], label[128]; // the model's name; "alpha=<a>" or "trace=<file>"
    long limit, kill_after;
    bool measure, arrivals, share;
    double ttft_ms, tpot_ms;        // fixed budgets (0: SLO fractions of the profile)
} E2eArgs;

// The skew from a file named trace_<alpha>.json (the artifact's names).
static void trace_label(const char *path, const char *alpha, char *buf, size_t n) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (alpha) {
        snprintf(buf, n, "alpha=%s", alpha);
        return;
    }
    size_t len = strlen(base);
    if (strncmp(base, "trace_", 6) == 0 && len > 11 && strcmp(base + len - 5, ".json") == 0) {
        char num[64], *end;
        snprintf(num, sizeof num, "%.*s", (int)(len - 11), base + 6);
        strtod(num, &end);
        if (end != num && !*end) {
            snprintf(buf, n, "alpha=%s", num);
            return;
        }
    }
    snprintf(buf, n, "trace=%s", base);
}

static Status parse_e2e_args(const ArgOpt *o, int n, E2eArgs *a) {
    memset(a, 0, sizeof *a);
    a->trace = args_get(o, n, "trace");
    if (!a->trace) return status_fail(ST_USAGE, "e2e: --trace FILE is required (elastilm trace gen, or the artifact's)");
    if (args_get(o, n, "prefill-slo") || args_get(o, n, "decode-slo"))
        return status_fail(ST_USAGE, "e2e: every request carries its own SLO: drop --prefill-slo/--decode-slo");
    if (args_get(o, n, "level")) return status_fail(ST_USAGE, "e2e: the mode picks the view: drop --level");
    const char *alpha = args_get(o, n, "alpha");
    double av;
    if (alpha) TRY(args_float(alpha, "alpha", -100, 100, &av));
    trace_label(a->trace, alpha, a->label, sizeof a->label);
    TRY(args_opt_int(o, n, "limit", 1, 1L << 30, 0, &a->limit));
    TRY(args_opt_int(o, n, "kill-after", 1, 1L << 30, 0, &a->kill_after));
    a->results = args_get(o, n, "results");
    if (!a->results) a->results = "results";
    const char *lat = args_get(o, n, "latency");
    if (lat && strcmp(lat, "measure") && strcmp(lat, "none"))
        return status_fail(ST_USAGE, "--latency: expected measure or none, got '%s'", lat);
    a->measure = !lat || !strcmp(lat, "measure");
    a->arrivals = args_get(o, n, "arrivals") != NULL;
    a->share = !args_get(o, n, "no-share");
    TRY(args_opt_float(o, n, "ttft-ms", 0, 1e9, 0, &a->ttft_ms));
    TRY(args_opt_float(o, n, "tpot-ms", 0, 1e9, 0, &a->tpot_ms));
    if ((a->ttft_ms > 0) != (a->tpot_ms > 0))
        return status_fail(ST_USAGE, "e2e: fixed budgets take both --ttft-ms and --tpot-ms");
    if (!a->measure && (a->arrivals || a->ttft_ms > 0))
        return status_fail(ST_USAGE, "e2e: --arrivals and budgets need measured latency (drop --latency none)");
    a->model_name = args_get(o, n, "model-name");
    if (!a->model_name) { // the model file or folder name, without .gguf
        const char *path = args_get(o, n, "model"), *base = strrchr(path, '/');
        snprintf(a->name_buf, sizeof a->name_buf, "%s", base && base[1] ? base + 1 : path);
        size_t len = strlen(a->name_buf);
        if (len > 5 && strcmp(a->name_buf + len - 5, ".gguf") == 0) a->name_buf[len - 5] = '\0';
        a->model_name = a->name_buf;
    }
    return ST_OK;
}

static Status mkdirs(const char *path) {
    char buf[1200];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0777);
            *p = '/';
        }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return status_fail(ST_IO, "%s: cannot create the folder", path);
    return ST_OK;
}

#define CSV_HEADER "alpha,mode,requests,right,accuracy,attainment,ttft_attainment,tpot_attainment,req_per_s," \
                   "mean_ttft_ms,p50_ttft_ms,p99_ttft_ms,mean_tpot_ms,tlm_share,prefill_share,score_share,threads,device\n"

// Replaces the row of (label, mode) in summary.csv, or appends it.
static Status write_summary_row(const char *path, const char *label, const char *mode, const char *row) {
    char *old = NULL;
    size_t len = 0;
    struct stat sb;
    if (stat(path, &sb) == 0) TRY(read_text_file(path, &old, &len));
    char key[300];
    snprintf(key, sizeof key, "%s,%s,", label, mode);
    size_t cap = len + strlen(row) + sizeof CSV_HEADER, at = 0;
    char *out = malloc(cap);
    if (!out) {
        free(old);
        return status_fail(ST_OOM, "out of memory");
    }
    if (!old || strncmp(old, CSV_HEADER, strlen(CSV_HEADER)) != 0) {
        if (old && len) log_warn("%s: not a summary of elastilm e2e (header differs): rewritten", path);
        len = 0;
        memcpy(out, CSV_HEADER, strlen(CSV_HEADER));
        at = strlen(CSV_HEADER);
    }
    for (size_t p = 0; p < len;) { // the old rows but this one
        char *nl = memchr(old + p, '\n', len - p);
        size_t e = nl ? (size_t)(nl - old) + 1 : len;
        if (strncmp(old + p, key, strlen(key)) != 0) memcpy(out + at, old + p, e - p), at += e - p;
        p = e;
    }
    memcpy(out + at, row, strlen(row));
    at += strlen(row);
    Status st = write_file_atomic(path, out, at);
    free(out);
    free(old);
    return st;
}

static Status report(const E2eArgs *a, const char *mode, Compat compat, const ReplaySummary *s, const char *device) {
    size_t denom = compat == COMPAT_ARTIFACT && !a->limit ? 600 : s->requests; // the artifact divides by 600 (§7.4)
    double acc = denom ? (double)s->right / (double)denom : 0;
    double rps = s->wall_s > 0 ? (double)s->run_here / s->wall_s : 0;
    double busy = s->tlm_ms + s->prefill_ms + s->score_ms, n = s->requests ? (double)s->requests : 1;
    printf("e2e %s %s %s: accuracy %.4f (%zu/%zu), mean prompt ratio %.3f", a->label, a->model_name, mode, acc,
           s->right, denom, s->mean_prompt_ratio);
    if (s->mean_model_ratio > 0) printf(", mean model ratio %.3f", s->mean_model_ratio);
    printf("\n");
    if (a->measure)
        printf("  SLO attainment %.3f (TTFT %.3f, TPOT %.3f); TTFT mean %.1f ms, p50 %.1f, p99 %.1f; TPOT mean %.2f ms%s\n"
               "  %.2f requests/s (%zu this run); time: TLM %.0f%%, prefill %.0f%%, scoring %.0f%%\n",
               s->met / n, s->met_ttft / n, s->met_tpot / n, s->ttft_mean_ms, s->ttft_p50_ms, s->ttft_p99_ms,
               s->tpot_mean_ms, a->arrivals ? " (with queueing)" : "", rps, s->run_here,
               busy > 0 ? 100 * s->tlm_ms / busy : 0, busy > 0 ? 100 * s->prefill_ms / busy : 0,
               busy > 0 ? 100 * s->score_ms / busy : 0);
    else printf("  %.2f requests/s (%zu this run; latency not measured)\n", rps, s->run_here);
    // the artifact's line: "alpha=<a> <model> <mode> <acc>"
    char num[40], line[600], path[1400];
    cli_py_float(acc, num, sizeof num);
    snprintf(line, sizeof line, "%s %s %s %s\n", a->label, a->model_name, mode, num);
    TRY(mkdirs(a->results));
    snprintf(path, sizeof path, "%s/res_%s.txt", a->results, a->model_name);
    TRY(cli_append_line(path, line));
    char dev[256], row[1200];
    snprintf(dev, sizeof dev, "%s", device);
    for (char *c = dev; *c; c++)
        if (*c == ',') *c = ';';
    const char *alpha = strncmp(a->label, "alpha=", 6) == 0 ? a->label + 6 : a->label;
    // without measured latency the attainment and latency fields stay empty
    char lat[200] = ",,,,,,,,,,";
    if (a->measure)
        snprintf(lat, sizeof lat, "%.6f,%.6f,%.6f,%.4f,%.3f,%.3f,%.3f,%.4f,%.4f,%.4f,%.4f", s->met / n, s->met_ttft / n,
                 s->met_tpot / n, rps, s->ttft_mean_ms, s->ttft_p50_ms, s->ttft_p99_ms, s->tpot_mean_ms,
                 busy > 0 ? s->tlm_ms / busy : 0, busy > 0 ? s->prefill_ms / busy : 0, busy > 0 ? s->score_ms / busy : 0);
    else snprintf(lat, sizeof lat, ",,,%.4f,,,,,,,", rps);
    snprintf(row, sizeof row, "%s,%s,%zu,%zu,%.6f,%s,%d,%s\n", alpha, mode, s->requests, s->right, acc, lat,
             ops_get_threads(), dev);
    snprintf(path, sizeof path, "%s/e2e_%s/summary.csv", a->results, a->model_name);
    TRY(write_summary_row(path, alpha, mode, row));
    printf("  records: %s/e2e_%s/%s/%s.jsonl\n", a->results, a->model_name, a->label, mode);
    return ST_OK;
}

static Status run_e2e(const ArgOpt *o, int n, const E2eArgs *a, Device dev) {
    Dist dist;
    TRY(dist_init(&dist));
    datadir_set(args_get(o, n, "data-dir"));
    const char *data_origin, *data_dir = datadir_get(&data_origin);
    char artifact_dir[1100];
    snprintf(artifact_dir, sizeof artifact_dir, "%s/elastilm-artifact", data_dir);
    Trace trace;
    TRY(trace_load(a->trace, &trace));
    LlamaModel m;
    CliPolicy pol = {0};
    Tokenizer *tok = NULL;
    EvalPrompt prompts[DS_COUNT] = {{0}};
    Server sv = {0};
    Status st = cli_policy_open(o, n, &m, &pol);
    bool model_ok = st == ST_OK;
    if (st == ST_OK) st = tokenizer_load_for_model(&tok, args_get(o, n, "model"));
    for (size_t i = 0; st == ST_OK && i < trace.n; i++) { // the prompts of the datasets the trace holds
        DatasetId ds = trace.req[i].ds;
        if (!prompts[ds].system) st = eval_prompt_build(&prompts[ds], ds, artifact_dir);
        if (st == ST_IO)
            st = status_wrap(st, "data folder %s from %s (set it with --data-dir DIR or $ELASTILM_DATA)", data_dir,
                             data_origin);
    }
    if (st == ST_OK) st = server_init(&sv, &m, tok, dev, a->share, SCORER_TOKENS, pol.policy, pol.state);
    LatencyProfile prof;
    bool use_profile = a->measure && !(a->ttft_ms > 0);
    char key[160], desc[256];
    profile_device(dev, cli_weights(), ops_get_threads(), key, sizeof key, desc, sizeof desc);
    if (st == ST_OK && use_profile)
        st = get_profile(&m, dev, args_get(o, n, "artifact"), PROFILE_LENGTHS, 3, 0, false, true, &prof);
    char jsonl[1400];
    snprintf(jsonl, sizeof jsonl, "%s/e2e_%s/%s/%s.jsonl", a->results, a->model_name, a->label, pol.open ? pol.policy->name : "");
    if (st == ST_OK && dist.rank == 0) {
        char dir[1400];
        snprintf(dir, sizeof dir, "%s/e2e_%s/%s", a->results, a->model_name, a->label);
        st = mkdirs(dir);
    }
    // every rank reaches this point, failed or not: a rank that failed to set up must not leave
    // the others waiting in the replay's collectives
    double fail = st != ST_OK;
    Status dst = dist_allreduce_sum_f64(&dist, &fail, 1);
    if (st == ST_OK && dst != ST_OK) st = dst;
    if (st == ST_OK && fail > 0) st = status_fail(ST_IO, "another rank failed to start (its message above)");
    ReplaySummary sum;
    if (st == ST_OK) {
        ReplayConfig c = {.trace = &trace, .trace_path = a->trace, .limit = (size_t)a->limit, .mode = pol.policy->name,
                          .metric = METRIC_ARTIFACT, .measure = a->measure, .arrivals = a->arrivals,
                          .profile = use_profile ? &prof : NULL, .ttft_budget_ms = a->ttft_ms,
                          .tpot_budget_ms = a->tpot_ms, .jsonl = jsonl, .dist = &dist,
                          .kill_after = a->kill_after};
        if (dist.rank == 0 && use_profile)
            log_info("budgets: SLO fractions of the full model's TTFT (%d ... %d tokens: %.1f ... %.1f ms) and TPOT "
                     "(%.2f ms) on %s", prof.lengths[0], prof.lengths[prof.n - 1], prof.ttft_ms[0],
                     prof.ttft_ms[prof.n - 1], prof.tpot_ms, prof.device);
        st = replay_run(&sv, prompts, &c, &sum);
    }
    if (st == ST_OK && dist.rank == 0) st = report(a, pol.policy->name, pol.compat, &sum, desc);
    server_free(&sv);
    for (int d = 0; d < DS_COUNT; d++) eval_prompt_free(&prompts[d]);
    tokenizer_free(tok);
    cli_policy_close(&pol);
    if (model_ok) llama_free(&m);
    trace_free(&trace);
    return st;
}

int cmd_e2e(int argc, char **argv) {
    ArgOpt opts[] = {CLI_COMMON_OPTS,
                     CLI_POLICY_OPTS,
                     {"trace", true, "the trace (JSON, the artifact's schema): elastilm trace gen, or the artifact's "
                                     "trace_<alpha>.json (required)", NULL},
                     {"alpha", true, "the trace's skew for the result line (default: from a file named trace_<alpha>.json)",
                      NULL},
                     {"limit", true, "replay only the first N requests", NULL},
                     {"latency", true, "measure (default: TTFT and TPOT per request, SLO attainment) or none (accuracy "
                                       "only, the artifact's replay)", NULL},
                     {"arrivals", false, "queue requests on one device by the trace's arrival times (trace gen --rate)",
                      NULL},
                     {"ttft-ms", true, "a fixed TTFT budget in ms for every request (with --tpot-ms) instead of the SLO "
                                       "fractions of the full model's profiled latency", NULL},
                     {"tpot-ms", true, "a fixed TPOT budget in ms for every request (with --ttft-ms)", NULL},
                     {"results", true, "folder of the result files (default results)", NULL},
                     {"model-name", true, "model name in the result files (default: from --model)", NULL},
                     {"tlm", true, "the TLM for Ours and Lingua2+Contextual (default: --artifact)", NULL},
                     {"cl100k", true, "cl100k_base.tiktoken for LLMLingua-2 (default: from datasets/fetch.sh)", NULL},
                     {"data-dir", true, "the bundled data folder (the Octopus and LlamaTouch prompts)", NULL},
                     {"no-share", false, "score every candidate from scratch (no shared-prefix KV cache)", NULL},
                     {"kill-after", true, "fault injection for the resume tests: SIGKILL after N requests", NULL}};
    int n = (int)(sizeof opts / sizeof *opts);
    Status st = args_parse(argc, argv, opts, n, "e2e");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(opts, n, "help")) {
        args_print_help("e2e", "Replays a trace through one mode: accuracy by each request's dataset rule, measured "
                               "TTFT and TPOT, SLO attainment; under mpirun the requests are split over the ranks.",
                        opts, n);
        return 0;
    }
    Device dev;
    E2eArgs a;
    if ((st = cli_setup(opts, n, &dev)) != ST_OK || (st = parse_e2e_args(opts, n, &a)) != ST_OK) return cli_fail(st);
    st = run_e2e(opts, n, &a, dev);
    dist_finalize();
    return st == ST_OK ? 0 : cli_fail(st);
}
