// train_model.h: what the training loop (trainer.h) drives, whatever the model.
//
// A model offers a flat vector of trainable parameters and one of their
// gradients (all that AdamW, clipping, the all-reduce, the best-state copy and
// checkpoints see) and a set of examples numbered 0 .. n_examples-1. The loop
// decides which examples make each micro-batch and with what loss scale; the
// model runs them. Per example the model reports
//   counted: the units its loss sums over (tokens with a target for a
//            causal LM, labelled tokens for a token classifier). The loop
//            normalises by the global batch's count, so every counted unit of
//            the batch weighs the same however it is split over micro-batches
//            and ranks;
//   size:    what it costs in a micro-batch (tokens packed, padded length, ...),
//            for packing micro-batches up to the model's capacity and for the
//            throughput figures (train_log.tsv's "tokens" column).
// Implementations: the LLaMA LoRA trainer (lora_train_model.h).
#ifndef ELASTILM_TRAIN_MODEL_H
#define ELASTILM_TRAIN_MODEL_H

#include <stdint.h>

#include "runtime/status.h"
#include "runtime/tensor.h"

typedef struct {
    void *ctx;             // passed to every callback
    const char *kind;      // names the parameters: checkpoint dataset "<kind>/params" and the progress
                           // label ("lora"); NULL = "model"
    Tensor *params;        // [n_params] f32 on the CPU, contiguous: updated in place by the loop
    Tensor *grads;         // [n_params] f32 on the CPU: step() accumulates; the loop zeroes it after each update
    int64_t n_params;
    int n_examples;        // example indices are 0 .. n_examples-1
    int64_t capacity;      // most summed size in one micro-batch; 0 = no limit (only the loop's micro-batch count)

    int64_t (*counted)(void *ctx, int example);
    int64_t (*size)(void *ctx, int example);
    // Forward + backward of loss_scale * (sum of the examples' losses over their
    // counted units), ACCUMULATING into *grads. seed decides everything random in
    // the step (dropout masks): the same seed must give the same numbers on any rank.
    // *loss_sum: the unscaled loss sum; *size_done: the examples' summed size.
    Status (*step)(void *ctx, const int *examples, int n, float loss_scale, uint64_t seed, double *loss_sum,
                   int64_t *size_done);
    // Forward only, nothing random: the unscaled loss sum and the counted units.
    Status (*eval)(void *ctx, const int *examples, int n, double *loss_sum, int64_t *counted);
} TrainModel;

#endif
