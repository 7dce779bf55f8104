#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "ops/ops.h"
#include "runtime/device.h"
#include "runtime/log.h"
#include "runtime/mapped_file.h"

int cli_fail(Status st) {
    fprintf(stderr, "elastilm: %s\n", status_message());
    return st == ST_USAGE ? 2 : 1;
}

static Device g_dev = {DEV_CPU, 0}; // the device cli_setup chose, for cli_load_model
static DType g_weights = DT_F32;     // --weights, for cli_load_model

DType cli_weights(void) { return g_weights; }

Status cli_setup(const ArgOpt *opts, int n_opts, Device *dev) {
    TRY(cli_setup_device(opts, n_opts, dev));
    g_dev = *dev;
    return ST_OK;
}

Status cli_require_cpu(const ArgOpt *opts, int n_opts, Device *dev, const char *what) {
    if (g_weights != DT_F32)
        return status_fail(ST_USAGE, "--weights %s: %s needs f32 weights (low-bit weights are for forward, generate, "
                                     "eval and ppl --path serve)", llama_weights_name(g_weights), what);
    if (dev->kind == DEV_CPU) return ST_OK;
    if (args_get(opts, n_opts, "device"))
        return status_fail(ST_UNSUPPORTED, "%s runs on the CPU in this build (use --device cpu)", what);
    *dev = g_dev = (Device){DEV_CPU, 0}; // the default picked a GPU: training stays on the CPU
    return ST_OK;
}

Status cli_threads(const ArgOpt *opts, int n_opts) {
    long threads = 0;
    const char *t = args_get(opts, n_opts, "threads");
    if (t) TRY(args_int(t, "threads", 1, 1024, &threads));
    ops_set_threads((int)threads);
    return ST_OK;
}

void cli_cl100k_path(const char *given, char *buf, size_t n) {
    const char *cache = getenv("ELASTILM_CACHE"), *home = getenv("HOME");
    if (given) snprintf(buf, n, "%s", given);
    else if (cache && *cache) snprintf(buf, n, "%s/tiktoken/tiktoken_ext/data/cl100k_base.tiktoken", cache);
    else snprintf(buf, n, "%s/.cache/elastilm/tiktoken/tiktoken_ext/data/cl100k_base.tiktoken", home ? home : ".");
}

Status cli_setup_device(const ArgOpt *opts, int n_opts, Device *dev) {
    if (!args_get(opts, n_opts, "model")) return status_fail(ST_USAGE, "--model is required");
    log_set_quiet(args_get(opts, n_opts, "quiet") != NULL);
    TRY(cli_threads(opts, n_opts));
    const char *w = args_get(opts, n_opts, "weights"), *spec = args_get(opts, n_opts, "device");
    g_weights = DT_F32;
    if (w && llama_weights_parse(w, &g_weights) != ST_OK) return status_wrap(ST_USAGE, "--weights");
    if (!spec) {
        dev->kind = DEV_CPU;
        dev->index = 0;
        if (device_count() > 0 && ops_backend_available(DEV_CUDA) && g_weights == DT_F32) dev->kind = DEV_CUDA;
        return ST_OK;
    }
    if (g_weights != DT_F32 && strncmp(spec, "cuda", 4) == 0) // also in builds without CUDA: the same answer
        return status_fail(ST_USAGE, "--weights %s is for the CPU (a GPU runs its own bf16 weights): use --device cpu "
                                     "or --weights f32", w);
    TRY(device_parse(spec, dev));
    if (!ops_backend_available(dev->kind))
        return status_fail(ST_UNSUPPORTED, "--device %s: the CUDA op backend is not part of this build yet; use --device cpu", spec);
    return ST_OK;
}

Status cli_calib_args(const ArgOpt *opts, int n_opts, bool required, CalibArgs *a) {
    a->calib = args_get(opts, n_opts, "calib");
    if (!a->calib && required)
        return status_fail(ST_USAGE, "--calib is required (a plain-text file; see `elastilm textsets`)");
    a->samples = 10, a->seq = 64, a->seed = 42, a->keep = 6;
    const char *v;
    if ((v = args_get(opts, n_opts, "samples"))) TRY(args_int(v, "samples", 1, 1 << 20, &a->samples));
    if ((v = args_get(opts, n_opts, "seq"))) TRY(args_int(v, "seq", 2, 1 << 20, &a->seq));
    if ((v = args_get(opts, n_opts, "seed"))) TRY(args_int(v, "seed", 0, 1L << 62, &a->seed));
    if ((v = args_get(opts, n_opts, "keep"))) TRY(args_int(v, "keep", 0, 1 << 20, &a->keep));
    return ST_OK;
}

