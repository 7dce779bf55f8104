// prompts.h: the artifact's system prompts and question templates, verbatim
// (ELASTICLLM/<DS>.py; typos included, since they change the numbers).
#ifndef ELASTILM_PROMPTS_H
#define ELASTILM_PROMPTS_H

#include "dataset.h"

typedef struct {
    char *system;  // SYS_PROMPT (malloc'd); for Octopus and LlamaTouch built from the data files
    char *query;   // QUERY with one "{question}" placeholder (malloc'd)
} EvalPrompt;

// artifact_dir: the folder holding Octopus_refined/ and LlamaTouch/ (the
// artifact's Data/, bundled as datasets/elastilm-artifact); unused for the
// four HF datasets.
Status eval_prompt_build(EvalPrompt *p, DatasetId ds, const char *artifact_dir);
void eval_prompt_free(EvalPrompt *p);

// The four HF datasets' template for another multiple-choice task (the
// decision head's label questions): the artifact's intro, "Examples: " and n
// worked examples "\nQuestion: <q> Answer: <a>." as system prompt, query
// "Question: {question} Answer:". Braces in the examples become parentheses
// (the system text is a format string).
Status eval_prompt_from_examples(EvalPrompt *p, const char *const *questions, const char *const *answers, int n);

// system + query with {question} replaced (malloc'd).
char *eval_prompt_render(const EvalPrompt *p, const char *question);

// LlamaTouch's 77 selectable apps, in the artifact's order (LlamaTouch.py:27-105).
extern const char *const LLAMATOUCH_APPS[];
extern const int LLAMATOUCH_N_APPS;

#endif
