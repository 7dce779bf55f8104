// elastilm export: a standalone Hugging Face model made of a subset of the
// model's layers, in their original order: the layers given (--layers), or
// the layers a layer-dropping policy (LayerReduction, ShortGPT) keeps at ratio
// s, as it serves an SLO with min(prefill, decode) = s. The stand-in models of
// Off-The-Shelf's ladder are made so. The tokenizer comes along: an HF
// directory's tokenizer files are copied, a GGUF's vocabulary is written as
// tokenizer.json.
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "runtime/log.h"
#include "runtime/mapped_file.h"

// The layers to write and where they came from.
typedef struct {
    int *keep;      // [n_keep] ascending layer indices of the source model
    int n_keep;
    char what[256]; // how they were chosen, for the summary line
} Kept;

// "0,1,2,5", "0 1 2 5" or "[0, 1, 2, 5]": ascending, no repeats (the range is checked once the model is loaded).
static Status parse_layers(const char *text, Kept *k) {
    size_t cap = strlen(text) / 2 + 1;
    k->keep = malloc(cap * sizeof *k->keep);
    if (!k->keep) return status_fail(ST_OOM, "out of memory");
    k->n_keep = 0;
    for (const char *p = text; *p;) {
        if (strchr(" ,[]\t\n", *p)) {
            p++;
            continue;
        }
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > INT_MAX || (size_t)k->n_keep >= cap)
            return status_fail(ST_USAGE, "--layers: expected layer numbers such as \"0,1,2,5\", got '%.20s'", p);
        for (int i = 0; i < k->n_keep; i++)
            if (k->keep[i] == x) return status_fail(ST_USAGE, "--layers: layer %ld is listed twice", x);
        if (k->n_keep > 0 && x < k->keep[k->n_keep - 1])
            return status_fail(ST_USAGE, "--layers: layer %ld comes after layer %d: list the layers in ascending order",
                               x, k->keep[k->n_keep - 1]);
        k->keep[k->n_keep++] = (int)x;
        p = end;
    }
    if (k->n_keep == 0) return status_fail(ST_USAGE, "--layers: no layers given");
    return ST_OK;
}

// The layers a view runs whole; refused unless every other layer is dropped
// whole and nothing else (widths, adapters, substitute weights) changes.
static Status view_layers(const LlamaView *v, int L, const char *mode, Kept *k) {
    k->keep = malloc((size_t)L * sizeof *k->keep);
    if (!k->keep) return status_fail(ST_OOM, "out of memory");
    k->n_keep = 0;
    bool subst = false;
    for (int l = 0; v && v->weights && l < L; l++) subst |= v->weights[l] != NULL;
    if (v && (v->widths || v->lora || v->sparse || subst))
        return status_fail(ST_UNSUPPORTED, "--mode %s: its view changes more than which layers run", mode);
    for (int l = 0; l < L; l++) {
        uint8_t b = v && v->blocks ? v->blocks[l] : LAYER_ALL;
        if (b != 0 && b != LAYER_ALL)
            return status_fail(ST_UNSUPPORTED, "--mode %s: layer %d runs only part of its sub-blocks", mode, l);
        if (b == LAYER_ALL) k->keep[k->n_keep++] = l;
    }
    if (k->n_keep == 0) return status_fail(ST_UNSUPPORTED, "--mode %s: its view drops every layer", mode);
    return ST_OK;
}

// The layers pol keeps at ratio s (its decision for an SLO with min(prefill, decode) = s).
static Status policy_layers(const LlamaModel *m, const Policy *pol, const char *artifact, const char *model_path,
                            Compat compat, double s, Kept *k) {
    void *state;
    PolicyOpen o = {.m = m, .artifact = artifact, .model_path = model_path, .compat = compat};
    TRY(pol->open(&state, &o));
    Slo slo = {.prefill = s, .decode = s};
    Decision d;
    Status st = pol->decide(state, NULL, &slo, &d);
    if (st == ST_OK) st = view_layers(d.view, m->cfg.n_layers, pol->name, k);
    if (st == ST_OK) snprintf(k->what, sizeof k->what, "%s, %s, s = %g", pol->name, compat_name(compat), s);
    pol->close(state);
    return st;
}