Status cli_load_model(const ArgOpt *opts, int n_opts, LlamaModel *m) {
    TRY(llama_load(m, args_get(opts, n_opts, "model")));
    const char *art = args_get(opts, n_opts, "artifact");
    Status st = art ? artifact_apply(m, art) : ST_OK;
    if (st == ST_OK) st = cli_place_model(m);
    if (st != ST_OK) llama_free(m);
    return st;
}

Status cli_place_model(LlamaModel *m) {
    Status st = ST_OK;
    if (st == ST_OK && g_dev.kind != DEV_CPU) // bf16 weights on the GPU (f16 for f16 checkpoints)
        st = llama_to_device(m, g_dev, strncmp(m->source_dtype, "f16", 3) == 0 ? DT_F16 : DT_BF16);
    if (st == ST_OK && g_dev.kind == DEV_CPU && g_weights != DT_F32) { // after the reordering: views are prefixes
        st = llama_convert_weights(m, g_weights);
        if (st == ST_OK)
            log_info("weights: %s on the CPU, %.1f MB", llama_weights_name(g_weights), llama_weights_bytes(m) / 1e6);
    }
    return st;
}

Status cli_policy_open(const ArgOpt *opts, int n_opts, LlamaModel *m, CliPolicy *p) {
    memset(p, 0, sizeof *p);
    const char *mode = args_get(opts, n_opts, "mode"), *art = args_get(opts, n_opts, "artifact");
    TRY(policy_lookup(mode ? mode : "full", &p->policy));
    const char *pre = args_get(opts, n_opts, "prefill-slo"), *dec = args_get(opts, n_opts, "decode-slo");
    TRY(slo_parse(pre ? pre : "1.0", dec ? dec : "1.0", &p->slo));
    TRY(compat_parse(args_get(opts, n_opts, "compat"), &p->compat));
    if (p->policy->needs_artifact && !art)
        return status_fail(ST_USAGE, "--mode %s needs --artifact ART.h5 (elasticize, then `elastilm prepare`)",
                           p->policy->name);
    TRY(llama_load(m, args_get(opts, n_opts, "model")));
    Status st = p->policy->reordered ? artifact_apply(m, art) : ST_OK;
    char cl100k[4096];
    cli_cl100k_path(args_get(opts, n_opts, "cl100k"), cl100k, sizeof cl100k);
    PolicyOpen o = {.m = m, .artifact = art, .model_path = args_get(opts, n_opts, "model"),
                    .tlm = args_get(opts, n_opts, "tlm"), .cl100k = cl100k, .ladder = args_get(opts, n_opts, "ladder"),
                    .compat = p->compat,
                    .no_lora = args_get(opts, n_opts, "no-lora") != NULL};
    if (st == ST_OK) st = p->policy->open(&p->state, &o);
    p->open = st == ST_OK;
    if (st == ST_OK) st = cli_place_model(m);
    if (st == ST_OK && p->policy->place) st = p->policy->place(p->state, m);
    if (st != ST_OK) {
        cli_policy_close(p);
        llama_free(m);
    }
    return st;
}

void cli_policy_close(CliPolicy *p) {
    if (p->open) p->policy->close(p->state);
    p->open = false;
}

Status cli_load_model_view(const ArgOpt *opts, int n_opts, LlamaModel *m, CliView *cv, const LlamaView **view) {
    memset(cv, 0, sizeof *cv);
    *view = NULL;
    bool slo = args_get(opts, n_opts, "prefill-slo") || args_get(opts, n_opts, "decode-slo");
    if (!args_get(opts, n_opts, "mode")) {
        if (slo) return status_fail(ST_USAGE, "--prefill-slo/--decode-slo: give the policy with --mode");
        TRY(cli_load_model(opts, n_opts, m));
        Status st = cli_level_view(opts, n_opts, m, &cv->lv, view);
        if (st != ST_OK) llama_free(m);
        return st;
    }
    if (args_get(opts, n_opts, "level"))
        return status_fail(ST_USAGE, "--level runs one level as it is; with --mode and SLOs, the policy picks the view");
    TRY(cli_policy_open(opts, n_opts, m, &cv->pol));
    Decision d;
    PolicyRequest rq = {0};
    Status st = cv->pol.policy->decide(cv->pol.state, &rq, &cv->pol.slo, &d);
    if (st == ST_OK && d.lm)
        st = status_fail(ST_UNSUPPORTED, "--mode %s answers with another model (%s): this command runs the served "
                         "model's views; use eval", cv->pol.policy->name, d.what);
    if (st != ST_OK) {
        cli_policy_close(&cv->pol);
        llama_free(m);
        return st;
    }
    *view = d.view;
    log_info("%s at SLO (%g, %g): %s", cv->pol.policy->name, cv->pol.slo.prefill, cv->pol.slo.decode, d.what);
    return ST_OK;
}

