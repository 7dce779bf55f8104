// Contextual-sparsity predictors: recording, training, recall and storage.
#include "ffn_predictor.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elastic/artifact.h"
#include "io/h5.h"
#include "ops/ops.h"
#include "runtime/log.h"
#include "runtime/rng.h"
#include "train/trainer.h"

static const Device CPU = {DEV_CPU, 0};

const double FFN_DENSITIES[FFN_N_DENSITIES] = {0.5, 0.6, 0.7, 0.8, 0.9};

FfnTrainOptions ffn_train_defaults(void) {
    return (FfnTrainOptions){.rank = 128, .artifact = false, .threshold = 0.1f, .epochs = 10, .batch = 1024, .steps_per_epoch = 5,
                             .lr = 1e-4f, .weight_decay = 1e-5f, .seed = 42, .val_windows = 50, .batch_windows = 8, .max_micro = 4096,
                             .mem_budget = (size_t)1536 << 20};
}

void ffn_predictors_free(FfnPredictors *p) {
    free(p->w1), free(p->b1), free(p->w2), free(p->b2);
    free(p->active), free(p->recall), free(p->val_bce);
    memset(p, 0, sizeof *p);
}

static Status predictors_alloc(FfnPredictors *p, int L, int R, int D, int F) {
    memset(p, 0, sizeof *p);
    p->n_layers = L, p->rank = R, p->dim = D, p->ffn = F;
    p->w1 = calloc((size_t)L * R * D, sizeof *p->w1);
    p->b1 = calloc((size_t)L * R, sizeof *p->b1);
    p->w2 = calloc((size_t)L * F * R, sizeof *p->w2);
    p->b2 = calloc((size_t)L * F, sizeof *p->b2);
    p->active = calloc((size_t)L, sizeof *p->active);
    p->recall = calloc((size_t)L * FFN_N_DENSITIES, sizeof *p->recall);
    p->val_bce = calloc((size_t)L, sizeof *p->val_bce);
    if (!p->w1 || !p->b1 || !p->w2 || !p->b2 || !p->active || !p->recall || !p->val_bce) {
        ffn_predictors_free(p);
        return status_fail(ST_OOM, "out of memory for %d FFN predictors", L);
    }
    return ST_OK;
}

double ffn_bce(const float *z, const uint8_t *y, int64_t n, int64_t F, float *dz, float scale) {
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double row = 0;
        for (int64_t j = 0; j < F; j++) {
            float x = z[i * F + j], t = (float)y[i * F + j];
            // -[t log s + (1-t) log(1-s)] with s = sigmoid(x), in the stable form; one exp for both
            float e = expf(-fabsf(x));
            row += (double)(fmaxf(x, 0.0f) - x * t + log1pf(e));
            if (dz) dz[i * F + j] = scale * ((x >= 0 ? 1.0f : e) / (1.0f + e) - t);
        }
        sum += row;
    }
    return sum;
}

// ---- recording ------------------------------------------------------------------

// What a group of layers [l0, l1) saw: per layer, the FFN inputs of every
// token and two bits per neuron (the training label, and whether it is active).
typedef struct {
    int l0, l1, D, F;
    int64_t n_tok;     // tokens recorded per layer
    int64_t at;        // rows written so far (the current forward's first row)
    bool artifact;
    float threshold;
    float **x;         // [l1 - l0][n_tok * D]
    uint8_t **label;   // [l1 - l0][n_tok * F / 8] bits
    uint8_t **active;  // [l1 - l0][n_tok * F / 8] bits
} Recording;

static inline bool bit_get(const uint8_t *b, int64_t i) { return (b[i >> 3] >> (i & 7)) & 1; }

static void record_probe(void *ctx, int layer, const Tensor *xn, const Tensor *gate) {
    Recording *r = ctx;
    if (layer < r->l0 || layer >= r->l1) return;
    int g = layer - r->l0;
    int64_t N = xn->shape[0];
    for (int64_t i = 0; i < N; i++) {
        int64_t row = r->at + i;
        memcpy(r->x[g] + row * r->D, tensor_row_f32(xn, i), (size_t)r->D * sizeof(float));
        const float *gv = tensor_row_f32(gate, i);
        for (int j = 0; j < r->F; j++) {
            float a = gv[j] / (1.0f + expf(-gv[j])); // silu
            int64_t bit = row * r->F + j;
            if (ffn_label(a, r->artifact, r->threshold)) r->label[g][bit >> 3] |= (uint8_t)(1u << (bit & 7));
            if (ffn_label(a, false, r->threshold)) r->active[g][bit >> 3] |= (uint8_t)(1u << (bit & 7));
        }
    }
}