// Copies dir/name to out/name byte for byte; *copied says whether dir had it.
static Status copy_side_file(const char *dir, const char *out, const char *name, bool *copied) {
    char src[4096], dst[4096];
    snprintf(src, sizeof src, "%s/%s", dir, name);
    snprintf(dst, sizeof dst, "%s/%s", out, name);
    *copied = false;
    struct stat sb;
    if (stat(src, &sb) != 0) {
        if (errno == ENOENT) return ST_OK;
        return status_fail(ST_IO, "%s: %s", src, strerror(errno));
    }
    MappedFile f;
    TRY(mapped_file_open(&f, src));
    Status st = write_file_atomic(dst, f.data, f.size);
    mapped_file_close(&f);
    *copied = st == ST_OK;
    return st;
}

// The tokenizer beside the weights: an HF directory's tokenizer files (and
// generation_config.json) copied, a GGUF's vocabulary written as tokenizer.json.
// tok_note says what was written.
static Status write_tokenizer(const LlamaModel *m, const char *model, const char *out, char *tok_note, size_t n) {
    if (m->format == FORMAT_HF) {
        static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                            "generation_config.json"};
        bool has_tokenizer = false;
        for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
            bool copied;
            TRY(copy_side_file(model, out, files[i], &copied));
            if (i == 0) has_tokenizer = copied;
        }
        snprintf(tok_note, n, "%s", has_tokenizer ? "tokenizer.json copied" : "no tokenizer.json: the model has none");
        return ST_OK;
    }
    GgufFile g;
    TRY(gguf_open(&g, model));
    Status st = ST_OK;
    if (!gguf_find_kv(&g, "tokenizer.ggml.model")) {
        snprintf(tok_note, n, "no tokenizer.json: the GGUF carries no tokenizer");
    } else {
        char path[4096];
        snprintf(path, sizeof path, "%s/tokenizer.json", out);
        st = tokenizer_export_gguf_json(&g, path);
        snprintf(tok_note, n, "tokenizer.json from the GGUF");
    }
    gguf_close(&g);
    return st;
}

// Exactly one way to choose the layers: --layers, or --artifact + --mode + --ratio.
static Status check_ways(const ArgOpt *opts, int n) {
    const char *layers = args_get(opts, n, "layers"), *art = args_get(opts, n, "artifact"),
               *mode = args_get(opts, n, "mode"), *ratio = args_get(opts, n, "ratio"),
               *compat = args_get(opts, n, "compat");
    bool policy = art || mode || ratio;
    if (layers && (policy || compat))
        return status_fail(ST_USAGE, "export: give the layers either with --layers or with --artifact, --mode and "
                                     "--ratio, not both");
    if (!layers && !policy)
        return status_fail(ST_USAGE, "export: which layers? give --layers \"0,1,...\" or --artifact ART.h5 --mode "
                                     "LayerReduction|ShortGPT --ratio s");
    if (!layers && (!art || !mode || !ratio))
        return status_fail(ST_USAGE, "export: a policy's layers need --artifact, --mode and --ratio (missing --%s)",
                           !art ? "artifact" : !mode ? "mode" : "ratio");
    if (!args_get(opts, n, "model")) return status_fail(ST_USAGE, "--model is required");
    if (!args_get(opts, n, "out")) return status_fail(ST_USAGE, "--out DIR is required");
    return ST_OK;
}

// --out must not be the model's own directory (its weights would be overwritten
// while they are read) and, when it exists, must be a directory (the export makes it).
static Status check_out_dir(const char *model, const char *out) {
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(model, a) && realpath(out, b) && strcmp(a, b) == 0)
        return status_fail(ST_USAGE, "--out %s is the model's own directory", out);
    struct stat sb;
    if (stat(out, &sb) == 0 && !S_ISDIR(sb.st_mode)) return status_fail(ST_IO, "%s: not a directory", out);
    return ST_OK;
}

