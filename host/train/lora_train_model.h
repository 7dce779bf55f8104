// lora_train_model.h: LoRA training of a LLaMA (view) on token sequences, as a
// TrainModel for the training loop (trainer.h).
//
// Examples are TokenData's sequences; a sequence's counted units are its
// positions with a next-token target (data_counted), its size its length in
// tokens. A micro-batch packs its sequences back to back (llama_train.h); the
// capacity is micro_batch times the longest sequence, so the loop's micro-batches
// are always micro_batch sequences (the last one of a batch fewer). The
// parameters are the LoRA set's; step() runs llama_train_step with the adapters'
// dropout masks drawn from the loop's seed.
#ifndef ELASTILM_LORA_TRAIN_MODEL_H
#define ELASTILM_LORA_TRAIN_MODEL_H

#include <stdbool.h>

#include "models/llama.h"
#include "models/lora.h"
#include "train/data.h"
#include "train/llama_train.h"
#include "train/train_model.h"

typedef struct {
    TrainModel tm;          // what trainer_run drives (tm.ctx points at this struct: do not move it)
    LlamaTrain t;
    const TokenData *data;
    int max_seqs;           // sequences per micro-batch
    int32_t *ids, *targets; // [capacity] one packed micro-batch
    int32_t *cu;            // [max_seqs + 1]
} LoraTrainModel;

// widths: the view trained (NULL = the full model); lora: trained in place.
// micro_batch: the most sequences one step()/eval() call receives.
Status lora_train_model_init(LoraTrainModel *lm, const LlamaModel *m, const LlamaWidth *widths, LoraSet *lora,
                             const TokenData *data, int micro_batch, bool recompute);
void lora_train_model_free(LoraTrainModel *lm);

#endif
