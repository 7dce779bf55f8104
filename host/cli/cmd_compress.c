// elastilm compress: a (system) prompt compressed to a prompt ratio by the
// TLM's score head, by random dropping, or by the LLMLingua-2 rule on the same
// classifier (tlm/prompt_compress.h). The compressed text goes to stdout.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "runtime/log.h"
#include "runtime/mapped_file.h"
#include "tlm/prompt_compress.h"
#include "tlm/tlm_store.h"

static ArgOpt opts[] = {
    {"tlm", true, "the TLM: an elastic artifact with tlm/score, or an HF token-classification encoder directory "
                  "(required)", NULL},
    {"ratio", true, "prompt ratio p in (0, 1] (required)", NULL},
    {"text", true, "the system prompt to compress", NULL},
    {"file", true, "read the system prompt from this file instead", NULL},
    {"query", true, "the query kept beside it: its tokens Q enter sys_ratio = max(0, ((S+Q)p - Q)/S) "
                    "(default: none, so sys_ratio = p)", NULL},
    {"method", true, "score (default), random or llmlingua2", NULL},
    {"compat", true, "paper (default) or artifact: keep the lowest-scored tokens and decode the LLM's ids with "
                     "the encoder's vocabulary, as the artifact does (needs --model)", NULL},
    {"model", true, "the LLM (HF directory or .gguf) whose tokenizer counts S and Q (default: the TLM's pieces)",
     NULL},
    {"cl100k", true, "cl100k_base.tiktoken for llmlingua2 (default: $ELASTILM_CACHE/tiktoken/... from "
                     "datasets/fetch.sh tiktoken)", NULL},
    {"seed", true, "random method's seed (default 42)", NULL},
    {"threads", true, "CPU threads (default: the cores other processes leave free; $ELASTILM_THREADS)", NULL},
    {"quiet", false, "no info messages", NULL},
    {"help", false, "show this help", NULL},
};
#define N_OPTS ((int)(sizeof opts / sizeof *opts))

static Status run(void) {
    const char *tlm = args_get(opts, N_OPTS, "tlm"), *ratio = args_get(opts, N_OPTS, "ratio");
    const char *text = args_get(opts, N_OPTS, "text"), *file = args_get(opts, N_OPTS, "file");
    const char *query = args_get(opts, N_OPTS, "query"), *model = args_get(opts, N_OPTS, "model");
    const char *compat = args_get(opts, N_OPTS, "compat"), *v;
    if (!tlm || !ratio) return status_fail(ST_USAGE, "compress: --tlm and --ratio are required");
    if (!text == !file) return status_fail(ST_USAGE, "compress: give one of --text or --file");
    double p;
    TRY(args_float(ratio, "ratio", 0, 1, &p));
    if (!(p > 0)) return status_fail(ST_USAGE, "--ratio: expected 0 < p <= 1, got %s", ratio);
    PromptCompressorConfig cfg = {.method = PC_SCORE, .seed = 42, .max_len = 512};
    if ((v = args_get(opts, N_OPTS, "method"))) TRY(prompt_method_parse(v, &cfg.method));
    Compat cc;
    TRY(compat_parse(compat, &cc));
    cfg.compat = cc == COMPAT_ARTIFACT;
    if (cfg.compat && !model) return status_fail(ST_USAGE, "compress: --compat artifact decodes the LLM's ids: give --model");
    long seed = 42;
    if ((v = args_get(opts, N_OPTS, "seed"))) TRY(args_int(v, "seed", 0, 1L << 62, &seed));
    cfg.seed = (uint64_t)seed;
    TRY(cli_threads(opts, N_OPTS));
    log_set_quiet(args_get(opts, N_OPTS, "quiet") != NULL);
    char *sys = NULL;
    if (file) TRY(read_text_file(file, &sys, NULL));
    else if (!(sys = strdup(text))) return status_fail(ST_OOM, "out of memory");

    Encoder m = {0};
    Tokenizer *enc = NULL, *llm = NULL, *cl = NULL;
    PromptCompressor *pc = NULL;
    char *out = NULL;
    bool have_m = false;
    Status st = tlm_open(tlm, &m, &enc);
    have_m = st == ST_OK;
    if (st == ST_OK && model) st = tokenizer_load_for_model(&llm, model);
    char clp[4096];
    if (st == ST_OK && cfg.method == PC_LLMLINGUA2) {
        cli_cl100k_path(args_get(opts, N_OPTS, "cl100k"), clp, sizeof clp);
        st = tokenizer_load_tiktoken(&cl, clp);
        if (st != ST_OK)
            st = status_wrap(st, "llmlingua2 weighs words by cl100k_base (--cl100k FILE, or datasets/fetch.sh tiktoken)");
    }
    cfg.tlm = &m, cfg.enc = enc, cfg.llm_tok = llm, cfg.cl100k = cl;
    if (st == ST_OK) st = prompt_compressor_new(&pc, &cfg);
    long Q = 0, S = 0, kept = 0;
    if (st == ST_OK && query) st = prompt_count_llm(pc, query, &Q);
    if (st == ST_OK) st = prompt_count_llm(pc, sys, &S);
    if (st == ST_OK) st = prompt_compress(pc, sys, Q, p, 0, &out, &kept);
    if (st == ST_OK) {
        fputs(out, stdout);
        fputc('\n', stdout);
        long outS = 0;
        prompt_count_llm(pc, out, &outS);
        char k[64] = "";
        if (kept >= 0) snprintf(k, sizeof k, ", %ld encoder tokens kept", kept);
        log_info("%s%s at p = %g: S = %ld, Q = %ld%s; %ld -> %ld %s", prompt_method_name(cfg.method),
                 cfg.compat ? " (artifact)" : "", p, S, Q, k, S, outS, llm ? "LLM tokens" : "TLM pieces");
    }
    free(out);
    prompt_compressor_free(pc);
    tokenizer_free(cl);
    tokenizer_free(llm);
    tokenizer_free(enc);
    if (have_m) encoder_free(&m);
    free(sys);
    return st;
}

int cmd_compress(int argc, char **argv) {
    Status st = args_parse(argc, argv, opts, N_OPTS, "compress");
    if (st != ST_OK) return cli_fail(st);
    if (args_get(opts, N_OPTS, "help")) {
        args_print_help("compress", "a system prompt compressed to a prompt ratio by the TLM (or llmlingua2, random)",
                        opts, N_OPTS);
        return 0;
    }
    st = run();
    return st == ST_OK ? 0 : cli_fail(st);
}
