// ffn_predictor.h: contextual sparsity (Deja Vu) for LLaMA FFNs, offline:
// what each layer's neurons do on calibration text, one predictor per layer
// trained on it with the trainer (train/trainer.h), its recall on held-out
// text, and its place in the elastic artifact. The run time is a view
// (FfnSparsity in models/llama.h, op_ffn_sparse).
//
// Data: every FFN call on the calibration windows records its input x (the
// post-attention RMSNorm output) and, per neuron j, a = SiLU(gate_j(x)).
// Labels:
//   paper (Deja Vu as intended): y = 1 for an ACTIVE neuron, |a| > threshold;
//         the run time keeps the k neurons predicted most likely active;
//   artifact (--compat artifact; Contextual_sparsity/train_llama.py:68):
//         y = 1 for an INACTIVE neuron, a < 0.001 (negatives included); the
//         run time keeps the top k of that prediction, i.e. the neurons
//         predicted most likely inactive (spec §6.2, an inverted selection).
// Predictor: Linear(D -> R) -> ReLU -> Linear(R -> F) -> sigmoid; BCE, the
// mean over tokens and neurons; AdamW (lr 1e-4, weight decay 1e-5, constant
// rate, no clipping), 10 epochs, as the artifact trains; the artifact takes 5
// full-batch steps per epoch (50 steps barely move a predictor from its
// initialisation: see docs/deviations.md), the paper default batches of 1024
// tokens, Deja Vu's batch size, at the same cost.
// Recall: over held-out windows, the share of the truly active neurons
// (|a| > threshold, whatever the labels were) that the top-k selection keeps.
#ifndef ELASTILM_FFN_PREDICTOR_H
#define ELASTILM_FFN_PREDICTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "models/llama.h"

#define FFN_N_DENSITIES 5
extern const double FFN_DENSITIES[FFN_N_DENSITIES]; // 0.5, 0.6, 0.7, 0.8, 0.9: the decode SLOs below 1

#define FFN_ARTIFACT_THRESHOLD 0.001f // the artifact's inactive label: silu(gate) < 0.001

typedef struct {
    int rank;             // R, the predictor's hidden width (128)
    bool artifact;        // label the inactive neurons (silu < 0.001) instead of the active ones
    float threshold;      // a neuron is active when |silu(gate)| > threshold
    int epochs;           // 10
    int batch;            // tokens per optimizer step (paper: 1024, Deja Vu's batch); 0 = a fraction of the data:
    int steps_per_epoch;  // with batch 0, each step takes ceil(training tokens / steps_per_epoch) tokens (the
                          // artifact: 5 full-batch steps per epoch)
    float lr, weight_decay;
    uint64_t seed;        // the predictors' initialisation and the data order
    int val_windows;      // the last windows are held out for the BCE and the recall
    int batch_windows;    // windows per forward while recording (8)
    int max_micro;        // most tokens per predictor forward/backward (4096): a step splits its batch into equal parts
    size_t mem_budget;    // bytes of recorded FFN inputs held at once (layers are recorded in groups within it)
    const char *resume;   // finished layers are kept here (an HDF5 file) and skipped after a kill; NULL = none
} FfnTrainOptions;

FfnTrainOptions ffn_train_defaults(void);

typedef struct {
    int n_layers, rank, dim, ffn;
    float *w1;          // [L, R, D]
    float *b1;          // [L, R]
    float *w2;          // [L, F, R]
    float *b2;          // [L, F]
    bool artifact;      // the labels were the artifact's (inactive neurons)
    float threshold;    // the activity threshold the recall (and paper labels) used
    double *active;     // [L] held-out share of active neurons (NULL when loaded without)
    double *recall;     // [L, FFN_N_DENSITIES] held-out recall of the active neurons at each density
    double *val_bce;    // [L] held-out BCE after training
} FfnPredictors;

// Records the model's FFNs on windows [n_windows * seq] (f32 CPU weights) and
// trains one predictor per layer. Prints one line per layer (BCE, share of
// active neurons, recall at densities 0.5 and 0.8) and a progress bar.
Status ffn_predictors_train(const LlamaModel *m, const int32_t *windows, int n_windows, int seq,
                            const FfnTrainOptions *o, FfnPredictors *out);
void ffn_predictors_free(FfnPredictors *p);

// Into / from group (e.g. "baselines/Lingua2+Contextual/paper") of the artifact:
// <group>/w1 [L, R, D], b1 [L, R], w2 [L, F, R], b2 [L, F] (f32), active [L],
// recall [L, 5], val_bce [L] (f64); attributes rank, threshold, labels.
// Loading checks every shape against the model's config and names the file
// and dataset at fault.
Status ffn_predictors_save(const char *artifact, const char *group, const LlamaConfig *c, const FfnPredictors *p);
Status ffn_predictors_load(const char *artifact, const char *group, const LlamaConfig *c, FfnPredictors *p);

// The run-time form of p for model m (f32 on the CPU, not converted): per
// layer, tensors over p's arrays and the layer's down projection transposed
// (owned). *layers [L] malloc'd; free with ffn_sparsity_free.
Status ffn_sparsity_build(const LlamaModel *m, const FfnPredictors *p, FfnPredictor **layers);
void ffn_sparsity_free(FfnPredictor *layers, int n_layers);

// ---- exposed for tests -----------------------------------------------------------

// The label of one neuron's silu(gate) value under the options' rule.
static inline bool ffn_label(float a, bool artifact, float threshold) {
    return artifact ? a < FFN_ARTIFACT_THRESHOLD : (a > threshold || a < -threshold);
}

// Sum over the n x F elements of BCE(sigmoid(z), y) (y bits, row-major), in
// double, and, when dz is not NULL, dz = scale * (sigmoid(z) - y) (dz may be z).
double ffn_bce(const float *z, const uint8_t *y, int64_t n, int64_t F, float *dz, float scale);

// One predictor's summed BCE over n tokens and its gradient: params is the
// flat [R*D (w1) | R (b1) | F*R (w2) | F (b2)], x [n, D], y [n * F] bytes 0/1;
// grad (same layout) receives d(sum)/d(params). The training step's own code.
Status ffn_predictor_loss_grad(const float *params, int D, int F, int R, const float *x, const uint8_t *y, int n,
                               double *loss, float *grad);

#endif
