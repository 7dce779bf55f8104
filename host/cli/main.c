// elastilm: one binary, `elastilm <command> [options]`.
#include <stdio.h>
#include <string.h>

#include "cli.h"

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
    {"ppl", cmd_ppl, "perplexity on held-out text, optionally at an elastic level"},
    {"lora", cmd_lora, "LoRA fine-tuning (alpaca or plain text), resumable, data-parallel under mpirun"},
    {"textsets", cmd_textsets, "calibration / recovery / held-out text from BoolQ's Wikipedia passages"},
    {"eval", cmd_eval, "multiple-choice accuracy on ARC_E, OBQA, PIQA, SCIQ, Octopus or LlamaTouch"},
};

static void usage(FILE *fp) {
    fprintf(fp, "usage: elastilm <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(fp, "\n'elastilm <command> --help' lists a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "elastilm: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
