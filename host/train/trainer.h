// trainer.h: the LoRA training loop (LLM-Pruner's post_training recipe).
//
// Each optimizer step takes a global batch of sequences from a seeded
// per-epoch shuffle, splits it into micro-batches, gives micro-batch i to rank
// i % world, and accumulates gradients of the global batch's mean token loss
// (every counted token weighs the same, however the batch is split); then
// all-reduce, clipping, AdamW at the scheduled rate. Validation every N steps
// keeps the best adapter. Everything that decides a step (data order,
// dropout masks) is a function of (seed, step), so a run resumed from a
// checkpoint continues with exactly the numbers of an uninterrupted one.
#ifndef ELASTILM_TRAINER_H
#define ELASTILM_TRAINER_H

#include <stdbool.h>
#include <stdint.h>

#include "dist/dist.h"
#include "models/llama.h"
#include "train/data.h"
#include "models/lora.h"
#include "train/optim.h"

typedef struct {
    int epochs;
    int batch;          // sequences per optimizer step (global, over all ranks)
    int micro_batch;    // sequences per forward/backward
    int eval_every;     // optimizer steps between validations; 0 = only at the end
    int save_every;     // optimizer steps between checkpoints; 0 = only at the end
    int64_t max_steps;  // stop after this many steps; 0 = all epochs
    uint64_t seed;
    bool recompute;     // activation recomputation per layer
} LoopOptions;

typedef struct {
    const LlamaModel *m;
    const LlamaWidth *widths;   // view trained, NULL = full model
    LoraSet *lora;              // trained in place; holds the best adapter on return
    const TokenData *data;
    const DataSplit *split;
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
    int64_t best_step;      // step of the best adapter (0 = the initial one)
    double last_train_loss; // mean token loss of the last step
    double tokens_per_s;    // trained tokens per second in this process's run
} TrainResult;

// Optimizer steps the job will run (epochs x ceil(n_train / batch), capped by max_steps).
int64_t trainer_total_steps(const TrainJob *job);

Status trainer_run(const TrainJob *job, TrainResult *res);

#endif