static Status run_export(const ArgOpt *opts, int n) {
    TRY(check_ways(opts, n));
    const char *model = args_get(opts, n, "model"), *out = args_get(opts, n, "out"),
               *layers = args_get(opts, n, "layers");
    log_set_quiet(args_get(opts, n, "quiet") != NULL);
    TRY(cli_threads(opts, n));
    const Policy *pol = NULL;
    Compat compat = COMPAT_PAPER;
    double s = 0;
    if (!layers) {
        TRY(policy_lookup(args_get(opts, n, "mode"), &pol));
        // LayerReduction and ShortGPT drop whole layers of the model as loaded
        // (the policy table: not reordered); the other policies' views are not
        // a subset of the layers (merged layers, dropped sub-blocks, narrower
        // levels, another model)
        if (pol->decide != ranked_decide || pol->reordered)
            return status_fail(ST_USAGE, "--mode %s: export takes the policies that drop whole layers "
                                         "(LayerReduction, ShortGPT); %s's views are not a subset of the model's "
                                         "layers", pol->name, pol->name);
        TRY(args_float(args_get(opts, n, "ratio"), "ratio", 0, 1, &s));
        if (!(s > 0)) return status_fail(ST_USAGE, "--ratio %s: expected s in (0, 1]", args_get(opts, n, "ratio"));
        TRY(compat_parse(args_get(opts, n, "compat"), &compat));
    }
    Kept k = {0};
    Status st = layers ? parse_layers(layers, &k) : ST_OK;
    LlamaModel m;
    bool loaded = false;
    if (st == ST_OK) st = llama_load(&m, model); // the original order: neither --layers nor these policies reorder
    loaded = st == ST_OK;
    if (st == ST_OK && layers) {
        snprintf(k.what, sizeof k.what, "--layers");
        for (int i = 0; st == ST_OK && i < k.n_keep; i++)
            if (k.keep[i] >= m.cfg.n_layers)
                st = status_fail(ST_USAGE, "--layers: layer %d is outside 0..%d (%s has %d layers)", k.keep[i],
                                 m.cfg.n_layers - 1, model, m.cfg.n_layers);
    }
    if (st == ST_OK && !layers) st = policy_layers(&m, pol, args_get(opts, n, "artifact"), model, compat, s, &k);
    char tok_note[128] = "";
    if (st == ST_OK) st = check_out_dir(model, out);
    if (st == ST_OK) st = llama_export_hf_layers(&m, k.keep, k.n_keep, out); // refuses before it writes anything
    if (st == ST_OK) st = write_tokenizer(&m, model, out, tok_note, sizeof tok_note);
    if (st == ST_OK) {
        LlamaModel sub = {.cfg = m.cfg};
        sub.cfg.n_layers = k.n_keep;
        printf("kept %d of %d layers [", k.n_keep, m.cfg.n_layers);
        for (int i = 0; i < k.n_keep; i++) printf(i ? ", %d" : "%d", k.keep[i]);
        printf("] (%s); %lld parameters; wrote %s (%s)\n", k.what, (long long)llama_param_count(&sub), out, tok_note);
    }
    free(k.keep);
    if (loaded) llama_free(&m);
    return st;
}

int cmd_export(int argc, char **argv) {
    ArgOpt opts[] = {
        {"model", true, "HF model directory or .gguf file (required)", NULL},
        {"out", true, "the directory to write: config.json, model.safetensors (f32), tokenizer.json (required)", NULL},
        {"layers", true, "the layers to keep, ascending: \"0,1,2,5\"", NULL},
        {"artifact", true, "elastic artifact (.h5) with the policy prepared (`elastilm prepare --mode ...`)", NULL},
        {"mode", true, "LayerReduction or ShortGPT: keep the layers the policy keeps at --ratio", NULL},
        {"ratio", true, "s in (0, 1]: the layers kept for an SLO with min(prefill, decode) = s", NULL},
        {"compat", true, "paper (default) or artifact: the policy's variant (docs/deviations.md)", NULL},
        {"threads", true, "CPU threads (default: the cores other processes leave free; $ELASTILM_THREADS)", NULL},
        {"quiet", false, "no progress or info messages", NULL},
        {"help", false, "show this help", NULL},
    };
    int n = (int)(sizeof opts / sizeof *opts);
    Status st = args_parse(argc, argv, opts, n, "export");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(opts, n, "help")) {
        args_print_help("export",
                        "A standalone Hugging Face LlamaForCausalLM of a subset of the model's layers (given, or those "
                        "a layer-dropping policy keeps at a ratio), with its tokenizer.",
                        opts, n);
        return 0;
    }
    st = run_export(opts, n);
    return st == ST_OK ? 0 : cli_fail(st);
}
