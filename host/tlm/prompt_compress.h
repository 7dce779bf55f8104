// prompt_compress.h: compressing a system prompt to a prompt ratio p with the
// TLM (the library function the `compress` command, eval and the policies
// call). Only the system prompt is compressed; the query and the choices
// never are. The ratio is ElastiLM's (spec §3.3 step 4): with S the LLM
// tokens of the system prompt and Q those of the query (both encoded with the
// tokenizer's special tokens, as tokenizer(text) does: BOS for LLaMA),
// sys_ratio = max(0, ((S + Q) p - Q) / S), and count = int(sys_ratio n) + 1
// of the system prompt's n encoder pieces are kept (the artifact, --compat:
// int(sys_ratio S) + 1 encoder positions). Methods:
//   score       the score head's highest p(keep) tokens in their original order,
//               the text rebuilt from their byte spans (tlm_compress_paper);
//               with compat: the artifact's lowest class-1 logits, the LLM ids
//               at those encoder positions decoded with the encoder's vocabulary
//               (tlm_compress_compat);
//   random      count tokens drawn uniformly (seeded per request), rebuilt as
//               the score method rebuilds: the ablation of the score head;
//   llmlingua2  the LLMLingua-2 rule (llmlingua 0.2.2) on the same classifier
//               at rate sys_ratio, force tokens "\n" and "?".
// The last system prompt's scores are cached: a dataset's questions share one
// system prompt, so the encoder runs once per dataset and ratio.
#ifndef ELASTILM_PROMPT_COMPRESS_H
#define ELASTILM_PROMPT_COMPRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "eval/prompts.h"
#include "models/encoder.h"
#include "text/tokenizer.h"

typedef enum { PC_SCORE = 0, PC_RANDOM, PC_LLMLINGUA2 } PromptMethod;

// "score", "random" or "llmlingua2" (ST_USAGE naming the flag otherwise).
Status prompt_method_parse(const char *name, PromptMethod *m);
const char *prompt_method_name(PromptMethod m);

typedef struct {
    PromptMethod method;
    bool compat;               // the artifact's selection and rebuild (score method only)
    const Encoder *tlm;        // with a 2-label token head (score, llmlingua2)
    const Tokenizer *enc;      // the TLM's WordPiece tokenizer
    const Tokenizer *llm_tok;  // counts S and Q; compat decodes its ids (may be NULL: the encoder's pieces count)
    const Tokenizer *cl100k;   // llmlingua2: word weights (tokenizer_load_tiktoken)
    uint64_t seed;             // random
    int max_len;               // encoder window with [CLS] and [SEP] (default 512)
} PromptCompressorConfig;

typedef struct PromptCompressor PromptCompressor;

Status prompt_compressor_new(PromptCompressor **c, const PromptCompressorConfig *cfg);
void prompt_compressor_free(PromptCompressor *c);

// Tokens of text under the LLM's tokenizer with its special tokens (S or Q of the formula).
Status prompt_count_llm(const PromptCompressor *c, const char *text, long *n);

// The compressed system prompt (malloc'd) at ratio p in (0, 1], given the
// query's token count Q (0: the whole prompt is the system prompt, so the
// count is int(p S) + 1). request: the random method's per-request seed.
// *kept (may be NULL): encoder tokens kept (-1 for llmlingua2, which keeps words); p = 1 returns the prompt unchanged
// (the artifact still rebuilds it; --compat does too).
Status prompt_compress(PromptCompressor *c, const char *sys, long Q, double p, uint64_t request, char **out,
                       long *kept);
// One multiple-choice request's system prompt compressed at ratio p: Q is the
// longest rendered query + choice in LLM tokens (ARC_E.py:2204-2215; every
// choice counted, as the paper means; SCIQ's artifact script counts only the
// first). *sys_out malloc'd; *llm_tokens (may be NULL): its LLM token count.
Status prompt_compress_request(PromptCompressor *c, const EvalPrompt *prompt, const char *question,
                               const char *const *choices, int n_choices, double p, uint64_t request, char **sys_out,
                               long *llm_tokens);
// S of the last system prompt given to prompt_compress (0 before any).
long prompt_system_tokens(const PromptCompressor *c);

#endif
