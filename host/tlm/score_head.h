// score_head.h: the TLM's score head, token classification keep (1) / drop (0)
// on an encoder: its training as a TrainModel (train/trainer.h drives it), its
// token F1 on held-out labels, and the keep scores compression reads.
#ifndef ELASTILM_SCORE_HEAD_H
#define ELASTILM_SCORE_HEAD_H

#include <stdint.h>

#include "models/encoder.h"
#include "text/tokenizer.h"
#include "tlm/score_data.h"
#include "train/train_model.h"

// Examples are ScoreData's sequences; counted units their labelled pieces,
// size their length. A micro-batch packs up to micro_batch sequences.
typedef struct {
    TrainModel tm;        // what trainer_run drives (tm.ctx points here: do not move it)
    EncoderTrain *t;
    const ScoreData *data;
    int max_seqs;
    int32_t *ids, *targets; // [capacity] one packed micro-batch
    int32_t *cu;            // [max_seqs + 1]
} ScoreTrainModel;

Status score_train_model_init(ScoreTrainModel *sm, Encoder *m, const ScoreData *d, const EncoderTrainOptions *o,
                              int micro_batch, float dropout);
void score_train_model_free(ScoreTrainModel *sm);

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
