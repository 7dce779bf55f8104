// trainer.h: the training loop (LLM-Pruner's post_training recipe), for any
// model that implements train_model.h.
//
// Each optimizer step takes a global batch of examples from a seeded
// per-epoch shuffle, splits it into micro-batches (consecutive examples, at
// most loop.micro_batch of them and at most the model's capacity in size),
// gives micro-batch i to rank i % world, and accumulates gradients of the
// global batch's mean loss per counted unit (every counted unit weighs the
// same, however the batch is split); then all-reduce, clipping, AdamW at the
// scheduled rate. Validation every N steps keeps the best parameters.
// Everything that decides a step (data order, the seed of each micro-batch)
// is a function of (seed, step), so a run resumed from a checkpoint continues
// with exactly the numbers of an uninterrupted one.
//
// The LLaMA LoRA trainer is one model (lora_train_model.h).
#ifndef ELASTILM_TRAINER_H
#define ELASTILM_TRAINER_H

#include <stdbool.h>
#include <stdint.h>

#include "dist/dist.h"
#include "train/data.h"
#include "train/optim.h"
#include "train/train_model.h"

typedef struct {
    int epochs;
    int batch;          // examples per optimizer step (global, over all ranks)
    int micro_batch;    // most examples per forward/backward
    int eval_every;     // optimizer steps between validations; 0 = only at the end
    int save_every;     // optimizer steps between checkpoints; 0 = only at the end
    int64_t max_steps;  // stop after this many steps; 0 = all epochs
    uint64_t seed;
} LoopOptions;

typedef struct {
    const TrainModel *model;    // trained in place; holds the best parameters on return
    const DataSplit *split;     // training and validation examples (indices into the model's examples)
    OptimConfig optim;          // warmup and lr used as given; total is set from the data
    LoopOptions loop;
    const char *out_dir;        // checkpoint.h5 and train_log.tsv; NULL = neither
    bool resume;                // continue from out_dir/checkpoint.h5 when it exists
    const char *fingerprint;    // the settings; a checkpoint from other settings is refused
    const Dist *dist;
    // Called after each optimizer step (and its checkpoint) with the steps done; may be NULL.
    void (*after_step)(void *ctx, int64_t steps);
    void *step_ctx;
} TrainJob;

typedef struct {
    int64_t steps;          // optimizer steps in the run
    double first_val_loss;  // before training (NaN without validation data)
    double best_val_loss;   // best validation loss seen
    int64_t best_step;      // step of the best parameters (0 = the initial ones)
    double last_train_loss; // mean loss per counted unit of the last step
    double size_per_s;      // trained size units (tokens for LoRA) per second in this process's run
} TrainResult;

// Optimizer steps the job will run (epochs x ceil(n_train / batch), capped by max_steps).
int64_t trainer_total_steps(const TrainJob *job);

Status trainer_run(const TrainJob *job, TrainResult *res);

#endif
