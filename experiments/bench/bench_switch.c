// Level switching cost against one prefill, on the same model and session.
//   bench_switch MODEL ARTIFACT [THREADS]
// Every level of the artifact (widths + its LoRA, when trained) is loaded once
// up front, as a server would hold them. A switch is llama_session_reset +
// llama_session_set_view; it is timed over 100000 switches round-robin over
// the levels, and compared with a 128-token prefill at the full level (median
// of 5). Prints one line: switch_us, prefill_ms, ratio.
#include <stdio.h>
#include <stdlib.h>

#include "elastic/artifact.h"
#include "models/llama.h"
#include "ops/ops.h"
#include "runtime/log.h"

#define PREFILL 128
#define SWITCHES 100000

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_switch MODEL ARTIFACT [THREADS]\n");
        return 2;
    }
    ops_set_threads(argc > 3 ? atoi(argv[3]) : 0);
    log_set_quiet(true);
    LlamaModel m;
    Artifact art;
    Status st = llama_load(&m, argv[1]);
    if (st == ST_OK) st = artifact_apply(&m, argv[2]);
    if (st == ST_OK) st = artifact_read(argv[2], &m.cfg, &art);
    if (st != ST_OK) {
        fprintf(stderr, "bench_switch: %s\n", status_message());
        return 1;
    }
    LevelView *views = calloc((size_t)art.n_levels, sizeof *views);
    int n_lora = 0;
    for (int i = 0; st == ST_OK && i < art.n_levels; i++) {
        char name[32];
        level_name(art.levels[i].level, name, sizeof name);
        st = level_view_load(argv[2], &m, name, false, &views[i]);
        n_lora += views[i].has_lora;
    }
    const Device cpu = {DEV_CPU, 0};
    LlamaSession s;
    Tensor logits;
    if (st == ST_OK) st = llama_session_init(&s, &m, 1, PREFILL, cpu);
    if (st == ST_OK) st = tensor_alloc_2d(&logits, DT_F32, cpu, 1, m.cfg.vocab_size);
    int32_t ids[PREFILL];
    for (int i = 0; i < PREFILL; i++) ids[i] = (int32_t)((1000 + 7919L * i) % m.cfg.vocab_size);
    // warm every level once (first use grows the adapter scratch), then time
    for (int i = 0; st == ST_OK && i < art.n_levels; i++) {
        llama_session_reset(&s);
        st = llama_session_set_view(&s, &m, &views[i].view);
        if (st == ST_OK) st = llama_forward(&m, &s, ids, NULL, PREFILL, LOGITS_LAST, &logits);
    }
    double prefill[5];
    for (int r = 0; st == ST_OK && r < 5; r++) {
        llama_session_reset(&s);
        st = llama_session_set_view(&s, &m, &views[art.n_levels - 1].view);
        double t0 = time_now();
        if (st == ST_OK) st = llama_forward(&m, &s, ids, NULL, PREFILL, LOGITS_LAST, &logits);
        prefill[r] = time_now() - t0;
    }
    double t0 = time_now();
    for (int k = 0; st == ST_OK && k < SWITCHES; k++) {
        llama_session_reset(&s);
        st = llama_session_set_view(&s, &m, &views[k % art.n_levels].view);
    }
    double per_switch = (time_now() - t0) / SWITCHES;
    if (st != ST_OK) {
        fprintf(stderr, "bench_switch: %s\n", status_message());
        return 1;
    }
    qsort(prefill, 5, sizeof *prefill, cmp_double);
    printf("levels=%d with_lora=%d switch_us=%.3f prefill_%d_ms=%.1f ratio=%.2e\n", art.n_levels, n_lora,
           per_switch * 1e6, PREFILL, prefill[2] * 1e3, per_switch / prefill[2]);
    tensor_free(&logits);
    llama_session_free(&s);
    for (int i = 0; i < art.n_levels; i++) level_view_free(&views[i]);
    free(views);
    artifact_free(&art);
    llama_free(&m);
    return 0;
}