static void recording_free(Recording *r) {
    for (int g = 0; r->x && g < r->l1 - r->l0; g++) free(r->x[g]), free(r->label[g]), free(r->active[g]);
    free(r->x), free(r->label), free(r->active);
    memset(r, 0, sizeof *r);
}

// Runs every window through the model (batches of bw windows), recording layers [l0, l1).
static Status record_layers(const LlamaModel *m, const int32_t *windows, int n_windows, int seq, int bw, int l0, int l1,
                            const FfnTrainOptions *o, Recording *r) {
    const LlamaConfig *c = &m->cfg;
    *r = (Recording){.l0 = l0, .l1 = l1, .D = c->dim, .F = c->ffn_dim, .n_tok = (int64_t)n_windows * seq,
                     .artifact = o->artifact, .threshold = o->threshold};
    int G = l1 - l0;
    r->x = calloc((size_t)G, sizeof *r->x);
    r->label = calloc((size_t)G, sizeof *r->label);
    r->active = calloc((size_t)G, sizeof *r->active);
    Status st = r->x && r->label && r->active ? ST_OK : status_fail(ST_OOM, "out of memory");
    size_t bits = (size_t)((r->n_tok * r->F + 7) / 8);
    for (int g = 0; st == ST_OK && g < G; g++) {
        r->x[g] = malloc((size_t)r->n_tok * (size_t)r->D * sizeof(float));
        r->label[g] = calloc(bits, 1);
        r->active[g] = calloc(bits, 1);
        if (!r->x[g] || !r->label[g] || !r->active[g])
            st = status_fail(ST_OOM, "out of memory recording %lld tokens of layers %d..%d", (long long)r->n_tok, l0,
                             l1 - 1);
    }
    LlamaSession s;
    if (st == ST_OK) st = llama_session_init(&s, m, bw, seq, CPU);
    if (st != ST_OK) {
        recording_free(r);
        return st;
    }
    s.ffn_probe = record_probe;
    s.probe_ctx = r;
    char label[64];
    snprintf(label, sizeof label, "recording layers %d-%d", l0, l1 - 1);
    Progress bar;
    progress_begin(&bar, label, n_windows);
    for (int w0 = 0; st == ST_OK && w0 < n_windows; w0 += bw) {
        int nb = n_windows - w0 < bw ? n_windows - w0 : bw;
        LlamaSession *sp = &s, small;
        bool own = nb < bw; // a last, smaller batch runs in a session of its size
        if (own) {
            st = llama_session_init(&small, m, nb, seq, CPU);
            if (st != ST_OK) break;
            small.ffn_probe = record_probe, small.probe_ctx = r;
            sp = &small;
        }
        llama_session_reset(sp);
        r->at = (int64_t)w0 * seq;
        st = llama_forward(m, sp, windows + (int64_t)w0 * seq, NULL, seq, LOGITS_NONE, NULL);
        if (own) llama_session_free(&small);
        progress_step(&bar, nb);
    }
    progress_end(&bar);
    llama_session_free(&s);
    if (st != ST_OK) recording_free(r);
    return st;
}

// ---- one layer's predictor as a TrainModel -------------------------------------------

typedef struct {
    int D, F, R;
    const float *x;        // [n_tok, D]
    const uint8_t *label;  // [n_tok * F] bits
    Tensor params, grads;  // [R*D + R + F*R + F]
    Tensor w1, b1, w2, b2, gw1, gb1, gw2, gb2; // views of params / grads
    int cap;               // rows of the buffers
    Tensor xb, h, dh, z;   // [cap, D], [cap, R], [cap, R], [cap, F]
    uint8_t *y;            // [cap * F]
} PredModel;

static void pred_views(PredModel *p) {
    float *a = p->params.data, *g = p->grads.data;
    int64_t o1 = (int64_t)p->R * p->D, o2 = o1 + p->R, o3 = o2 + (int64_t)p->F * p->R;
    p->w1 = tensor_wrap(a, DT_F32, CPU, 2, (int64_t[]){p->R, p->D});
    p->b1 = tensor_wrap(a + o1, DT_F32, CPU, 1, (int64_t[]){p->R});
    p->w2 = tensor_wrap(a + o2, DT_F32, CPU, 2, (int64_t[]){p->F, p->R});
    p->b2 = tensor_wrap(a + o3, DT_F32, CPU, 1, (int64_t[]){p->F});
    p->gw1 = tensor_wrap(g, DT_F32, CPU, 2, (int64_t[]){p->R, p->D});
    p->gb1 = tensor_wrap(g + o1, DT_F32, CPU, 1, (int64_t[]){p->R});
    p->gw2 = tensor_wrap(g + o2, DT_F32, CPU, 2, (int64_t[]){p->F, p->R});
    p->gb2 = tensor_wrap(g + o3, DT_F32, CPU, 1, (int64_t[]){p->F});
}

