// CPU benchmark of contextual sparsity (Deja Vu) in the FFN at decode (one
// token): the dense SwiGLU FFN against a neuron predictor + top-k + the sparse
// FFN over the selected neurons (ops.h, "contextual sparsity"), f32 weights.
//
//   bench_sparse_ffn [--shapes smol,llama|DxF,...] [--densities 1,0.8,0.6,0.5,0.25]
//                    [--threads N] [--warmup W] [--min-reps R] [--seconds S]
//
// Shapes: smol = SmolLM2-135M (D 576, F 1536), llama = a Llama-class layer
// (D 4096, F 14336; ~0.94 GB of f32 weights: gate, up, down and down^T), or DxF.
// Per call, with x [1, D] and out [1, D]:
//   dense      op_matmul(gate = x Wg^T), op_matmul(up = x Wu^T), op_swiglu,
//              op_matmul_add(out += h Wd^T)              (Wd = down_proj.weight [D, F])
//   predictor  op_matmul(x P1^T) [1, 128], op_bias_add, op_activation(ReLU),
//              op_matmul(. P2^T) [1, F], op_bias_add      (Deja Vu's MLP predictor, rank 128)
//   topk       op_topk_rows(idx [1, k], scores)           (k = round(density F))
//   sparse     op_ffn_sparse(out, x, Wg, Wu, Wd^T, idx)
// Weights and inputs are random (N(0, 1/D) and N(0, 1)); the selected neurons are
// thus scattered over the rows, as a real predictor's are. Every configuration
// runs --warmup untimed calls, then calls timed one by one until --seconds have
// passed and at least --min-reps calls were made; the median is reported. All
// configurations of a shape run in the same process, one after another, so the
// ratios compare like with like. The smol shape's weights (10.6 MB) stay in the
// caches between calls; the llama shape's do not (memory-bound).
//
// Output: a header with the CPU model (/proc/cpuinfo), cores, threads and BLAS,
// then per shape one table: density, k, median ms of predictor+topk, of the
// sparse FFN alone, of the whole sparse path, and the whole path's and the
// sparse FFN's ratio to the dense FFN's median measured in the same run.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "ops/blas.h"
#include "ops/ops.h"
#include "runtime/log.h"
#include "runtime/rng.h"

#define RANK 128 // the predictor's hidden width
#define MAX_DENSITIES 16
#define MAX_SHAPES 8

static const Device CPU = {DEV_CPU, 0};


static Tensor alloc2(int64_t rows, int64_t cols, DType dt) {
    Tensor t;
    if (tensor_alloc_2d(&t, dt, CPU, rows, cols) != ST_OK) {
        fprintf(stderr, "bench_sparse_ffn: %s\n", status_message());
        exit(1);
    }
    return t;
}

static Tensor alloc1(int64_t n) {
    Tensor t;
    if (tensor_alloc_1d(&t, DT_F32, CPU, n) != ST_OK) {
        fprintf(stderr, "bench_sparse_ffn: %s\n", status_message());
        exit(1);
    }
    return t;
}

// Uniform values of standard deviation sd (cheaper to draw than normals for ~10^8 weights).
static void fill(Tensor *t, Rng *r, float sd) {
    float *p = t->data, a = sd * sqrtf(3.0f);
    for (int64_t i = 0; i < tensor_numel(t); i++) p[i] = a * (2.0f * rng_uniform(r) - 1.0f);
}

typedef struct {
    int64_t d, f;
    Tensor x, out, gate, up, wg, wu, wd, wdt;
    Tensor p1, b1, p2, b2, hid, scores;
} Layer;

typedef void (*CallFn)(Layer *l, Tensor *idx);

static void call_dense(Layer *l, Tensor *idx) {
    (void)idx;
    op_matmul(&l->gate, &l->x, &l->wg);
    op_matmul(&l->up, &l->x, &l->wu);
    op_swiglu(&l->gate, &l->gate, &l->up);
    op_matmul_add(&l->out, &l->gate, &l->wd, 1.0f);
}

