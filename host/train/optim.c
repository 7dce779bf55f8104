// AdamW with schedule and clipping over one flat parameter tensor.
#include "optim.h"

#include <math.h>
#include <string.h>

#include "ops/ops.h"

OptimConfig optim_defaults(void) {
    return (OptimConfig){.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f,
                         .max_grad_norm = 1.0f, .warmup = 0, .total = 1};
}

Status adamw_init(AdamW *o, const OptimConfig *cfg, int64_t n) {
    memset(o, 0, sizeof *o);
    o->cfg = *cfg;
    Device cpu = {DEV_CPU, 0};
    TRY(tensor_alloc_1d(&o->m, DT_F32, cpu, n));
    Status st = tensor_alloc_1d(&o->v, DT_F32, cpu, n);
    if (st != ST_OK) adamw_free(o);
    return st;
}

void adamw_free(AdamW *o) {
    tensor_free(&o->m);
    tensor_free(&o->v);
    memset(o, 0, sizeof *o);
}

float optim_lr_at(const OptimConfig *c, int64_t k) {
    double f;
    if (k < c->warmup) f = (double)k / (double)c->warmup;
    else if (c->constant) f = 1.0;
    else f = c->total > c->warmup ? (double)(c->total - k) / (double)(c->total - c->warmup) : 0.0;
    if (f < 0) f = 0;
    return (float)(c->lr * f);
}

double optim_clip(Tensor *g, float max_norm) {
    double norm = sqrt(op_sumsq(g));
    if (max_norm > 0) {
        double coef = max_norm / (norm + 1e-6);
        if (coef < 1.0) op_scale(g, (float)coef);
    }
    return norm;
}

double adamw_update(AdamW *o, Tensor *p, Tensor *g, float *lr_used) {
    double norm = optim_clip(g, o->cfg.max_grad_norm);
    float lr = optim_lr_at(&o->cfg, o->step);
    o->step++;
    AdamWStep h = {.lr = lr, .beta1 = o->cfg.beta1, .beta2 = o->cfg.beta2, .eps = o->cfg.eps,
                   .weight_decay = o->cfg.weight_decay, .t = o->step};
    op_adamw(p, g, &o->m, &o->v, &h);
    if (lr_used) *lr_used = lr;
    return norm;
}