static int64_t pred_counted(void *ctx, int ex) {
    (void)ex;
    return ((PredModel *)ctx)->F;
}
static int64_t pred_size(void *ctx, int ex) {
    (void)ctx, (void)ex;
    return 1;
}

// Logits z [n, F] of examples (tokens) ex, with the hidden layer in h; labels into y.
static void pred_forward(PredModel *p, const int *ex, int n, Tensor *xb, Tensor *h, Tensor *z) {
    *xb = tensor_rows(&p->xb, 0, n), *h = tensor_rows(&p->h, 0, n), *z = tensor_rows(&p->z, 0, n);
    for (int i = 0; i < n; i++) {
        memcpy(tensor_row_f32(xb, i), p->x + (int64_t)ex[i] * p->D, (size_t)p->D * sizeof(float));
        for (int j = 0; j < p->F; j++) p->y[(int64_t)i * p->F + j] = bit_get(p->label, (int64_t)ex[i] * p->F + j);
    }
    op_matmul(h, xb, &p->w1);
    op_bias_add(h, &p->b1);
    op_activation(h, h, ACT_RELU);
    op_matmul(z, h, &p->w2);
    op_bias_add(z, &p->b2);
}

static Status pred_step(void *ctx, const int *ex, int n, float loss_scale, uint64_t seed, double *loss_sum,
                        int64_t *size_done) {
    (void)seed;
    PredModel *p = ctx;
    if (n > p->cap) return status_fail(ST_USAGE, "predictor: %d tokens in a micro-batch, room for %d", n, p->cap);
    Tensor xb, h, z;
    pred_forward(p, ex, n, &xb, &h, &z);
    *loss_sum = ffn_bce(z.data, p->y, n, p->F, z.data, loss_scale); // z becomes dL/dz
    *size_done = n;
    Tensor dh = tensor_rows(&p->dh, 0, n);
    tensor_zero(&dh);
    op_matmul_backward(&dh, &p->gw2, &z, &h, &p->w2, 1.0f);
    op_bias_backward(&p->gb2, &z);
    // ReLU: h > 0 exactly where its input was > 0, so the output stands in for
    // the input; the gradient before it goes into z's memory, free again
    Tensor dr = tensor_wrap(p->z.data, DT_F32, CPU, 2, (int64_t[]){n, p->R});
    tensor_zero(&dr);
    op_activation_backward(&dr, &dh, &h, ACT_RELU);
    op_bias_backward(&p->gb1, &dr);
    op_matmul_backward(NULL, &p->gw1, &dr, &xb, &p->w1, 1.0f);
    return ST_OK;
}

static Status pred_eval(void *ctx, const int *ex, int n, double *loss_sum, int64_t *counted) {
    PredModel *p = ctx;
    *loss_sum = 0;
    for (int i0 = 0; i0 < n; i0 += p->cap) {
        int nb = n - i0 < p->cap ? n - i0 : p->cap;
        Tensor xb, h, z;
        pred_forward(p, ex + i0, nb, &xb, &h, &z);
        *loss_sum += ffn_bce(z.data, p->y, nb, p->F, NULL, 0);
    }
    *counted = (int64_t)n * p->F;
    return ST_OK;
}

static void pred_model_free(PredModel *p) {
    Tensor *ts[] = {&p->params, &p->grads, &p->xb, &p->h, &p->dh, &p->z};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) tensor_free(ts[i]);
    free(p->y);
}

