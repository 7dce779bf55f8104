// data.h: training data as token sequences with a loss mask.
//
// Two formats:
//  - alpaca: a JSON array (.json) or JSON lines (.jsonl, optionally .gz) of
//    {"instruction", "input" (optional), "output"}; each record is rendered with
//    the Alpaca template and tokenized as LLM-Pruner's post_training does
//    (LLMPruner/post_training.py): truncated to the cutoff, EOS appended when absent
//    and there is room, and the prompt's tokens carry no loss unless
//    train_on_inputs.
//  - text: plain text (.txt, optionally .gz); documents are separated by blank
//    lines, each is tokenized and cut into windows of at most cutoff tokens,
//    with loss on every token (causal-LM training).
#ifndef ELASTILM_DATA_H
#define ELASTILM_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/status.h"
#include "text/tokenizer.h"

typedef enum { DATA_AUTO = 0, DATA_ALPACA, DATA_TEXT } DataFormat;

typedef struct {
    DataFormat format;
    int cutoff;            // most tokens per sequence (256)
    bool train_on_inputs;  // alpaca: loss on the prompt too
    int eos_id;            // appended to alpaca sequences; < 0: none
} DataOptions;

typedef struct {
    int32_t *ids;       // all tokens, sequences back to back
    int64_t *start;     // [n + 1] sequence i is ids[start[i] .. start[i+1])
    int32_t *n_masked;  // [n] leading tokens of sequence i that are not predicted (the prompt)
    int n;              // sequences
    int dropped;        // records that gave fewer than 2 tokens or nothing to predict
} TokenData;

Status data_load(TokenData *d, const char *path, const Tokenizer *tok, const DataOptions *o);
void data_free(TokenData *d);
// Appends src's sequences to dst (their indices follow dst's).
Status data_append(TokenData *dst, const TokenData *src);

// The Alpaca prompt for a record (input may be NULL or ""); malloc'd.
char *alpaca_prompt(const char *instruction, const char *input);

static inline int data_len(const TokenData *d, int i) { return (int)(d->start[i + 1] - d->start[i]); }
// Positions of sequence i that carry a loss (targets): len - 1 - max(n_masked - 1, 0).
int data_counted(const TokenData *d, int i);
// Next-token targets of sequence i into t[len]: t[p] = ids[p+1] when p+1 >= n_masked, else -1; t[len-1] = -1.
void data_targets(const TokenData *d, int i, int32_t *t);

// A seeded split: the first n_val sequences of a shuffled order are held out.
typedef struct {
    int *train, *val;   // sequence indices
    int n_train, n_val;
} DataSplit;
Status data_split(const TokenData *d, int n_val, uint64_t seed, DataSplit *s);
// The same split of any n examples (data_split is split_examples(d->n, ...)).
Status split_examples(int n, int n_val, uint64_t seed, DataSplit *s);
void data_split_free(DataSplit *s);

#endif
