// score_data.h: labelled texts as encoder training sequences for the score head.
//
// Each labelled text becomes one sequence [CLS] pieces... [SEP] of at most
// max_len tokens (longer texts are cut: label files made by `tlm labels` are
// already chunked to fit). A WordPiece takes the label of the span holding its
// first byte; pieces outside every span, [CLS] and [SEP] are not counted (-100).
// With compat (the artifact's train_mobilebert_scorehead.py) every sequence is
// padded to max_len with [PAD] and, as no attention mask is used there, the
// pads are part of the sequence; [CLS], [SEP] and the pads are labelled 1,
// which is what its greedy match gives them when the compressed side matches
// in order.
#ifndef ELASTILM_SCORE_DATA_H
#define ELASTILM_SCORE_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "text/tokenizer.h"
#include "tlm/labels.h"

typedef struct {
    int32_t *ids;      // [N] sequences back to back
    int32_t *targets;  // [N] 1 keep, 0 drop, -100 not counted
    int32_t *start;    // [n + 1] sequence starts, start[n] = N
    int n;             // sequences
    int64_t n_tokens;  // N
    int64_t n_counted; // targets >= 0
    int32_t cls, sep, pad; // the encoder's special ids (F1 counts text pieces only)
} ScoreData;

Status score_data_build(ScoreData *d, const LabelSet *s, const Tokenizer *enc, int max_len, bool compat);
void score_data_free(ScoreData *d);

// The encoder's [CLS], [SEP] and [PAD] ids (an error naming the missing one).
Status score_special_ids(const Tokenizer *enc, int32_t *cls, int32_t *sep, int32_t *pad);

#endif