static Status pred_model_init(PredModel *p, int D, int F, int R, int cap, uint64_t seed) {
    memset(p, 0, sizeof *p);
    p->D = D, p->F = F, p->R = R, p->cap = cap;
    int64_t n = (int64_t)R * D + R + (int64_t)F * R + F;
    Status st = tensor_alloc_1d(&p->params, DT_F32, CPU, n);
    if (st == ST_OK) st = tensor_alloc_1d(&p->grads, DT_F32, CPU, n);
    if (st == ST_OK) st = tensor_alloc_2d(&p->xb, DT_F32, CPU, cap, D);
    if (st == ST_OK) st = tensor_alloc_2d(&p->h, DT_F32, CPU, cap, R);
    if (st == ST_OK) st = tensor_alloc_2d(&p->dh, DT_F32, CPU, cap, R);
    if (st == ST_OK) st = tensor_alloc_2d(&p->z, DT_F32, CPU, cap, F > R ? F : R);
    if (st == ST_OK && !(p->y = malloc((size_t)cap * (size_t)F))) st = status_fail(ST_OOM, "out of memory");
    if (st != ST_OK) {
        pred_model_free(p);
        return st;
    }
    pred_views(p);
    tensor_zero(&p->grads);
    // torch.nn.Linear's initialisation: weights and biases U(-1/sqrt(in), 1/sqrt(in))
    Rng rng;
    rng_seed(&rng, seed);
    float *a = p->params.data;
    int64_t o1 = (int64_t)R * D, o2 = o1 + R;
    float s1 = 1.0f / sqrtf((float)D), s2 = 1.0f / sqrtf((float)R);
    for (int64_t i = 0; i < n; i++) {
        float s = i < o2 ? s1 : s2;
        a[i] = s * (2.0f * (float)rng_uniform(&rng) - 1.0f);
    }
    return ST_OK;
}

Status ffn_predictor_loss_grad(const float *params, int D, int F, int R, const float *x, const uint8_t *y, int n,
                               double *loss, float *grad) {
    PredModel p;
    TRY(pred_model_init(&p, D, F, R, n, 0));
    int64_t np = p.params.shape[0];
    memcpy(p.params.data, params, (size_t)np * sizeof(float));
    uint8_t *bits = calloc((size_t)((int64_t)n * F + 7) / 8, 1);
    int *ex = malloc((size_t)n * sizeof *ex);
    Status st = bits && ex ? ST_OK : status_fail(ST_OOM, "out of memory");
    for (int64_t i = 0; st == ST_OK && i < (int64_t)n * F; i++)
        if (y[i]) bits[i >> 3] |= (uint8_t)(1u << (i & 7));
    for (int i = 0; st == ST_OK && i < n; i++) ex[i] = i;
    p.x = x, p.label = bits;
    int64_t done;
    if (st == ST_OK) st = pred_step(&p, ex, n, 1.0f, 0, loss, &done);
    if (st == ST_OK) memcpy(grad, p.grads.data, (size_t)np * sizeof(float));
    free(bits), free(ex);
    pred_model_free(&p);
    return st;
}

// ---- recall -----------------------------------------------------------------------

typedef struct {
    const float *z;
    int j;
} Scored;

static int by_score_desc(const void *a, const void *b) {
    const Scored *x = a, *y = b;
    float u = x->z[x->j], v = y->z[y->j];
    if (u != v) return u > v ? -1 : 1;
    return x->j - y->j; // ties: the lower index first (op_topk_rows)
}

// Held-out share of active neurons and recall of the active ones at each density.
static Status pred_recall(PredModel *p, const uint8_t *active, const int *ex, int n, double *share, double *recall) {
    Scored *order = malloc((size_t)p->F * sizeof *order);
    if (!order) return status_fail(ST_OOM, "out of memory");
    double n_active = 0, kept[FFN_N_DENSITIES] = {0};
    for (int i0 = 0; i0 < n; i0 += p->cap) {
        int nb = n - i0 < p->cap ? n - i0 : p->cap;
        Tensor xb, h, z;
        pred_forward(p, ex + i0, nb, &xb, &h, &z);
        for (int i = 0; i < nb; i++) {
            const float *zi = tensor_row_f32(&z, i);
            int64_t base = (int64_t)ex[i0 + i] * p->F;
            for (int j = 0; j < p->F; j++) order[j] = (Scored){zi, j};
            qsort(order, (size_t)p->F, sizeof *order, by_score_desc);
            int d = 0, run = 0;
            int ks[FFN_N_DENSITIES];
            for (int q = 0; q < FFN_N_DENSITIES; q++) ks[q] = (int)(p->F * FFN_DENSITIES[q]);
            for (int r = 0; r < p->F; r++) {
                bool act = bit_get(active, base + order[r].j);
                n_active += act;
                while (d < FFN_N_DENSITIES && r >= ks[d]) kept[d++] += run;
                run += act;
            }
            while (d < FFN_N_DENSITIES) kept[d++] += run;
        }
    }
    free(order);
    *share = n ? n_active / ((double)n * p->F) : 0;
    for (int q = 0; q < FFN_N_DENSITIES; q++) recall[q] = n_active > 0 ? kept[q] / n_active : 1.0;
    return ST_OK;
}

// ---- resume file ------------------------------------------------------------------------

