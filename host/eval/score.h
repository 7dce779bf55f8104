// score.h: multiple-choice scoring by log-likelihood, as the artifact scores
// (ELASTICLLM/ARC_E.py:2266-2311): candidate = prompt + choice with no separator, no BOS;
// the bare choice is tokenized alone and its L tokens are aligned to the tail
// of the candidate; a choice's score is the mean log-probability of those
// tokens. With a shared prefix, the KV cache of the tokens every candidate
// (and the previous question) shares is computed once.
#ifndef ELASTILM_SCORE_H
#define ELASTILM_SCORE_H

#include <stdbool.h>

#include "models/causal_lm.h"
#include "models/llama.h"
#include "text/tokenizer.h"

typedef struct {
    float mean_logprob; // the artifact's score: mean over the bare choice's tokens
    float sum_logprob;  // their sum (lm-evaluation-harness style acc)
    int n_tokens;       // bare choice tokens
    int n_bytes;        // UTF-8 bytes of the choice (acc_norm divides the sum by these)
} ChoiceScore;

typedef struct {
    CausalLM lm;           // the model scored with
    const Tokenizer *tok;
    Device dev;
    bool share_prefix;
    void *prefix;          // one sequence: the cached shared prefix (a session of lm; NULL until needed)
    int32_t *prefix_ids;   // [prefix_cap] the tokens in it
    int prefix_cap;
    long tokens_run;       // tokens pushed through the model (for tokens/s)
    const LlamaView *view; // the elastic level and adapters scored with (NULL = the full model)
} Scorer;

// max_tokens: the longest candidate (prompt + choice) this scorer will see.
Status scorer_init(Scorer *s, const LlamaModel *m, const Tokenizer *tok, Device dev, bool share_prefix, int max_tokens);
// The same for any causal LM (lm is copied; its model must outlive the scorer).
Status scorer_init_lm(Scorer *s, const CausalLM *lm, const Tokenizer *tok, Device dev, bool share_prefix,
                      int max_tokens);
void scorer_free(Scorer *s);
// Scores later questions in another view (level); the cached prefix is dropped.
Status scorer_set_view(Scorer *s, const LlamaView *view);

// Scores each choice for one prompt; out has n_choices entries.
Status scorer_score(Scorer *s, const char *prompt, const char *const *choices, int n_choices, ChoiceScore *out);

// A request's prefill as a server would run it, timed: the cached prefix is
// dropped, the prompt's tokens run through the scorer's view from scratch
// (the last position's logits formed: the first token's distribution), then
// one decode step (the greedy token). The prompt's KV stays as the cached
// prefix, so scoring the request's choices next reuses it. *n_tokens: the
// prompt's tokens; the times in milliseconds (forward passes only).
Status scorer_prefill(Scorer *s, const char *prompt, int *n_tokens, double *prefill_ms, double *decode_ms);

// The number of tokens of text (no special tokens).
Status scorer_count_tokens(const Scorer *s, const char *text, int *n);

#endif
