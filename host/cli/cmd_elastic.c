// elastilm anchors / elasticize: anchor layers, Taylor importance, one-shot
// reordering and the level table, written to an elastic artifact.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "elastic/artifact.h"
#include "runtime/log.h"

#define CALIB_OPTS CLI_CALIB_OPTS, {"keep", true, "anchor layers kept whole (default 6)", NULL}

// The model (as stored, not reordered), its calibration batch.
static Status load_calib(const ArgOpt *opts, int n, const CalibArgs *a, LlamaModel *m, int32_t **ids) {
    Device dev;
    TRY(cli_setup(opts, n, &dev));
    TRY(cli_require_cpu(opts, n, &dev, "anchors / elasticize"));
    if (args_get(opts, n, "artifact") || args_get(opts, n, "level"))
        return status_fail(ST_USAGE, "--artifact/--level: anchors and elasticize start from the original model");
    TRY(llama_load(m, args_get(opts, n, "model")));
    Tokenizer *tok = NULL;
    Status st = cli_load_tokenizer(opts, n, &tok);
    if (st == ST_OK) st = calib_sample(a->calib, tok, (int)a->samples, (int)a->seq, (uint64_t)a->seed, ids);
    tokenizer_free(tok);
    if (st != ST_OK) llama_free(m);
    return st;
}

static void print_anchors(const LlamaConfig *c, double base, const double *skip, const int *order, const uint8_t *anchor) {
    printf("calibration loss (all layers): %.6f\n", base);
    printf("layer  loss with the layer skipped\n");
    for (int l = 0; l < c->n_layers; l++) printf("%5d  %.6f%s\n", l, skip[l], anchor[l] ? "  anchor" : "");
    printf("ascending:");
    for (int l = 0; l < c->n_layers; l++) printf(" %d", order[l]);
    printf("\nanchors:");
    for (int l = 0; l < c->n_layers; l++)
        if (anchor[l]) printf(" %d", l);
    printf("\n");
}

int cmd_anchors(int argc, char **argv) {
    ArgOpt opts[] = {CLI_COMMON_OPTS, CALIB_OPTS};
    int n = (int)(sizeof opts / sizeof *opts);
    Status st = args_parse(argc, argv, opts, n, "anchors");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(opts, n, "help")) {
        args_print_help("anchors", "Per-layer loss with that layer skipped; the --keep largest are the anchors.", opts, n);
        return 0;
    }
    CalibArgs a;
    LlamaModel m;
    int32_t *ids = NULL;
    if ((st = cli_calib_args(opts, n, true, &a)) != ST_OK || (st = load_calib(opts, n, &a, &m, &ids)) != ST_OK) return cli_fail(st);
    int L = m.cfg.n_layers;
    double base, *skip = malloc((size_t)L * sizeof *skip);
    int *order = malloc((size_t)L * sizeof *order);
    uint8_t *anchor = malloc((size_t)L);
    st = skip && order && anchor ? ST_OK : status_fail(ST_OOM, "out of memory");
    if (st == ST_OK) st = anchors_select(&m, ids, (int)a.samples, (int)a.seq, (int)a.keep, &base, skip, order, anchor);
    if (st == ST_OK) print_anchors(&m.cfg, base, skip, order, anchor);
    free(skip), free(order), free(anchor), free(ids);
    llama_free(&m);
    return st == ST_OK ? 0 : cli_fail(st);
}

// "3,7,12" -> anchor mask
static Status parse_anchors(const char *text, int L, uint8_t *anchor) {
    memset(anchor, 0, (size_t)L);
    const char *p = text;
    while (*p) {
        char *end;
        long l = strtol(p, &end, 10);
        if (end == p || l < 0 || l >= L || (*end && *end != ','))
            return status_fail(ST_USAGE, "--anchors: expected layer numbers in [0, %d) separated by commas, got \"%s\"",
                               L, text);
        anchor[l] = 1;
        p = *end ? end + 1 : end;
    }
    return ST_OK;
}

static void print_levels(const LlamaConfig *c, const Artifact *art) {
    printf("level  ratio  KV heads (of %d) -> q heads  FFN (of %d)   [non-anchor layers]\n", c->n_kv_heads, c->ffn_dim);
    LlamaWidth *w = malloc((size_t)c->n_layers * sizeof *w);
    if (!w) return;
    for (int i = 0; i < art->n_levels; i++) {
        level_widths(c, art->anchor, art->levels[i].ratio, w);
        int l = 0;
        while (l < c->n_layers - 1 && art->anchor[l]) l++;
        printf("%5g  %5g  %3d -> %-3d                 %d\n", art->levels[i].level, art->levels[i].ratio, w[l].n_kv,
               w[l].n_kv * (c->n_heads / c->n_kv_heads), w[l].ffn);
    }
    free(w);
}