static Status resume_read(const char *path, const char *fp, int l, FfnPredictors *p, bool *found) {
    *found = false;
    if (!path) return ST_OK;
    FILE *t = fopen(path, "rb");
    if (!t) return ST_OK;
    fclose(t);
    H5Store *f;
    TRY(h5_open_read(&f, path));
    char *have = NULL, name[64];
    Status st = h5_get_attr_str(f, "/", "fingerprint", &have);
    snprintf(name, sizeof name, "layer_%d", l);
    if (st == ST_OK && !strcmp(have, fp) && h5_exists(f, name)) {
        int64_t R = p->rank, D = p->dim, F = p->ffn;
        int64_t n = R * D + R + F * R + F;
        float *buf = malloc((size_t)n * sizeof *buf);
        char path2[96];
        snprintf(path2, sizeof path2, "%s/params", name);
        st = buf ? h5_read_f32_into(f, path2, 1, (int64_t[]){n}, buf) : status_fail(ST_OOM, "out of memory");
        double stats[2 + FFN_N_DENSITIES];
        snprintf(path2, sizeof path2, "%s/stats", name);
        if (st == ST_OK) st = h5_read_f64_into(f, path2, 1, (int64_t[]){2 + FFN_N_DENSITIES}, stats);
        if (st == ST_OK) {
            memcpy(p->w1 + (int64_t)l * R * D, buf, (size_t)(R * D) * sizeof *buf);
            memcpy(p->b1 + (int64_t)l * R, buf + R * D, (size_t)R * sizeof *buf);
            memcpy(p->w2 + (int64_t)l * F * R, buf + R * D + R, (size_t)(F * R) * sizeof *buf);
            memcpy(p->b2 + (int64_t)l * F, buf + R * D + R + F * R, (size_t)F * sizeof *buf);
            p->val_bce[l] = stats[0], p->active[l] = stats[1];
            memcpy(p->recall + (int64_t)l * FFN_N_DENSITIES, stats + 2, sizeof(double) * FFN_N_DENSITIES);
            *found = true;
        }
        free(buf);
    } else {
        st = ST_OK; // another run's file, or no such layer yet
    }
    free(have);
    h5_close(f);
    return st;
}

static Status resume_write(const char *path, const char *fp, int l, const PredModel *pm, const FfnPredictors *p) {
    if (!path) return ST_OK;
    H5Store *f;
    TRY(h5_open_update(&f, path));
    char *have = NULL, name[64], path2[96];
    bool same = h5_get_attr_str(f, "/", "fingerprint", &have) == ST_OK && !strcmp(have, fp);
    free(have);
    Status st = ST_OK;
    if (!same) { // another run's layers: start over
        char **names = NULL;
        int n = 0;
        st = h5_list(f, "/", &names, &n);
        for (int i = 0; st == ST_OK && i < n; i++) st = h5_delete(f, names[i]);
        h5_free_names(names, n);
        if (st == ST_OK) st = h5_set_attr_str(f, "/", "fingerprint", fp);
    }
    snprintf(name, sizeof name, "layer_%d", l);
    if (st == ST_OK) st = h5_delete(f, name);
    if (st == ST_OK) st = h5_make_group(f, name);
    snprintf(path2, sizeof path2, "%s/params", name);
    if (st == ST_OK) st = h5_write_f32(f, path2, 1, (int64_t[]){pm->params.shape[0]}, pm->params.data);
    double stats[2 + FFN_N_DENSITIES] = {p->val_bce[l], p->active[l]};
    memcpy(stats + 2, p->recall + (int64_t)l * FFN_N_DENSITIES, sizeof(double) * FFN_N_DENSITIES);
    snprintf(path2, sizeof path2, "%s/stats", name);
    if (st == ST_OK) st = h5_write_f64(f, path2, 1, (int64_t[]){2 + FFN_N_DENSITIES}, stats);
    if (st != ST_OK) {
        h5_close(f);
        return st;
    }
    return h5_commit(f);
}

// ---- training ---------------------------------------------------------------------------