void cli_view_free(CliView *cv) {
    level_view_free(&cv->lv);
    cli_policy_close(&cv->pol);
}

Status cli_load_tokenizer(const ArgOpt *opts, int n_opts, Tokenizer **tok) {
    const char *path = args_get(opts, n_opts, "tokenizer");
    return path ? tokenizer_load_json(tok, path) : tokenizer_load_for_model(tok, args_get(opts, n_opts, "model"));
}

Status cli_level_view(const ArgOpt *opts, int n_opts, const LlamaModel *m, LevelView *lv, const LlamaView **view) {
    memset(lv, 0, sizeof *lv);
    *view = NULL;
    const char *level = args_get(opts, n_opts, "level"), *art = args_get(opts, n_opts, "artifact");
    if (!level) return ST_OK;
    if (!art) return status_fail(ST_USAGE, "--level needs --artifact (the level table and adapters)");
    TRY(level_view_load(art, m, level, args_get(opts, n_opts, "no-lora") != NULL, lv));
    *view = &lv->view;
    return ST_OK;
}

// Splits text on ';' into sequences of whitespace-separated integers.
Status cli_parse_ids(const char *text, int32_t **ids_out, int32_t **mask_out, int *n_seq_out, int *T_out) {
    *ids_out = *mask_out = NULL;
    size_t cap = strlen(text) + 1;
    int32_t *flat = malloc(cap * sizeof *flat); // every id needs at least one character
    int *lens = calloc(cap, sizeof *lens);
    if (!flat || !lens) {
        free(flat);
        free(lens);
        return status_fail(ST_OOM, "out of memory");
    }
    int n_seq = 1, total = 0, T = 0;
    Status st = ST_OK;
    for (const char *p = text; *p && st == ST_OK;) {
        if (isspace((unsigned char)*p)) { p++; continue; }
        if (*p == ';') { n_seq++; p++; continue; }
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 0 || v > INT32_MAX || (*end && !isspace((unsigned char)*end) && *end != ';'))
            st = status_fail(ST_USAGE, "--ids: '%.*s' is not a token id", (int)strcspn(p, " \t;"), p);
        else {
            flat[total++] = (int32_t)v;
            lens[n_seq - 1]++;
            p = end;
        }
    }
    for (int b = 0; st == ST_OK && b < n_seq; b++) {
        if (lens[b] == 0) st = status_fail(ST_USAGE, "--ids: sequence %d is empty", b);
        if (lens[b] > T) T = lens[b];
    }
    if (st == ST_OK) {
        *ids_out = calloc((size_t)n_seq * (size_t)T, sizeof **ids_out);
        *mask_out = calloc((size_t)n_seq * (size_t)T, sizeof **mask_out);
        if (!*ids_out || !*mask_out) st = status_fail(ST_OOM, "out of memory");
    }
    for (int b = 0, k = 0; st == ST_OK && b < n_seq; b++) {
        int pad = T - lens[b];
        for (int t = 0; t < lens[b]; t++, k++) {
            (*ids_out)[b * T + pad + t] = flat[k];
            (*mask_out)[b * T + pad + t] = 1;
        }
    }
    free(flat);
    free(lens);
    if (st != ST_OK) {
        free(*ids_out);
        free(*mask_out);
        *ids_out = *mask_out = NULL;
        return st;
    }
    *n_seq_out = n_seq;
    *T_out = T;
    return ST_OK;
}

void cli_kill_after_step(void *ctx, int64_t steps) {
    if (steps == *(const long *)ctx) raise(SIGKILL);
}

// Appends one line to path atomically (the old content, then the line, renamed into place).
Status cli_append_line(const char *path, const char *line) {
    char *old = NULL;
    size_t old_len = 0;
    struct stat sb;
    if (stat(path, &sb) == 0) TRY(read_text_file(path, &old, &old_len));
    size_t n = strlen(line);
    char *buf = malloc(old_len + n);
    if (!buf) {
        free(old);
        return status_fail(ST_OOM, "out of memory");
    }
    if (old_len) memcpy(buf, old, old_len);
    memcpy(buf + old_len, line, n);
    Status st = write_file_atomic(path, buf, old_len + n);
    free(buf);
    free(old);
    return st;
}

// x as Python's str(float) writes it: the shortest decimal that reads back as the same double.
void cli_py_float(double x, char *num, size_t n) {
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(num, n, "%.*g", prec, x);
        if (strtod(num, NULL) == x) break;
    }
    if (!strchr(num, '.') && !strchr(num, 'e')) strncat(num, ".0", n - strlen(num) - 1);
}