static void call_predict(Layer *l, Tensor *idx) {
    op_matmul(&l->hid, &l->x, &l->p1);
    op_bias_add(&l->hid, &l->b1);
    op_activation(&l->hid, &l->hid, ACT_RELU);
    op_matmul(&l->scores, &l->hid, &l->p2);
    op_bias_add(&l->scores, &l->b2);
    op_topk_rows(idx, &l->scores);
}

static void call_sparse_only(Layer *l, Tensor *idx) { op_ffn_sparse(&l->out, &l->x, &l->wg, &l->wu, &l->wdt, idx); }

static void call_sparse(Layer *l, Tensor *idx) {
    call_predict(l, idx);
    call_sparse_only(l, idx);
}

// The median seconds per call.
static double time_calls(CallFn fn, Layer *l, Tensor *idx, int warmup, int min_reps, double seconds) {
    for (int i = 0; i < warmup; i++) fn(l, idx);
    int cap = 1024, n = 0;
    double *t = malloc((size_t)cap * sizeof *t), start = time_now();
    while (n < min_reps || (time_now() - start < seconds && n < 100000)) {
        if (n == cap) t = realloc(t, (size_t)(cap *= 2) * sizeof *t);
        double t0 = time_now();
        fn(l, idx);
        t[n++] = time_now() - t0;
        tensor_zero(&l->out); // keep out bounded (the FFN adds into it); not timed
    }
    qsort(t, (size_t)n, sizeof *t, bench_cmp_double);
    double med = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    free(t);
    return med;
}

static void layer_init(Layer *l, int64_t d, int64_t f, Rng *r) {
    l->d = d, l->f = f;
    l->x = alloc2(1, d, DT_F32), l->out = alloc2(1, d, DT_F32);
    l->gate = alloc2(1, f, DT_F32), l->up = alloc2(1, f, DT_F32);
    l->wg = alloc2(f, d, DT_F32), l->wu = alloc2(f, d, DT_F32), l->wd = alloc2(d, f, DT_F32), l->wdt = alloc2(f, d, DT_F32);
    l->p1 = alloc2(RANK, d, DT_F32), l->b1 = alloc1(RANK), l->p2 = alloc2(f, RANK, DT_F32), l->b2 = alloc1(f);
    l->hid = alloc2(1, RANK, DT_F32), l->scores = alloc2(1, f, DT_F32);
    fill(&l->x, r, 1.0f);
    fill(&l->wg, r, 1.0f / sqrtf((float)d)), fill(&l->wu, r, 1.0f / sqrtf((float)d));
    fill(&l->wd, r, 1.0f / sqrtf((float)f));
    for (int64_t j = 0; j < f; j++) // w_down_t = w_down^T
        for (int64_t e = 0; e < d; e++) tensor_row_f32(&l->wdt, j)[e] = tensor_row_f32(&l->wd, e)[j];
    fill(&l->p1, r, 1.0f / sqrtf((float)d)), fill(&l->b1, r, 0.1f);
    fill(&l->p2, r, 1.0f / sqrtf((float)RANK)), fill(&l->b2, r, 0.1f);
}

static void layer_free(Layer *l) {
    Tensor *all[] = {&l->x, &l->out, &l->gate, &l->up, &l->wg, &l->wu, &l->wd, &l->wdt,
                     &l->p1, &l->b1, &l->p2, &l->b2, &l->hid, &l->scores};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) tensor_free(all[i]);
}

static int usage(FILE *f) {
    fprintf(f, "usage: bench_sparse_ffn [--shapes smol,llama|DxF,...] [--densities 1,0.8,0.6,0.5,0.25]\n"
               "                        [--threads N] [--warmup W] [--min-reps R] [--seconds S]\n");
    return f == stderr ? 2 : 0;
}

