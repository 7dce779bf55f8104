// Measured CPU prefill time of each policy's view at each SLO pair, against
// the full model in the same run: a dropped layer or sub-block must save its time.
//   bench_policies MODEL ARTIFACT [paper|artifact] [THREADS]
// The artifact needs the levels (LLMPruner) and the prepared baselines
// (`elastilm prepare --mode ...`). For each (mode, SLO): open the policy, decide,
// then a 128-token prefill of one sequence, median of 5 (the full model is timed
// between the modes, interleaved, and its median is the reference). Prints a
// markdown table with the CPU and the BLAS kernels.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "elastic/artifact.h"
#include "models/llama.h"
#include "ops/blas.h"
#include "ops/ops.h"
#include "policy/policy.h"
#include "runtime/log.h"

#define PREFILL 128
#define ROUNDS 5


static Status prefill_ms(const LlamaModel *m, const LlamaView *v, double *ms) {
    const Device cpu = {DEV_CPU, 0};
    LlamaSession s;
    Tensor logits;
    int32_t ids[PREFILL];
    for (int i = 0; i < PREFILL; i++) ids[i] = (int32_t)((1000 + 7919L * i) % m->cfg.vocab_size);
    TRY(llama_session_init(&s, m, 1, PREFILL, cpu));
    Status st = tensor_alloc_2d(&logits, DT_F32, cpu, 1, m->cfg.vocab_size);
    if (st == ST_OK) st = llama_session_set_view(&s, m, v);
    if (st == ST_OK) st = llama_forward(m, &s, ids, NULL, PREFILL, LOGITS_LAST, &logits); // warm
    double t[ROUNDS];
    for (int r = 0; st == ST_OK && r < ROUNDS; r++) {
        llama_session_reset(&s);
        double t0 = time_now();
        st = llama_forward(m, &s, ids, NULL, PREFILL, LOGITS_LAST, &logits);
        t[r] = (time_now() - t0) * 1e3;
    }
    if (st == ST_OK) {
        qsort(t, ROUNDS, sizeof *t, bench_cmp_double);
        *ms = t[ROUNDS / 2];
    }
    tensor_free(&logits);
    llama_session_free(&s);
    return st;
}


int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_policies MODEL ARTIFACT [paper|artifact] [THREADS]\n");
        return 2;
    }
    Compat compat = COMPAT_PAPER;
    if (argc > 3 && compat_parse(argv[3], &compat) != ST_OK) {
        fprintf(stderr, "bench_policies: %s\n", status_message());
        return 2;
    }
    ops_set_threads(argc > 4 ? atoi(argv[4]) : 0);
    log_set_quiet(true);
    const char *modes[] = {"LLMPruner", "LayerReduction", "ShortGPT", "AttnDrop", "LaCo"};
    const Slo slos[] = {{0.8, 0.9}, {0.6, 0.8}, {0.4, 0.7}, {0.2, 0.6}, {0.2, 0.5}};
    LlamaModel orig, perm;
    Status st = llama_load(&orig, argv[1]);
    if (st == ST_OK) st = llama_load(&perm, argv[1]);
    if (st == ST_OK) st = artifact_apply(&perm, argv[2]);
    if (st != ST_OK) {
        fprintf(stderr, "bench_policies: %s\n", status_message());
        return 1;
    }
    char cpu[256];
    bench_cpu_name(cpu, sizeof cpu);
    printf("Prefill of %d tokens (one sequence, CPU f32), median of %d, %s, %d threads, BLAS %s; compat %s.\n\n",
           PREFILL, ROUNDS, cpu, ops_get_threads(), blas_describe(), compat_name(compat));
    printf("| mode | prefill SLO | decode SLO | view | ms | / full |\n|---|---|---|---|---|---|\n");
    double full_t[64];
    int n_full = 0;
    st = prefill_ms(&orig, NULL, &full_t[n_full++]);
    for (size_t i = 0; st == ST_OK && i < sizeof modes / sizeof *modes; i++) {
        const Policy *p;
        st = policy_lookup(modes[i], &p);
        const LlamaModel *m = p && p->reordered ? &perm : &orig;
        void *state = NULL;
        PolicyOpen o = {.m = m, .artifact = argv[2], .compat = compat};
        if (st == ST_OK) st = p->open(&state, &o);
        bool opened = st == ST_OK;
        if (st == ST_OK && p->place) st = p->place(state, m);
        for (size_t k = 0; st == ST_OK && k < sizeof slos / sizeof *slos; k++) {
            Decision d;
            double ms = 0;
            st = p->decide(state, NULL, &slos[k], &d);
            if (st == ST_OK) st = prefill_ms(m, d.view, &ms);
            if (st == ST_OK) st = prefill_ms(&orig, NULL, &full_t[n_full++]); // the reference, interleaved
            if (st == ST_OK) {
                double ref = full_t[n_full - 1] < full_t[n_full - 2] ? full_t[n_full - 1] : full_t[n_full - 2];
                printf("| %s | %.1f | %.1f | %s | %.1f | %.2f |\n", p->name, slos[k].prefill, slos[k].decode, d.what, ms,
                       ms / ref);
            }
        }
        if (opened) p->close(state);
    }
    if (st == ST_OK) {
        qsort(full_t, (size_t)n_full, sizeof *full_t, bench_cmp_double);
        printf("| full | 1.0 | 1.0 | the full model | %.1f | 1.00 |\n\n(/ full: against the lower of the two full-model "
               "timings around each row; full's own figure is the median of its %d timings)\n",
               full_t[n_full / 2], n_full);
    }
    llama_free(&orig);
    llama_free(&perm);
    if (st != ST_OK) {
        fprintf(stderr, "bench_policies: %s\n", status_message());
        return 1;
    }
    return 0;
}
