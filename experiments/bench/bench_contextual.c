// Measured CPU decode time per token under contextual sparsity (Lingua2+Contextual's
// model half) against the dense model in the same run: the sparse FFN must pay
// for its predictor.
//   bench_contextual MODEL ARTIFACT [paper|artifact] [THREADS]
// The artifact needs the predictors (`elastilm prepare --mode Lingua2+Contextual`).
// For each FFN density (1.0 dense, then the predictor at 1.0, 0.9, 0.8, 0.6, 0.5
// and 0.25): a 64-token prefill of one sequence, then 64 greedy decode steps,
// timed per token; ROUNDS rounds over all densities interleaved, the median per
// density. Prints a markdown table with the CPU and the BLAS kernels.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "elastic/ffn_predictor.h"
#include "models/llama.h"
#include "ops/blas.h"
#include "ops/ops.h"
#include "policy/policy.h"
#include "runtime/log.h"

#define PREFILL 64
#define STEPS 64
#define ROUNDS 5


// ms per decoded token after a PREFILL-token prompt, in view v (NULL = dense).
static Status decode_ms(const LlamaModel *m, const LlamaView *v, double *ms) {
    const Device cpu = {DEV_CPU, 0};
    LlamaSession s;
    Tensor logits;
    int32_t ids[PREFILL];
    for (int i = 0; i < PREFILL; i++) ids[i] = (int32_t)((1000 + 7919L * i) % m->cfg.vocab_size);
    TRY(llama_session_init(&s, m, 1, PREFILL + STEPS, cpu));
    Status st = tensor_alloc_2d(&logits, DT_F32, cpu, 1, m->cfg.vocab_size);
    if (st == ST_OK) st = llama_session_set_view(&s, m, v);
    if (st == ST_OK) st = llama_forward(m, &s, ids, NULL, PREFILL, LOGITS_LAST, &logits);
    double t0 = time_now();
    for (int k = 0; st == ST_OK && k < STEPS; k++) {
        const float *row = logits.data;
        int32_t next = 0;
        for (int j = 1; j < m->cfg.vocab_size; j++)
            if (row[j] > row[next]) next = j;
        st = llama_forward(m, &s, &next, NULL, 1, LOGITS_LAST, &logits);
    }
    *ms = (time_now() - t0) * 1e3 / STEPS;
    tensor_free(&logits);
    llama_session_free(&s);
    return st;
}


int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_contextual MODEL ARTIFACT [paper|artifact] [THREADS]\n");
        return 2;
    }
    Compat compat = COMPAT_PAPER;
    if (argc > 3 && compat_parse(argv[3], &compat) != ST_OK) {
        fprintf(stderr, "bench_contextual: %s\n", status_message());
        return 2;
    }
    ops_set_threads(argc > 4 ? atoi(argv[4]) : 0);
    log_set_quiet(true);
    LlamaModel m;
    FfnPredictors p = {0};
    FfnPredictor *ly = NULL;
    char group[128];
    snprintf(group, sizeof group, "baselines/Lingua2+Contextual/%s/predictor", compat_name(compat));
    Status st = llama_load(&m, argv[1]);
    if (st == ST_OK) st = ffn_predictors_load(argv[2], group, &m.cfg, &p);
    if (st == ST_OK) st = ffn_sparsity_build(&m, &p, &ly);
    if (st != ST_OK) {
        fprintf(stderr, "bench_contextual: %s\n", status_message());
        return 1;
    }
    const double dens[] = {1.0, 1.0, 0.9, 0.8, 0.6, 0.5, 0.25}; // the first is the dense FFN
    enum { N = sizeof dens / sizeof *dens };
    FfnSparsity sp[N];
    LlamaView views[N];
    double t[N][ROUNDS];
    for (int i = 0; i < N; i++) {
        sp[i] = (FfnSparsity){.k = (int)(m.cfg.ffn_dim * dens[i]), .layers = ly};
        views[i] = (LlamaView){.sparse = &sp[i]};
    }
    for (int r = 0; st == ST_OK && r < ROUNDS; r++)
        for (int i = 0; st == ST_OK && i < N; i++) st = decode_ms(&m, i ? &views[i] : NULL, &t[i][r]);
    if (st == ST_OK) {
        char cpu[256];
        bench_cpu_name(cpu, sizeof cpu);
        printf("Decode after a %d-token prompt, %d steps per round, median of %d rounds (densities interleaved), one "
               "sequence, CPU f32, %s, %d threads, BLAS %s; predictors: %s (rank %d).\n\n", PREFILL, STEPS, ROUNDS, cpu,
               ops_get_threads(), blas_describe(), compat_name(compat), p.rank);
        printf("| FFN | neurons per token and layer | ms / token | / dense |\n|---|---|---|---|\n");
        double med[N];
        for (int i = 0; i < N; i++) {
            qsort(t[i], ROUNDS, sizeof(double), bench_cmp_double);
            med[i] = t[i][ROUNDS / 2];
        }
        for (int i = 0; i < N; i++) {
            char what[64];
            if (i) snprintf(what, sizeof what, "predictor + sparse, density %g", dens[i]);
            else snprintf(what, sizeof what, "dense");
            printf("| %s | %d of %d | %.2f | %.2f |\n", what, sp[i].k, m.cfg.ffn_dim, med[i], med[i] / med[0]);
        }
    }
    ffn_sparsity_free(ly, m.cfg.n_layers);
    ffn_predictors_free(&p);
    llama_free(&m);
    if (st != ST_OK) {
        fprintf(stderr, "bench_contextual: %s\n", status_message());
        return 1;
    }
    return 0;
}