static Status elasticize(const ArgOpt *opts, int n) {
    CalibArgs a;
    TRY(cli_calib_args(opts, n, true, &a));
    const char *out = args_get(opts, n, "out");
    if (!out) return status_fail(ST_USAGE, "elasticize: --out ART.h5 is required");
    const char *order = args_get(opts, n, "order");
    if (!order) order = "importance";
    if (strcmp(order, "importance") && strcmp(order, "random"))
        return status_fail(ST_USAGE, "--order: importance or random, got '%s'", order);
    Artifact art;
    memset(&art, 0, sizeof art);
    const char *lv = args_get(opts, n, "levels");
    if (lv) TRY(levels_parse(lv, art.levels, ARTIFACT_MAX_LEVELS, &art.n_levels));
    else art.n_levels = levels_default(art.levels, ARTIFACT_MAX_LEVELS);
    LlamaModel m;
    int32_t *ids = NULL;
    TRY(load_calib(opts, n, &a, &m, &ids));
    const LlamaConfig *c = &m.cfg;
    int L = c->n_layers;
    snprintf(art.model, sizeof art.model, "%s", args_get(opts, n, "model"));
    snprintf(art.calib, sizeof art.calib, "%s", a.calib);
    snprintf(art.order, sizeof art.order, "%s", order);
    art.samples = (int)a.samples, art.seq = (int)a.seq, art.seed = (uint64_t)a.seed;
    art.anchor = malloc((size_t)L);
    int *lorder = malloc((size_t)L * sizeof *lorder);
    Status st = art.anchor && lorder ? ST_OK : status_fail(ST_OOM, "out of memory");
    const char *given = args_get(opts, n, "anchors");
    double t0 = time_now();
    if (st == ST_OK && given) {
        st = parse_anchors(given, L, art.anchor);
        if (st == ST_OK) st = calib_loss(&m, ids, (int)a.samples, (int)a.seq, NULL, &art.base_loss);
    } else if (st == ST_OK) {
        art.skip_loss = malloc((size_t)L * sizeof *art.skip_loss);
        st = art.skip_loss ? ST_OK : status_fail(ST_OOM, "out of memory");
        if (st == ST_OK)
            st = anchors_select(&m, ids, (int)a.samples, (int)a.seq, (int)a.keep, &art.base_loss, art.skip_loss,
                                lorder, art.anchor);
        if (st == ST_OK) print_anchors(c, art.base_loss, art.skip_loss, lorder, art.anchor);
        log_info("anchors: %.1fs", time_now() - t0);
    }
    if (st == ST_OK && !strcmp(order, "importance")) {
        double t1 = time_now();
        st = importance_compute(&m, ids, (int)a.samples, (int)a.seq, art.anchor, &art.imp);
        if (st == ST_OK) st = permutation_from_importance(&art.imp, art.anchor, &art.perm);
        log_info("importance (one forward/backward of %ld x %ld tokens): %.1fs", a.samples, a.seq, time_now() - t1);
    } else if (st == ST_OK) {
        st = permutation_random(L, c->n_kv_heads, c->ffn_dim, art.anchor, (uint64_t)a.seed, &art.perm);
    }
    if (st == ST_OK) st = artifact_write(out, c, &art);
    if (st == ST_OK) {
        print_levels(c, &art);
        printf("wrote %s (%s order)\n", out, order);
    }
    const char *export_dir = args_get(opts, n, "export");
    if (st == ST_OK && export_dir) {
        st = permutation_apply(&m, &art.perm);
        if (st == ST_OK) st = llama_export_hf(&m, export_dir);
        if (st == ST_OK) printf("exported the reordered model to %s\n", export_dir);
    }
    free(lorder);
    free(ids);
    artifact_free(&art);
    llama_free(&m);
    return st;
}

int cmd_elasticize(int argc, char **argv) {
    ArgOpt opts[] = {CLI_COMMON_OPTS, CALIB_OPTS,
                     {"out", true, "the artifact to write (.h5; required)", NULL},
                     {"anchors", true, "anchor layers \"3,7,...\" (default: chosen by layer-skip loss, --keep of them)", NULL},
                     {"order", true, "importance (default) or random (a seeded random order with the same widths)", NULL},
                     {"levels", true, "levels \"0.2,0.5,1\" (default: the artifact's 0.2 ... 1.0)", NULL},
                     {"export", true, "also write the reordered model as a Hugging Face directory here", NULL}};
    int n = (int)(sizeof opts / sizeof *opts);
    Status st = args_parse(argc, argv, opts, n, "elasticize");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(opts, n, "help")) {
        args_print_help("elasticize", "Anchors, Taylor importance, one-shot reordering and the level table -> artifact.",
                        opts, n);
        return 0;
    }
    st = elasticize(opts, n);
    return st == ST_OK ? 0 : cli_fail(st);
}
