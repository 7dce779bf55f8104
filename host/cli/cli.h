// cli.h: the subcommands of `elastilm` and what they share.
#ifndef ELASTILM_CLI_H
#define ELASTILM_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "args.h"
#include "elastic/artifact.h"
#include "models/llama.h"
#include "policy/policy.h"
#include "text/tokenizer.h"
#include "runtime/tensor.h"

int cmd_info(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_lora(int argc, char **argv);
int cmd_textsets(int argc, char **argv);
int cmd_anchors(int argc, char **argv);
int cmd_elasticize(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_prepare(int argc, char **argv);
int cmd_tlm(int argc, char **argv);
int cmd_tlm_decision(const char *sub, int argc, char **argv); // tlm decision-labels | decision
int cmd_compress(int argc, char **argv);
int cmd_trace(int argc, char **argv);   // cmd_trace.c
int cmd_export(int argc, char **argv);  // cmd_export.c
int cmd_profile(int argc, char **argv); // cmd_e2e.c
int cmd_e2e(int argc, char **argv);     // cmd_e2e.c

// The options every model command takes, in this order at the start of its table.
#define CLI_COMMON_OPTS \
    {"model", true, "HF model directory or .gguf file (required)", NULL}, \
    {"device", true, "cpu, cuda or cuda:N (default: cuda:0 when a GPU backend is usable, else cpu)", NULL}, \
    {"threads", true, "CPU threads (default: the cores other processes leave free; $ELASTILM_THREADS)", NULL}, \
    {"quiet", false, "no progress or info messages", NULL}, \
    {"help", false, "show this help", NULL}, \
    {"artifact", true, "elastic artifact (.h5): the model is reordered by its permutation", NULL}, \
    {"level", true, "elastic level r in (0, 1] of the artifact to run (its widths and LoRA)", NULL}, \
    {"no-lora", false, "run the level without its LoRA adapter", NULL}, \
    {"weights", true, "CPU weight format for inference: f32 (default), bf16 or q8 (8-bit blocks of 32); " \
                      "the GPU keeps its own bf16 weights, training needs f32", NULL}
#define CLI_N_COMMON 9

// Calibration sampling (anchors, elasticize, prepare): the text and the batch drawn from it.
#define CLI_CALIB_OPTS \
    {"calib", true, "calibration text: documents separated by blank lines", NULL}, \
    {"tokenizer", true, "tokenizer.json to use (default: the model's own)", NULL}, \
    {"samples", true, "calibration samples (default 10)", NULL}, \
    {"seq", true, "tokens per sample (default 64)", NULL}, \
    {"seed", true, "sampling seed (default 42)", NULL}

typedef struct {
    const char *calib; // NULL when not given (and not required)
    long samples, seq, seed;
    long keep;         // --keep where the command has it (default 6)
} CalibArgs;
// Reads CLI_CALIB_OPTS (and --keep): --calib is a usage error when required and absent.
Status cli_calib_args(const ArgOpt *opts, int n_opts, bool required, CalibArgs *a);

// The options of the commands that serve a policy (eval, forward, generate).
#define CLI_POLICY_OPTS \
    {"mode", true, "the policy: full (default), Off-The-Shelf, Lingua2+Contextual, LLMPruner, LayerReduction, " \
                   "LaCo, ShortGPT, AttnDrop, Ours", NULL}, \
    {"ladder", true, "Off-The-Shelf: the model ladder file (\"<threshold> <model>\" lines, policy/ladder.h)", NULL}, \
    {"prefill-slo", true, "prefill SLO, a fraction of the full model's TTFT: 0.2 ... 1.0 (default 1.0)", NULL}, \
    {"decode-slo", true, "decode SLO, a fraction of the full model's per-token time: 0.5 ... 1.0 (default 1.0)", NULL}, \
    {"compat", true, "paper (default) or artifact: the baselines' variant (docs/deviations.md)", NULL}

// Applies --device, --threads, --quiet and --weights; checks --model is given.
// --weights bf16|q8 runs on the CPU: with it, an explicit --device cuda is
// refused and a default GPU choice falls back to the CPU.
Status cli_setup(const ArgOpt *opts, int n_opts, Device *dev);
Status cli_setup_device(const ArgOpt *opts, int n_opts, Device *dev); // the same without remembering the device
// --threads (1..1024) to the ops; absent: the default (runtime/threads.h).
Status cli_threads(const ArgOpt *opts, int n_opts);
// The cl100k_base BPE file: `given` (--cl100k) when not NULL, else where
// `datasets/fetch.sh tiktoken` puts it ($ELASTILM_CACHE, default ~/.cache/elastilm).
void cli_cl100k_path(const char *given, char *buf, size_t n);
// For CPU-only commands (training): an explicit --device cuda is refused, a
// default GPU choice falls back to the CPU; --weights other than f32 is a
// usage error (training reads and updates f32 weights).
Status cli_require_cpu(const ArgOpt *opts, int n_opts, Device *dev, const char *what);
// The CPU weight format cli_setup read from --weights (DT_F32 by default).
DType cli_weights(void);

// Loads --model; with --artifact, reorders it by the artifact's permutation;
// then converts the matrices to --weights (CPU), or on a CUDA --device moves
// the weights there (bf16; f16 for f16 checkpoints).
Status cli_load_model(const ArgOpt *opts, int n_opts, LlamaModel *m);
// Converts the loaded model's matrices to --weights (CPU) or moves them to the
// CUDA --device (the second half of cli_load_model).
Status cli_place_model(LlamaModel *m);

// The policy a serving command runs: --mode (default full), --prefill-slo and
// --decode-slo (default 1.0 1.0), --compat. Loads --model (reordered by
// --artifact when the policy serves elastic levels), opens the policy on the
// f32 weights, then converts or moves the model and the policy's own weights.
// On failure nothing is left open.
typedef struct {
    const Policy *policy;
    void *state;
    Slo slo;
    Compat compat;
    bool open;
} CliPolicy;
Status cli_policy_open(const ArgOpt *opts, int n_opts, LlamaModel *m, CliPolicy *p);
void cli_policy_close(CliPolicy *p);

// The model and the one view a command runs: with --mode, the policy's decision
// at --prefill-slo/--decode-slo (cli_policy_open); else --artifact [--level r]
// as cli_load_model + cli_level_view. Free with cli_view_free, then llama_free.
typedef struct {
    LevelView lv;
    CliPolicy pol;
} CliView;
Status cli_load_model_view(const ArgOpt *opts, int n_opts, LlamaModel *m, CliView *cv, const LlamaView **view);
void cli_view_free(CliView *cv);

// With --level (needs --artifact): the level's widths and adapter in *lv and
// *view = &lv->view; without: *view = NULL. Free lv with level_view_free.
Status cli_level_view(const ArgOpt *opts, int n_opts, const LlamaModel *m, LevelView *lv, const LlamaView **view);

// The tokenizer of --tokenizer (a tokenizer.json) if the command has that
// option and it is given, else the model's own (HF directory or GGUF vocabulary).
Status cli_load_tokenizer(const ArgOpt *opts, int n_opts, Tokenizer **tok);

// Parses token ids: "1 2 3" is one sequence; "1 2 3; 4 5" several, left-padded
// to the longest (pads get id 0 and mask 0). ids and mask are [n_seq*T], malloc'd.
Status cli_parse_ids(const char *text, int32_t **ids, int32_t **mask, int *n_seq, int *T);

// --kill-after-step: fault injection for the resume tests, a real SIGKILL after
// optimizer step *(const long *)ctx (a TrainJob.after_step hook).
void cli_kill_after_step(void *ctx, int64_t steps);

// Appends one line to path atomically (the old content, then the line, renamed into place).
Status cli_append_line(const char *path, const char *line);
// x as Python's str(float) writes it (the artifact's result lines): the shortest
// decimal that reads back as the same double, with ".0" on whole numbers.
void cli_py_float(double x, char *num, size_t n);

// Prints "elastilm: <message>" and returns the exit code for st (2 usage, 1 other).
int cli_fail(Status st);

#endif
