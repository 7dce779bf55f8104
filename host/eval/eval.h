// eval.h: one multiple-choice question, end to end: render the artifact's
// prompt, apply the Octopus length guard, score every choice, pick the
// prediction and decide correctness (ELASTICLLM/<DS>.py, e.g. ARC_E.py:2266-2311).
#ifndef ELASTILM_EVAL_H
#define ELASTILM_EVAL_H

#include <stdbool.h>

#include "dataset.h"
#include "prompts.h"
#include "score.h"

typedef enum {
    METRIC_ARTIFACT = 0, // mean log-prob of the bare choice's tokens (the artifact's rule)
    METRIC_ACC,          // their sum
    METRIC_ACC_NORM,     // their sum / the choice's UTF-8 bytes
} Metric;

Status eval_parse_metric(const char *name, Metric *m);
const char *eval_metric_name(Metric m);

typedef struct {
    float *scores; // [n_choices] under the chosen metric (malloc'd; the caller frees)
    int pred;      // argmax, first maximum wins
    bool correct;  // Octopus: the answer is among the five best
} EvalResult;

// The prompt eval_question scores q's choices after (the template rendered,
// Octopus's length guard applied): *text malloc'd.
Status eval_render(const Tokenizer *tok, const EvalPrompt *p, DatasetId ds, const McQuestion *q, char **text);

Status eval_question(Scorer *s, const EvalPrompt *p, DatasetId ds, const McQuestion *q, Metric metric, EvalResult *out);

#endif
