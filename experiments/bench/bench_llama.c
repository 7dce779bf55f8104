// CPU prefill and decode throughput of a LLaMA-family model, fp32 weights
// or, with --weights, bf16 / q8 weights (llama_convert_weights).
//   bench_llama [--weights f32|bf16|q8] MODEL [THREADS...]
// Prefill: one sequence of 128 tokens (ids[i] = (1000 + 7919 i) mod V, the
// same recipe as bench_torch.py). Decode: 64 greedy steps with the KV cache
// after that prefill. Best of 3 runs after a warm-up. One line per thread
// count: "elastilm threads=N prefill_tok_s=X decode_tok_s=Y", with
// " weights=W" after threads=N when W is not f32.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/llama.h"
#include "ops/ops.h"
#include "runtime/log.h"

#define PREFILL 128
#define DECODE 64
#define REPEATS 3

static Status run_once(const LlamaModel *m, const int32_t *ids, double *prefill_s, double *decode_s) {
    static const Device cpu = {DEV_CPU, 0};
    LlamaSession s;
    TRY(llama_session_init(&s, m, 1, PREFILL + DECODE, cpu));
    Tensor logits;
    Status st = tensor_alloc_2d(&logits, DT_F32, cpu, 1, m->cfg.vocab_size);
    double t0 = time_now();
    if (st == ST_OK) st = llama_forward(m, &s, ids, NULL, PREFILL, LOGITS_LAST, &logits);
    double t1 = time_now();
    for (int k = 0; st == ST_OK && k < DECODE; k++) {
        const float *row = logits.data;
        int32_t next = 0;
        for (int j = 1; j < m->cfg.vocab_size; j++)
            if (row[j] > row[next]) next = j;
        st = llama_forward(m, &s, &next, NULL, 1, LOGITS_LAST, &logits);
    }
    double t2 = time_now();
    *prefill_s = t1 - t0;
    *decode_s = t2 - t1;
    tensor_free(&logits);
    llama_session_free(&s);
    return st;
}

int main(int argc, char **argv) {
    DType weights = DT_F32;
    if (argc > 2 && strcmp(argv[1], "--weights") == 0) {
        if (llama_weights_parse(argv[2], &weights) != ST_OK) {
            fprintf(stderr, "bench_llama: --weights: %s\n", status_message());
            return 2;
        }
        argc -= 2, argv += 2;
    }
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: bench_llama [--weights f32|bf16|q8] MODEL [THREADS...]\n");
        return 2;
    }
    LlamaModel m;
    if (llama_load(&m, argv[1]) != ST_OK || llama_convert_weights(&m, weights) != ST_OK) {
        fprintf(stderr, "bench_llama: %s\n", status_message());
        return 1;
    }
    int32_t ids[PREFILL];
    for (int i = 0; i < PREFILL; i++) ids[i] = (int32_t)((1000 + 7919L * i) % m.cfg.vocab_size);
    int n_counts = argc > 2 ? argc - 2 : 2;
    for (int c = 0; c < n_counts; c++) {
        int threads = argc > 2 ? atoi(argv[2 + c]) : c + 1;
        ops_set_threads(threads);
        double best_p = 1e30, best_d = 1e30;
        for (int r = 0; r <= REPEATS; r++) { // run 0 is the warm-up
            double p, d;
            if (run_once(&m, ids, &p, &d) != ST_OK) {
                fprintf(stderr, "bench_llama: %s\n", status_message());
                return 1;
            }
            if (r > 0 && p < best_p) best_p = p;
            if (r > 0 && d < best_d) best_d = d;
        }
        char w[32] = "";
        if (weights != DT_F32) snprintf(w, sizeof w, " weights=%s", llama_weights_name(weights));
        printf("elastilm threads=%d%s prefill_tok_s=%.1f decode_tok_s=%.2f\n", threads, w, PREFILL / best_p,
               DECODE / best_d);
        fflush(stdout);
    }
    llama_free(&m);
    return 0;
}
