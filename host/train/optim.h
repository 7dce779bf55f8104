// optim.h: AdamW, the linear warm-up/decay schedule and gradient clipping,
// with the semantics of torch.optim.AdamW, transformers'
// get_linear_schedule_with_warmup and torch.nn.utils.clip_grad_norm_.
#ifndef ELASTILM_OPTIM_H
#define ELASTILM_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/tensor.h"

typedef struct {
    float lr;            // peak learning rate
    float beta1, beta2, eps;
    float weight_decay;  // decoupled (AdamW)
    float max_grad_norm; // <= 0: no clipping
    int64_t warmup;      // optimizer steps of linear warm-up from 0
    int64_t total;       // optimizer steps in all; the rate decays linearly to 0 at total
    bool constant;       // no decay: lr after the warm-up (transformers' constant schedule with warm-up)
} OptimConfig;

// HF defaults: betas (0.9, 0.999), eps 1e-8, no weight decay, clipping at 1.0.
OptimConfig optim_defaults(void);

typedef struct {
    OptimConfig cfg;
    Tensor m, v;        // [n] first and second moments
    int64_t step;       // optimizer steps taken
} AdamW;

Status adamw_init(AdamW *o, const OptimConfig *cfg, int64_t n);
void adamw_free(AdamW *o);

// Learning rate of optimizer step k (0-based): lr * k / warmup during the
// warm-up, then lr * (total - k) / (total - warmup), never below 0 (with
// constant: lr). The first step of a warm-up runs at 0, as in the Hugging Face Trainer.
float optim_lr_at(const OptimConfig *cfg, int64_t k);

// Scales g in place to a total L2 norm of at most max_norm (torch: by
// max_norm / (norm + 1e-6) when that is below 1) and returns the norm before.
double optim_clip(Tensor *g, float max_norm);

// Clips (per cfg), then one AdamW update of p from g at the scheduled rate;
// returns the pre-clip gradient norm. *lr_used receives the rate (may be NULL).
double adamw_update(AdamW *o, Tensor *p, Tensor *g, float *lr_used);

#endif
