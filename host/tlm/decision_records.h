// decision_records.h: the label file of `elastilm tlm decision-labels`, one
// JSON line per request:
//   {"id": "csqa/<native id>", "task": "csqa", "system": SYS_PROMPT,
//    "query": "Question: {question} Answer:", "question": ..., "choices": [...],
//    "answer": k, "correct": ["011111111", ...], "tokens_run": n, "tokens_artifact": m}
// "correct" has one string per prompt ratio (1.0 ... 0.1), one character per
// model ratio (0.2 ... 1.0): '1' when the request was answered right there.
// The labels of the 48 SLO pairs are derived from it when the head is trained
// (tlm_label), under either rule.
#ifndef ELASTILM_DECISION_RECORDS_H
#define ELASTILM_DECISION_RECORDS_H

#include <stdbool.h>
#include <stddef.h>

#include "tlm/decision_labels.h"

typedef struct {
    char *id, *task, *system, *query, *question;
    char **choices;        // [n_choices]
    int n_choices, answer;
    LabelResult res;
} DecisionRecord;

typedef struct {
    DecisionRecord *v;     // [n]
    size_t n;
} DecisionRecords;

// One line (with its '\n'), malloc'd; NULL when out of memory.
char *decision_record_json(const DecisionRecord *r);
// Reads a label file. A malformed line is an ST_FORMAT error naming file:line,
// except, with torn_ok, a last line without its '\n' (a killed writer), which
// is left out; *good_bytes (may be NULL) = the bytes of the complete records.
Status decision_records_read(const char *path, bool torn_ok, DecisionRecords *out, size_t *good_bytes);
void decision_records_free(DecisionRecords *r);
void decision_record_free(DecisionRecord *r);

#endif