static Status train_layer(const Recording *r, int l, int n_train_tok, int n_val_tok, const FfnTrainOptions *o,
                          const char *fp, FfnPredictors *out) {
    int g = l - r->l0;
    int64_t batch = o->batch > 0 ? o->batch : (n_train_tok + o->steps_per_epoch - 1) / o->steps_per_epoch;
    if (batch > n_train_tok) batch = n_train_tok;
    // rows per micro-batch (the trainer accumulates them): the fewest equal parts of the batch within max_micro
    int64_t parts = (batch + o->max_micro - 1) / o->max_micro;
    while (batch % parts) parts++;
    int cap = (int)(batch / parts);
    PredModel pm;
    TRY(pred_model_init(&pm, r->D, r->F, o->rank, cap, rng_mix(o->seed, (uint64_t)l)));
    pm.x = r->x[g], pm.label = r->label[g];
    DataSplit split = {0};
    split.n_train = n_train_tok, split.n_val = n_val_tok;
    split.train = malloc((size_t)(n_train_tok ? n_train_tok : 1) * sizeof(int));
    split.val = malloc((size_t)(n_val_tok ? n_val_tok : 1) * sizeof(int));
    Status st = split.train && split.val ? ST_OK : status_fail(ST_OOM, "out of memory");
    for (int i = 0; st == ST_OK && i < n_train_tok; i++) split.train[i] = i;
    for (int i = 0; st == ST_OK && i < n_val_tok; i++) split.val[i] = n_train_tok + i;
    TrainModel tm = {.ctx = &pm, .kind = "ffn_predictor", .params = &pm.params, .grads = &pm.grads,
                     .n_params = pm.params.shape[0], .n_examples = n_train_tok + n_val_tok, .capacity = cap,
                     .counted = pred_counted, .size = pred_size, .step = pred_step, .eval = pred_eval};
    OptimConfig oc = optim_defaults();
    oc.lr = o->lr, oc.weight_decay = o->weight_decay, oc.max_grad_norm = 0, oc.warmup = 0, oc.constant = true;
    TrainJob job = {.model = &tm, .split = &split, .optim = oc,
                    .loop = {.epochs = o->epochs, .batch = (int)batch, .micro_batch = cap, .seed = o->seed}};
    TrainResult res;
    Dist solo = {.rank = 0, .world = 1};
    job.dist = &solo;
    if (st == ST_OK) st = trainer_run(&job, &res);
    if (st == ST_OK) {
        int64_t R = o->rank, D = r->D, F = r->F;
        memcpy(out->w1 + l * R * D, pm.w1.data, (size_t)(R * D) * sizeof(float));
        memcpy(out->b1 + l * R, pm.b1.data, (size_t)R * sizeof(float));
        memcpy(out->w2 + l * F * R, pm.w2.data, (size_t)(F * R) * sizeof(float));
        memcpy(out->b2 + l * F, pm.b2.data, (size_t)F * sizeof(float));
        out->val_bce[l] = res.best_val_loss;
        st = pred_recall(&pm, r->active[g], split.val, n_val_tok, &out->active[l], out->recall + l * FFN_N_DENSITIES);
    }
    if (st == ST_OK) {
        const double *rc = out->recall + l * FFN_N_DENSITIES;
        printf("layer %2d: BCE %.4f -> %.4f (held out), %.1f%% active, recall %.3f at density 0.5, %.3f at 0.8\n", l,
               res.first_val_loss, res.best_val_loss, 100 * out->active[l], rc[0], rc[3]);
        fflush(stdout);
        st = resume_write(o->resume, fp, l, &pm, out);
    }
    data_split_free(&split);
    pred_model_free(&pm);
    return st;
}

Status ffn_predictors_train(const LlamaModel *m, const int32_t *windows, int n_windows, int seq,
                            const FfnTrainOptions *o, FfnPredictors *out) {
    TRY(llama_require_f32(m, "recording the FFNs for contextual sparsity"));
    const LlamaConfig *c = &m->cfg;
    if (o->val_windows < 1 || o->val_windows >= n_windows)
        return status_fail(ST_USAGE, "contextual sparsity: %d held-out windows of %d (at least one of each)",
                           o->val_windows, n_windows);
    if (o->rank < 1 || o->epochs < 1 || o->steps_per_epoch < 1 || o->max_micro < 1 || !(o->threshold >= 0))
        return status_fail(ST_USAGE, "contextual sparsity: bad predictor options (rank %d, epochs %d, steps %d, "
                           "threshold %g)", o->rank, o->epochs, o->steps_per_epoch, o->threshold);
    TRY(predictors_alloc(out, c->n_layers, o->rank, c->dim, c->ffn_dim));
    out->artifact = o->artifact, out->threshold = o->threshold;
    int n_train_tok = (n_windows - o->val_windows) * seq, n_val_tok = o->val_windows * seq;
    size_t per_layer = (size_t)n_windows * seq * ((size_t)c->dim * sizeof(float) + (size_t)c->ffn_dim / 4 + 2);
    int group = (int)(o->mem_budget / per_layer);
    if (group < 1) group = 1;
    // what a resumed run must share with the killed one: the settings and the windows
    uint64_t h = 1469598103934665603ull;
    for (int64_t i = 0; i < (int64_t)n_windows * seq; i++) h = (h ^ (uint32_t)windows[i]) * 1099511628211ull;
    char fp[512];
    snprintf(fp, sizeof fp, "L %d D %d F %d; %d windows x %d (%016llx), %d held out; rank %d, %s labels, threshold %g, "
             "%d epochs, batch %d (or %d steps), lr %g, wd %g, seed %llu", c->n_layers, c->dim, c->ffn_dim, n_windows, seq,
             (unsigned long long)h, o->val_windows, o->rank, o->artifact ? "artifact" : "paper", o->threshold,
             o->epochs, o->batch, o->steps_per_epoch, o->lr, o->weight_decay, (unsigned long long)o->seed);
    Status st = ST_OK;
    for (int l0 = 0; st == ST_OK && l0 < c->n_layers; l0 += group) {
        int l1 = l0 + group < c->n_layers ? l0 + group : c->n_layers;
        // layers a killed run finished are read back; the group is recorded only if one is missing
        int first = l0;
        for (bool found = true; st == ST_OK && found && first < l1;) {
            st = resume_read(o->resume, fp, first, out, &found);
            if (st == ST_OK && found) {
                log_info("layer %d: predictor from %s (a previous run)", first, o->resume);
                first++;
            }
        }
        if (st != ST_OK || first == l1) continue;
        Recording r;
        st = record_layers(m, windows, n_windows, seq, o->batch_windows, first, l1, o, &r);
        for (int l = first; st == ST_OK && l < l1; l++) st = train_layer(&r, l, n_train_tok, n_val_tok, o, fp, out);
        recording_free(&r); // after a failed recording it is already empty
    }
    if (st != ST_OK) ffn_predictors_free(out);
    return st;
}

