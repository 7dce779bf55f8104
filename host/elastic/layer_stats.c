// Per-layer statistics on calibration text for the layer baselines
// (ShortGPT's Block Influence, attention and FFN importance), from one
// training-forward pass with every activation kept.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "elastic.h"
#include "models/llama_layer.h"
#include "ops/ops.h"
#include "train/llama_train.h"

void order_ascending(const double *v, int n, int *out) {
    for (int i = 0; i < n; i++) out[i] = i;
    for (int i = 1; i < n; i++) // stable insertion sort
        for (int j = i; j > 0 && v[out[j - 1]] > v[out[j]]; j--) {
            int t = out[j];
            out[j] = out[j - 1], out[j - 1] = t;
        }
}

// 1 - cos(a, b + c) over [N, D] rows (c may be NULL): per token, averaged, or of the flattened batch.
static double one_minus_cos(const float *a, const float *b, const float *c, int64_t N, int64_t D, CosMode mode) {
    double sum = 0, ab_all = 0, aa_all = 0, bb_all = 0;
    for (int64_t t = 0; t < N; t++) {
        const float *x = a + t * D, *y = b + t * D, *z = c ? c + t * D : NULL;
        double ab = 0, aa = 0, bb = 0;
        for (int64_t i = 0; i < D; i++) {
            double yi = z ? (double)(float)(y[i] + z[i]) : y[i]; // the fp32 sum the residual stream holds
            ab += x[i] * yi, aa += (double)x[i] * x[i], bb += yi * yi;
        }
        if (mode == COS_PER_TOKEN) sum += aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
        ab_all += ab, aa_all += aa, bb_all += bb;
    }
    if (mode == COS_PER_TOKEN) return 1.0 - sum / (double)N;
    return 1.0 - (aa_all > 0 && bb_all > 0 ? ab_all / sqrt(aa_all * bb_all) : 0);
}

Status layer_stats(const LlamaModel *m, const int32_t *ids, int n, int seq, CosMode mode, double *bi, double *attn,
                   double *ffn) {
    const LlamaConfig *c = &m->cfg;
    int64_t N = (int64_t)n * seq, D = c->dim;
    int32_t *targets = malloc((size_t)N * sizeof *targets), *cu = malloc(((size_t)n + 1) * sizeof *cu);
    Tensor branch = {0};
    LlamaTrain t = {0};
    TrainOptions o = {.eval_only = true};
    Status st = targets && cu ? ST_OK : status_fail(ST_OOM, "out of memory");
    if (st == ST_OK) {
        for (int s = 0; s <= n; s++) cu[s] = s * seq;
        for (int64_t i = 0; i < N; i++) targets[i] = -1; // no loss is needed, only the activations
        st = tensor_alloc_2d(&branch, DT_F32, (Device){DEV_CPU, 0}, N, D);
    }
    if (st == ST_OK) st = llama_train_init(&t, m, NULL, NULL, &o, (int)N);
    TrainBatch b = {.ids = ids, .targets = targets, .cu = cu, .n_seq = n, .n_tokens = (int)N};
    if (st == ST_OK) st = llama_train_eval(&t, &b, NULL, NULL);
    for (int l = 0; st == ST_OK && l < c->n_layers; l++) {
        const LayerActs *a = &t.acts[l];
        const float *x = a->x.data, *out = (l + 1 < c->n_layers ? t.acts[l + 1].x : t.xL).data;
        bi[l] = one_minus_cos(x, out, NULL, N, D, mode);
        LlamaLayerPlan p = llama_layer_plan(m, NULL, l);
        // the attention branch A = att wo^T, formed again exactly as the forward formed it
        Tensor att = tensor_wrap(a->att.data, DT_F32, branch.dev, 2, (int64_t[]){N, p.wv.qd});
        op_matmul(&branch, &att, &p.wv.wo);
        attn[l] = mode == COS_PER_TOKEN ? one_minus_cos(x, x, branch.data, N, D, mode)
                                        : one_minus_cos(a->xn1.data, branch.data, NULL, N, D, mode);
        Tensor h = tensor_wrap(a->h.data, DT_F32, branch.dev, 2, (int64_t[]){N, p.wv.ffn});
        op_matmul(&branch, &h, &p.wv.w_down);
        ffn[l] = mode == COS_PER_TOKEN ? one_minus_cos(a->x2.data, a->x2.data, branch.data, N, D, mode)
                                       : one_minus_cos(a->xn2.data, branch.data, NULL, N, D, mode);
    }
    llama_train_free(&t);
    tensor_free(&branch);
    free(targets);
    free(cu);
    return st;
}
