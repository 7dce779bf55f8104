// decision_labels.h: the decision head's labels, the expensive step. For one
// request, correctness is evaluated once for every (prompt ratio, model ratio)
// pair: the system prompt compressed by the score head at each of the 10
// prompt ratios, scored by each of the 9 elastic levels with its LoRA (the
// level view, shared-prefix scoring: consecutive prompts share their cached
// prefix). The labels of all 48 SLO pairs then follow from that table
// (tlm_label) without running the LLM again; the artifact re-ran it for every
// feasible pair of every SLO pair.
#ifndef ELASTILM_DECISION_LABELS_H
#define ELASTILM_DECISION_LABELS_H

#include <stdint.h>

#include "elastic/artifact.h"
#include "eval/eval.h"
#include "tlm/decision.h"
#include "tlm/prompt_compress.h"

typedef struct {
    const LlamaModel *m;     // reordered by the artifact's permutation
    const Tokenizer *tok;    // the LLM's
    const char *artifact;    // level tables and adapters
    bool no_lora;
    PromptCompressor *pc;    // the score head's compression
    Device dev;
} LabelerConfig;

typedef struct {
    CorrectTable table;
    int64_t tokens_run;      // LLM tokens run for this table
    int64_t tokens_artifact; // LLM tokens the artifact's loop runs for the same 48 SLO pairs (every feasible
                             // pair of every SLO pair, each candidate scored from scratch)
} LabelResult;

typedef struct Labeler Labeler;

// Loads the nine levels' views (widths and adapters) and a scorer.
Status labeler_new(Labeler **L, const LabelerConfig *c);
void labeler_free(Labeler *L);
// The correctness table of one request (its system prompt, query template and
// question); judged top-1 by the artifact's mean log-probability rule.
Status labeler_table(Labeler *L, const EvalPrompt *prompt, const McQuestion *q, uint64_t request, LabelResult *out);

#endif