// ---- storage ------------------------------------------------------------------------------

Status ffn_predictors_save(const char *artifact, const char *group, const LlamaConfig *c, const FfnPredictors *p) {
    H5Store *f;
    TRY(h5_open_read(&f, artifact)); // it must exist and be this model's
    Status st = artifact_check_model(f, c);
    h5_close(f);
    TRY(st);
    TRY(h5_open_update(&f, artifact));
    char path[320];
    int64_t L = p->n_layers, R = p->rank, D = p->dim, F = p->ffn;
    st = h5_delete(f, group);
    if (st == ST_OK) st = h5_make_group(f, group);
    if (st == ST_OK) st = h5_set_attr_i64(f, group, "rank", R);
    if (st == ST_OK) st = h5_set_attr_f64(f, group, "threshold", p->threshold);
    if (st == ST_OK) st = h5_set_attr_str(f, group, "labels", p->artifact ? "inactive (silu < 0.001)" : "active");
#define W32(name, nd, ...)                                                         \
    if (st == ST_OK) {                                                             \
        snprintf(path, sizeof path, "%s/%s", group, #name);                        \
        st = h5_write_f32(f, path, nd, (int64_t[]){__VA_ARGS__}, p->name);         \
    }
#define W64(name, nd, ...)                                                         \
    if (st == ST_OK) {                                                             \
        snprintf(path, sizeof path, "%s/%s", group, #name);                        \
        st = h5_write_f64(f, path, nd, (int64_t[]){__VA_ARGS__}, p->name);         \
    }
    W32(w1, 3, L, R, D)
    W32(b1, 2, L, R)
    W32(w2, 3, L, F, R)
    W32(b2, 2, L, F)
    W64(active, 1, L)
    W64(recall, 2, L, FFN_N_DENSITIES)
    W64(val_bce, 1, L)
#undef W32
#undef W64
    if (st != ST_OK) {
        h5_close(f);
        return st;
    }
    return h5_commit(f);
}

Status ffn_predictors_load(const char *artifact, const char *group, const LlamaConfig *c, FfnPredictors *p) {
    memset(p, 0, sizeof *p);
    H5Store *f;
    TRY(h5_open_read(&f, artifact));
    Status st = artifact_check_model(f, c);
    int64_t R = 0;
    if (st == ST_OK && !h5_exists(f, group))
        st = status_fail(ST_USAGE, "%s: no '%s' (run `elastilm prepare --mode Lingua2+Contextual` first)", artifact,
                         group);
    if (st == ST_OK) st = h5_get_attr_i64(f, group, "rank", &R);
    if (st == ST_OK && (R < 1 || R > 1 << 20)) st = status_fail(ST_FORMAT, "%s: %s: rank %lld", artifact, group, (long long)R);
    if (st == ST_OK) st = predictors_alloc(p, c->n_layers, (int)R, c->dim, c->ffn_dim);
    double thr = 0;
    if (st == ST_OK) st = h5_get_attr_f64(f, group, "threshold", &thr);
    char *labels = NULL;
    if (st == ST_OK) st = h5_get_attr_str(f, group, "labels", &labels);
    if (st == ST_OK) p->threshold = (float)thr, p->artifact = strncmp(labels, "inactive", 8) == 0;
    free(labels);
    char path[320];
    int64_t L = c->n_layers, D = c->dim, F = c->ffn_dim;
#define R32(name, nd, ...)                                                                        \
    if (st == ST_OK) {                                                                            \
        snprintf(path, sizeof path, "%s/%s", group, #name);                                       \
        st = h5_read_f32_into(f, path, nd, (int64_t[]){__VA_ARGS__}, p->name);                    \
        if (st != ST_OK) st = status_wrap(st, "%s: the FFN predictor for this model", artifact);  \
    }
#define R64(name, nd, ...)                                                                        \
    if (st == ST_OK) {                                                                            \
        snprintf(path, sizeof path, "%s/%s", group, #name);                                       \
        st = h5_read_f64_into(f, path, nd, (int64_t[]){__VA_ARGS__}, p->name);                    \
        if (st != ST_OK) st = status_wrap(st, "%s: the FFN predictor for this model", artifact);  \
    }
    R32(w1, 3, L, R, D)
    R32(b1, 2, L, R)
    R32(w2, 3, L, F, R)
    R32(b2, 2, L, F)
    R64(active, 1, L)
    R64(recall, 2, L, FFN_N_DENSITIES)
    R64(val_bce, 1, L)
#undef R32
#undef R64
    h5_close(f);
    if (st != ST_OK) ffn_predictors_free(p);
    return st;
}

// ---- run-time form ------------------------------------------------------------------------

void ffn_sparsity_free(FfnPredictor *layers, int n_layers) {
    for (int l = 0; layers && l < n_layers; l++) {
        FfnPredictor *q = &layers[l];
        Tensor *ts[] = {&q->w1, &q->b1, &q->w2, &q->b2, &q->w_down_t};
        for (int i = 0; i < 5; i++) tensor_free(ts[i]);
    }
    free(layers);
}

Status ffn_sparsity_build(const LlamaModel *m, const FfnPredictors *p, FfnPredictor **layers) {
    TRY(llama_require_f32(m, "contextual sparsity"));
    const LlamaConfig *c = &m->cfg;
    if (p->n_layers != c->n_layers || p->dim != c->dim || p->ffn != c->ffn_dim)
        return status_fail(ST_USAGE, "FFN predictors for %d layers of [%d, %d], the model has %d of [%d, %d]",
                           p->n_layers, p->dim, p->ffn, c->n_layers, c->dim, c->ffn_dim);
    FfnPredictor *ly = calloc((size_t)c->n_layers, sizeof *ly);
    if (!ly) return status_fail(ST_OOM, "out of memory");
    int64_t R = p->rank, D = c->dim, F = c->ffn_dim;
    Status st = ST_OK;
    for (int l = 0; st == ST_OK && l < c->n_layers; l++) {
        FfnPredictor *q = &ly[l];
        // owned copies, so that placing them on a device (llama_tensor_like_model) can free them
        st = tensor_alloc_2d(&q->w1, DT_F32, CPU, R, D);
        if (st == ST_OK) st = tensor_alloc_1d(&q->b1, DT_F32, CPU, R);
        if (st == ST_OK) st = tensor_alloc_2d(&q->w2, DT_F32, CPU, F, R);
        if (st == ST_OK) st = tensor_alloc_1d(&q->b2, DT_F32, CPU, F);
        if (st == ST_OK) st = tensor_alloc_2d(&q->w_down_t, DT_F32, CPU, F, D);
        if (st != ST_OK) break;
        memcpy(q->w1.data, p->w1 + l * R * D, (size_t)(R * D) * sizeof(float));
        memcpy(q->b1.data, p->b1 + l * R, (size_t)R * sizeof(float));
        memcpy(q->w2.data, p->w2 + l * F * R, (size_t)(F * R) * sizeof(float));
        memcpy(q->b2.data, p->b2 + l * F, (size_t)F * sizeof(float));
        const Tensor *wd = &m->layers[l].w_down; // [D, F]
        float *t = q->w_down_t.data;
        for (int64_t d = 0; d < D; d++) {
            const float *row = tensor_row_f32(wd, d);
            for (int64_t j = 0; j < F; j++) t[j * D + d] = row[j];
        }
    }
    if (st != ST_OK) {
        ffn_sparsity_free(ly, c->n_layers);
        return st;
    }
    *layers = ly;
    return ST_OK;
}
