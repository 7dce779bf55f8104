// elastilm prepare: a policy's offline step (layer ranks, merged layers, ...)
// written into the elastic artifact.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "elastic/elastic.h"
#include "policy/policy.h"
#include "runtime/log.h"

// "3, 4, 5" or "[3,4,5]" -> ids (the artifact's lists are Python lists).
static Status parse_list(const char *text, const char *opt, int32_t **out, int *n) {
    size_t cap = strlen(text) / 2 + 2;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return status_fail(ST_OOM, "out of memory");
    int k = 0;
    for (const char *p = text; *p;) {
        if (*p == ' ' || *p == ',' || *p == '[' || *p == ']' || *p == '\t' || *p == '\n') {
            p++;
            continue;
        }
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > 1 << 20 || (size_t)k >= cap) {
            free(v);
            return status_fail(ST_USAGE, "--%s: expected layer numbers such as \"[3, 4, 5]\", got '%.20s'", opt, p);
        }
        v[k++] = (int32_t)x;
        p = end;
    }
    *out = v;
    *n = k;
    return ST_OK;
}

static Status prepare(const ArgOpt *opts, int n) {
    Device dev;
    TRY(cli_setup(opts, n, &dev));
    TRY(cli_require_cpu(opts, n, &dev, "prepare"));
    const Policy *pol;
    TRY(policy_lookup(args_get(opts, n, "mode"), &pol));
    const char *art = args_get(opts, n, "artifact");
    if (!art) return status_fail(ST_USAGE, "prepare: --artifact ART.h5 (made by elasticize) is required");
    if (args_get(opts, n, "level")) return status_fail(ST_USAGE, "prepare: --level does not apply");
    if (!pol->prepare) {
        printf("%s needs no preparation\n", pol->name);
        return ST_OK;
    }
    PolicyPrepare p = {.artifact = art};
    TRY(compat_parse(args_get(opts, n, "compat"), &p.compat));
    int32_t *ranks = NULL, *ffn_ranks = NULL, *calib = NULL;
    const char *r = args_get(opts, n, "ranks"), *fr = args_get(opts, n, "ffn-ranks");
    if ((r || fr) && !pol->takes_ranks) return status_fail(ST_USAGE, "--ranks: %s computes its own", pol->name);
    if (r) TRY(parse_list(r, "ranks", &ranks, &p.n_ranks));
    Status st = fr ? parse_list(fr, "ffn-ranks", &ffn_ranks, &p.n_ffn_ranks) : ST_OK;
    p.ranks = ranks, p.ffn_ranks = ffn_ranks;
    CalibArgs ca;
    if (st == ST_OK) st = cli_calib_args(opts, n, false, &ca);
    if (st == ST_OK && pol->calib_samples && !args_get(opts, n, "samples")) ca.samples = pol->calib_samples;
    if (st == ST_OK && pol->calib_seq && !args_get(opts, n, "seq")) ca.seq = pol->calib_seq;
    const char *thr = args_get(opts, n, "threshold");
    if (st == ST_OK && thr) {
        if (strcmp(pol->name, "Lingua2+Contextual"))
            st = status_fail(ST_USAGE, "--threshold: only Lingua2+Contextual's predictors take an activity threshold");
        else if ((st = args_float(thr, "threshold", 0, 1e6, &p.ffn_threshold)) == ST_OK && !(p.ffn_threshold > 0))
            st = status_fail(ST_USAGE, "--threshold: expected a positive number, got %s", thr);
    }
    const char *calib_path = st == ST_OK ? ca.calib : NULL;
    if (st == ST_OK && pol->needs_calib && !ranks && !calib_path)
        st = status_fail(ST_USAGE, "%s computes from calibration text: --calib FILE (or a published list with --ranks)",
                         pol->name);
    LlamaModel m;
    Tokenizer *tok = NULL;
    bool model_ok = false;
    if (st == ST_OK) st = llama_load(&m, args_get(opts, n, "model")); // the original weights: no reordering
    model_ok = st == ST_OK;
    if (st == ST_OK) st = cli_load_tokenizer(opts, n, &tok);
    if (st == ST_OK && calib_path && !ranks)
        st = calib_sample(calib_path, tok, (int)ca.samples, (int)ca.seq, (uint64_t)ca.seed, &calib);
    if (st == ST_OK) {
        p.m = &m, p.tok = tok, p.calib = calib, p.n_calib = (int)ca.samples, p.seq = (int)ca.seq;
        double t0 = time_now();
        st = pol->prepare(&p);
        if (st == ST_OK)
            printf("prepared %s (%s) into %s in %.1fs\n", pol->name, compat_name(p.compat), art, time_now() - t0);
    }
    free(ranks), free(ffn_ranks), free(calib);
    tokenizer_free(tok);
    if (model_ok) llama_free(&m);
    return st;
}

int cmd_prepare(int argc, char **argv) {
    ArgOpt opts[] = {CLI_COMMON_OPTS,
                     {"mode", true, "the policy to prepare (LayerReduction, ShortGPT, AttnDrop, LaCo, Lingua2+Contextual)", NULL},
                     {"compat", true, "paper (default) or artifact: the artifact's variant of the method", NULL},
                     {"ranks", true, "a published rank list \"[3, 4, ...]\" (ascending importance) instead of computing", NULL},
                     {"ffn-ranks", true, "AttnDrop with --ranks: the FFN list (the artifact uses ShortGPT's ranks)", NULL},
                     {"threshold", true, "Lingua2+Contextual: a neuron is active when |silu(gate)| exceeds it "
                                         "(default 0.1)", NULL},
                     CLI_CALIB_OPTS};
    int n = (int)(sizeof opts / sizeof *opts);
    Status st = args_parse(argc, argv, opts, n, "prepare");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(opts, n, "help")) {
        args_print_help("prepare", "A policy's offline step (layer ranks, merged layers) into the elastic artifact.",
                        opts, n);
        return 0;
    }
    st = prepare(opts, n);
    return st == ST_OK ? 0 : cli_fail(st);
}
