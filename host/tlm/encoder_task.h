// encoder_task.h: training an encoder's classification head as a TrainModel
// (train/trainer.h drives it): labelled sequences packed into micro-batches.
// The score head (per-token targets) and the decision head (per-sequence
// targets, one per label group) are two uses.
#ifndef ELASTILM_ENCODER_TASK_H
#define ELASTILM_ENCODER_TASK_H

#include <stdint.h>

#include "models/encoder.h"
#include "train/train_model.h"

typedef struct {
    const int32_t *ids;     // [N] sequences back to back
    const int32_t *start;   // [n + 1] sequence starts, start[n] = N
    int n;                  // sequences (the examples)
    const int32_t *targets; // per_seq 0: [N] one per token; else [n * per_seq]; negative = not counted
    int per_seq;            // targets per sequence (a sequence head's label groups, or 1); 0 = per token
} EncoderTaskData;

// Counted units: a sequence's counted tokens (per token) or 1 for a sequence
// with any target counted (per sequence); size: its length. A micro-batch packs
// up to micro_batch sequences.
typedef struct {
    TrainModel tm;          // what trainer_run drives (tm.ctx points here: do not move it)
    EncoderTrain *t;
    EncoderTaskData data;
    int max_seqs;
    int32_t *ids, *targets; // [capacity] one packed micro-batch
    int32_t *cu;            // [max_seqs + 1]
} EncoderTaskModel;

// kind names the parameters in checkpoints ("score_head", "decision_head").
// The model's head must match the data: a token head for per-token targets, a
// sequence head with per_seq groups (or one softmax when per_seq is 1) otherwise.
Status encoder_task_init(EncoderTaskModel *em, Encoder *m, const EncoderTaskData *d, const EncoderTrainOptions *o,
                         int micro_batch, const char *kind);
void encoder_task_free(EncoderTaskModel *em);

#endif