int main(int argc, char **argv) {
    const char *shapes = "smol,llama", *dens_arg = "1,0.8,0.6,0.5,0.25";
    int threads = 0, warmup = 5, min_reps = 20;
    double seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return usage(stdout);
        if (!v) return usage(stderr);
        if (!strcmp(a, "--shapes")) shapes = v;
        else if (!strcmp(a, "--densities")) dens_arg = v;
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--min-reps")) min_reps = atoi(v);
        else if (!strcmp(a, "--seconds")) seconds = atof(v);
        else return usage(stderr);
        i++;
    }
    double dens[MAX_DENSITIES];
    int n_dens = 0;
    char *copy = strdup(dens_arg), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok && n_dens < MAX_DENSITIES; tok = strtok_r(NULL, ",", &save)) {
        double v = atof(tok);
        if (v > 0 && v <= 1) dens[n_dens++] = v;
    }
    free(copy);
    int64_t sd[MAX_SHAPES], sf[MAX_SHAPES];
    int n_shapes = 0;
    copy = strdup(shapes);
    for (char *tok = strtok_r(copy, ",", &save); tok && n_shapes < MAX_SHAPES; tok = strtok_r(NULL, ",", &save)) {
        long long d, f;
        if (!strcmp(tok, "smol")) sd[n_shapes] = 576, sf[n_shapes++] = 1536;
        else if (!strcmp(tok, "llama")) sd[n_shapes] = 4096, sf[n_shapes++] = 14336;
        else if (sscanf(tok, "%lldx%lld", &d, &f) == 2 && d > 0 && f > 0) sd[n_shapes] = d, sf[n_shapes++] = f;
        else {
            free(copy);
            return usage(stderr);
        }
    }
    free(copy);
    if (n_dens == 0 || n_shapes == 0 || warmup < 0 || min_reps < 1) return usage(stderr);

    ops_set_threads(threads);
    char cpu_model[256];
    bench_cpu_name(cpu_model, sizeof cpu_model);
    printf("# cpu: %s, %ld cores, %s; threads: %d; blas: %s\n", cpu_model, sysconf(_SC_NPROCESSORS_ONLN),
           isa_level_name(blas_cpu_level()), ops_get_threads(), blas_describe());
    printf("# N = 1 (decode), f32 weights, predictor rank %d; median of >= %d calls (>= %.1f s) after %d warm-up\n", RANK,
           min_reps, seconds, warmup);
    fflush(stdout);

    Rng r;
    rng_seed(&r, 42);
    for (int s = 0; s < n_shapes; s++) {
        Layer l;
        layer_init(&l, sd[s], sf[s], &r);
        double dense = time_calls(call_dense, &l, NULL, warmup, min_reps, seconds);
        printf("\n## D %lld, F %lld: dense FFN %.4f ms\n", (long long)l.d, (long long)l.f, dense * 1e3);
        printf("| density | k | predictor+topk ms | sparse FFN ms | total ms | total / dense | sparse FFN / dense |\n");
        printf("|---|---|---|---|---|---|---|\n");
        fflush(stdout);
        for (int q = 0; q < n_dens; q++) {
            int64_t k = (int64_t)llround(dens[q] * (double)l.f);
            if (k < 1) k = 1;
            Tensor idx = alloc2(1, k, DT_I32);
            call_predict(&l, &idx); // the selection the sparse-only timing uses
            double pred = time_calls(call_predict, &l, &idx, warmup, min_reps, seconds);
            double ffn = time_calls(call_sparse_only, &l, &idx, warmup, min_reps, seconds);
            double total = time_calls(call_sparse, &l, &idx, warmup, min_reps, seconds);
            printf("| %.2f | %lld | %.4f | %.4f | %.4f | %.3f | %.3f |\n", dens[q], (long long)k, pred * 1e3, ffn * 1e3,
                   total * 1e3, total / dense, ffn / dense);
            fflush(stdout);
            tensor_free(&idx);
        }
        // dense again at the end: the drift of the machine over the table
        double dense2 = time_calls(call_dense, &l, NULL, warmup, min_reps, seconds);
        printf("dense FFN again after the table: %.4f ms (%+.1f%%)\n", dense2 * 1e3, (dense2 / dense - 1) * 100);
        fflush(stdout);
        layer_free(&l);
    }
    return 0;
}
