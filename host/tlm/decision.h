// decision.h: the TLM's decision head (spec §3.2, §3.3): for a request and
// its latency SLO, one prompt ratio p (10 classes 1.0 ... 0.1) and one model
// ratio r (9 classes 0.2 ... 1.0), two argmaxes over one pooled output; the
// SLO guard that keeps the pair feasible; the labels derived from a table of
// per-(p, r) correctness; the decision text.
//
// The encoder carries a sequence head of 19 rows in two label groups (10, 9)
// and 14 SLO tokens added to its vocabulary: "[02]" ... "[09]" (prefill SLO
// 0.2 ... 0.9) then "<05>" ... "<10>" (decode SLO 0.5 ... 1.0), ids V ... V+13.
// Input text = "[0X] <0Y> " + text.
//
// Cost model (§4): prefill costs p r of the full model's, decode r; a pair is
// feasible under (prefill, decode) when p r <= prefill and r <= decode,
// compared in double precision with the ratios as Python's literals.
#ifndef ELASTILM_DECISION_H
#define ELASTILM_DECISION_H

#include <stdbool.h>
#include <stdint.h>

#include "models/encoder.h"
#include "text/tokenizer.h"

#define TLM_N_PROMPT 10 // prompt-ratio classes: index i <-> TLM_PROMPT_RATIOS[i] = 1.0 - 0.1 i
#define TLM_N_MODEL 9   // model-ratio classes: index j <-> TLM_MODEL_RATIOS[j] = 0.2 + 0.1 j
#define TLM_N_SLO_TOKENS 14
#define TLM_N_PREFILL_SLOS 8 // the label grid: prefill 0.2 ... 0.9
#define TLM_N_DECODE_SLOS 6  //                 decode 0.5 ... 1.0

extern const double TLM_PROMPT_RATIOS[TLM_N_PROMPT];
extern const double TLM_MODEL_RATIOS[TLM_N_MODEL];
extern const double TLM_PREFILL_SLOS[TLM_N_PREFILL_SLOS];
extern const double TLM_DECODE_SLOS[TLM_N_DECODE_SLOS];
extern const char *const TLM_SLO_TOKENS[TLM_N_SLO_TOKENS];

// p r <= prefill and r <= decode.
bool tlm_feasible(double p, double r, double prefill, double decode);

// The guard (§3.3 step 2, ARC_E.py:2185-2189): a feasible (p, r) is kept; else
// r becomes the largest model ratio r' with p r' <= prefill and r' <= decode
// (1.0 when none). p never changes. Returns the model-ratio index.
int tlm_guard(int p_index, int r_index, double prefill, double decode);

// "[0X] <0Y> " for an SLO pair on the grid (prefill 0.2 ... 1.0, decode 0.5 ...
// 1.0); prefill 1.0 maps to "[09]" as the artifact's e2e script maps it.
Status tlm_slo_prefix(double prefill, double decode, char buf[16]);

// ---- labels ------------------------------------------------------------------

// Correctness of one request at every (prompt ratio, model ratio):
// ok[i][j] for TLM_PROMPT_RATIOS[i], TLM_MODEL_RATIOS[j].
typedef struct {
    uint8_t ok[TLM_N_PROMPT][TLM_N_MODEL];
} CorrectTable;

// The label of one SLO pair, as class indices (*pi, *ri). Paper (compat
// false): the cheapest correct feasible pair: smallest p r (compared exactly,
// in hundredths, so that equal costs tie whatever double rounding says), then
// larger r, then larger p; false when no feasible pair is correct (no label: the
// example carries no evidence). compat (the artifact's loop,
// train_mobilebert_decisionhead.py:594-625): r ascending, p from 1.0 down,
// the last correct feasible pair wins; default (0.1, 1.0); always true.
bool tlm_label(const CorrectTable *t, double prefill, double decode, bool compat, int *pi, int *ri);

// ---- the head ----------------------------------------------------------------

// Makes a decision head on an encoder loaded without one: the 14 SLO tokens
// appended to the vocabulary (tokenizer.json text tok_json -> *tok_out), the
// embedding grown to match (new rows seeded), a 19-row sequence head in groups
// (10, 9) with a pooler as transformers' BertForSequenceClassification has.
Status tlm_decision_init(Encoder *m, const char *tok_json, const char *what, uint64_t seed, char **tok_out);

// Checks that an encoder and tokenizer form a decision head (the group
// sizes, the SLO tokens at the right ids); what names the source.
Status tlm_decision_check(const Encoder *m, const Tokenizer *tok, const char *what);

// The encoder input for a text: [CLS] pieces [SEP] of "[0X] <0Y> " + head +
// tail, at most max_len tokens. When too long, the end of head is dropped so
// that tail (the query with its question) survives whole where it fits; the
// artifact (keep_tail false) cuts from the right as tokenizer(truncation=True)
// does. ids: [max_len]; returns the count in *n.
Status tlm_decision_encode(const Tokenizer *tok, const char *prefix, const char *head, const char *tail, int max_len,
                           bool keep_tail, int32_t *ids, int *n);

// The tail of the paper's decision text: the query template rendered with the
// question (malloc'd; NULL when out of memory). One definition for training
// (tlm decision) and serving (Ours), so both read the same text.
char *tlm_decision_query(const char *query, const char *question);

// The two argmaxes (first maximum wins) over the head's logits for one input.
Status tlm_decide(EncoderSession *s, const int32_t *ids, int n, int *pi, int *ri);

#endif
