// score_head.h: the TLM's score head, token classification keep (1) / drop (0)
// on an encoder: its training as a TrainModel (train/trainer.h drives it), its
// token F1 on held-out labels, and the keep scores compression reads.
#ifndef ELASTILM_SCORE_HEAD_H
#define ELASTILM_SCORE_HEAD_H

#include <stdint.h>

#include "models/encoder.h"
#include "text/tokenizer.h"
#include "tlm/encoder_task.h"
#include "tlm/score_data.h"

// The score head's training: ScoreData's sequences with per-token targets
// (encoder_task.h), kind "score_head". m needs a token head of 2 labels.
Status score_train_model_init(EncoderTaskModel *em, Encoder *m, const ScoreData *d, const EncoderTrainOptions *o,
                              int micro_batch);

// Confusion counts of argmax(logits) against the counted targets of the text
// pieces ([CLS], [SEP] and [PAD] are left out even where --compat labels them)
// of the sequences examples[0..n) (all when examples is NULL), keep = positive class.
typedef struct {
    int64_t tp, fp, fn, tn;
    double precision, recall, f1, accuracy;
} TokenF1;
Status score_head_f1(const Encoder *m, const ScoreData *d, const int *examples, int n, TokenF1 *out);

// Keep scores of the encoder pieces of a text (tokenized without special
// tokens, as tokenizer_encode gives them): the text is cut into windows of
// max_len - 2 pieces, each run as [CLS] window [SEP]. logits [n, 2] (host
// memory, class 0 = drop, 1 = keep) for pieces 0..n-1 of l.
Status score_head_logits(EncoderSession *s, const Encoder *m, const Tokenizer *enc, const TokenList *l, int max_len,
                         float *logits);

#endif
