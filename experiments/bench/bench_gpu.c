// GPU prefill and decode throughput of LLaMA-shaped models with random weights.
//
//   bench_gpu SHAPE [--batch B] [--prefill T] [--decode-prompt P] [--decode-steps S]
//                   [--reps R] [--dtype bf16|f16|f32] [--init full|replicate] [--seed N]
//
// SHAPE: llama2-7b (dim 4096, 32 layers, 32 heads, ffn 11008, vocab 32000) or
// smollm2-135m (dim 576, 30 layers, 9 heads / 3 KV heads of 64, ffn 1536,
// vocab 49152, tied embeddings). The weights are llama_init_random's N(0, 0.02)
// moved to cuda:0 with llama_to_device in --dtype (bf16 by default).
//   --init full       every layer drawn (llama_init_random of the whole model)
//   --init replicate  one layer drawn, its device copy duplicated into every
//                     layer (distinct memory, same values): the 7B shape's
//                     default, since drawing 6.7e9 normals on one CPU core takes
//                     minutes. Timing does not depend on the values (random,
//                     not zeros; each layer streams its own memory).
//
// Measures, each the median of R timed runs after one warm-up run, with
// cudaDeviceSynchronize before every clock read:
//   prefill: B sequences of T tokens in one forward (no padding, logits of the
//            last position only) into an empty cache
//            -> prefill_tok_s = B*T / seconds
//            -> mfu = 2 * N_matmul * B*T / seconds / peak, N_matmul = the
//               per-token matmul parameters (every layer's q, k, v, o, gate, up,
//               down; not the embedding gather, not the lm_head that runs for
//               the last position only, not the attention scores)
//   decode:  batch 1; a P-token prompt (not timed), then S greedy steps of one
//            token (argmax on the host, as llama_generate_greedy)
//            -> decode_ms_tok = seconds / S * 1000
// The token ids follow bench_llama's recipe: ids[i] = (1000 + 7919 i) mod V.
//
// Output: a "# device" line, then one line of key=value pairs:
//   elastilm shape=... prefill_tok_s=... mfu=... decode_ms_tok=... (and more)
// Exit status: 0 ok; 1 a failure (message on stderr); 2 usage; 77 no CUDA device.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/llama.h"
#include "ops/ops.h"
#include "runtime/device.h"
#include "runtime/log.h"

// From the CUDA runtime this binary links (cudart): declared here so that this
// file builds with the host compiler flags alone. Returns cudaSuccess (0) or an error.
extern int cudaDeviceSynchronize(void);

static const Device CPU = {DEV_CPU, 0};
static const Device GPU = {DEV_CUDA, 0};

static void sync_device(void) {
    int e = cudaDeviceSynchronize();
    if (e != 0) {
        fprintf(stderr, "bench_gpu: cudaDeviceSynchronize failed (error %d)\n", e);
        exit(1);
    }
}

static void die(const char *what) {
    fprintf(stderr, "bench_gpu: %s: %s\n", what, status_message());
    exit(1);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// Dense bf16 (and f16) tensor-core peak of the device, from its name: the
// datasheet numbers (without sparsity). 0 when unknown (no MFU printed).
static double peak_tflops(const char *desc, DType dt, const char **label) {
    double p = 0;
    *label = "unknown device";
    if (strstr(desc, "H200")) p = 989.4, *label = "H200 SXM dense bf16 989 TFLOP/s";
    else if (strstr(desc, "H100") && strstr(desc, "PCIe")) p = 756.0, *label = "H100 PCIe dense bf16 756 TFLOP/s";
    else if (strstr(desc, "H100") && strstr(desc, "NVL")) p = 835.0, *label = "H100 NVL dense bf16 835 TFLOP/s";
    else if (strstr(desc, "H100")) p = 989.4, *label = "H100 SXM dense bf16 989 TFLOP/s";
    else if (strstr(desc, "A100")) p = 312.0, *label = "A100 dense bf16 312 TFLOP/s";
    if (dt == DT_F32 && p > 0) { // fp32 weights run plain fp32 GEMMs (no TF32): the FMA peak
        if (strstr(desc, "A100")) p = 19.5, *label = "A100 fp32 19.5 TFLOP/s";
        else if (strstr(desc, "PCIe")) p = 51.0, *label = "H100 PCIe fp32 51 TFLOP/s";
        else p = 66.9, *label = "H100/H200 SXM fp32 67 TFLOP/s";
    }
    return p;
}

static LlamaConfig shape_config(const char *name, bool *ok) {
    LlamaConfig c;
    memset(&c, 0, sizeof c);
    *ok = true;
    c.rms_eps = 1e-5f;
    c.bos_token_id = 1, c.eos_token_id = 2;
    if (strcmp(name, "llama2-7b") == 0) {
        c.vocab_size = 32000, c.dim = 4096, c.ffn_dim = 11008, c.n_layers = 32, c.n_heads = 32, c.n_kv_heads = 32;
        c.head_dim = 128, c.max_position = 4096, c.rope_theta = 10000.0f;
    } else if (strcmp(name, "smollm2-135m") == 0) {
        c.vocab_size = 49152, c.dim = 576, c.ffn_dim = 1536, c.n_layers = 30, c.n_heads = 9, c.n_kv_heads = 3;
        c.head_dim = 64, c.max_position = 8192, c.rope_theta = 100000.0f, c.tie_embeddings = true;
    } else {
        *ok = false;
    }
    return c;
}

// Matmul parameters every token goes through (see the header).
static int64_t matmul_params(const LlamaConfig *c) {
    int64_t D = c->dim, F = c->ffn_dim, QD = (int64_t)c->n_heads * c->head_dim, KVD = (int64_t)c->n_kv_heads * c->head_dim;
    return (int64_t)c->n_layers * (QD * D + 2 * KVD * D + D * QD + 3 * F * D);
}

// A copy of a device tensor into fresh device memory (through the host).
static Status device_clone(const Tensor *src, Tensor *dst, void *staging) {
    size_t bytes = (size_t)tensor_numel(src) * dtype_size(src->dtype);
    TRY(device_copy_from(src->dev, staging, src->data, bytes));
    TRY(tensor_alloc(dst, src->dtype, src->dev, src->ndim, src->shape));
    return device_copy_to(dst->dev, dst->data, staging, bytes);
}

// The model on the device: all layers drawn (full) or one drawn and duplicated.
static void make_model(LlamaModel *m, const LlamaConfig *c, DType dt, bool replicate, uint64_t seed) {
    if (!replicate) {
        if (llama_init_random(m, c, seed) != ST_OK) die("llama_init_random");
        if (llama_to_device(m, GPU, dt) != ST_OK) die("llama_to_device");
        return;
    }
    LlamaConfig one = *c;
    one.n_layers = 1;
    if (llama_init_random(m, &one, seed) != ST_OK) die("llama_init_random");
    if (llama_to_device(m, GPU, dt) != ST_OK) die("llama_to_device");
    LlamaLayer *layers = calloc((size_t)c->n_layers, sizeof *layers);
    size_t biggest = 0;
    const LlamaLayer *l0 = &m->layers[0];
    const Tensor *ts0[] = {&l0->attn_norm, &l0->wq, &l0->wk, &l0->wv, &l0->wo, &l0->mlp_norm, &l0->w_gate, &l0->w_up, &l0->w_down};
    for (int i = 0; i < 9; i++) {
        size_t b = (size_t)tensor_numel(ts0[i]) * dtype_size(ts0[i]->dtype);
        biggest = b > biggest ? b : biggest;
    }
    void *staging = malloc(biggest);
    if (!layers || !staging) {
        fprintf(stderr, "bench_gpu: out of memory\n");
        exit(1);
    }
    layers[0] = m->layers[0];
    for (int l = 1; l < c->n_layers; l++) {
        LlamaLayer *ly = &layers[l];
        Tensor *ts[] = {&ly->attn_norm, &ly->wq, &ly->wk, &ly->wv, &ly->wo, &ly->mlp_norm, &ly->w_gate, &ly->w_up, &ly->w_down};
        for (int i = 0; i < 9; i++)
            if (device_clone(ts0[i], ts[i], staging) != ST_OK) die("copying layer 0");
    }
    free(staging);
    free(m->layers);
    m->layers = layers;
    m->cfg.n_layers = c->n_layers;
}

static const char *arg_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "bench_gpu: %s needs a value\n", argv[*i]);
        exit(2);
    }
    return argv[++*i];
}

int main(int argc, char **argv) {
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: bench_gpu llama2-7b|smollm2-135m [--batch B] [--prefill T] [--decode-prompt P] "
                        "[--decode-steps S] [--reps R] [--dtype bf16|f16|f32] [--init full|replicate] [--seed N]\n");
        return 2;
    }
    const char *shape = argv[1];
    bool ok;
    LlamaConfig c = shape_config(shape, &ok);
    if (!ok) {
        fprintf(stderr, "bench_gpu: unknown shape '%s' (llama2-7b, smollm2-135m)\n", shape);
        return 2;
    }
    int B = 8, T = 512, P = 128, S = 128, R = 5;
    uint64_t seed = 1;
    DType dt = DT_BF16;
    int replicate = -1; // default: by size
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--batch")) B = atoi(arg_value(argc, argv, &i));
        else if (!strcmp(a, "--prefill")) T = atoi(arg_value(argc, argv, &i));
        else if (!strcmp(a, "--decode-prompt")) P = atoi(arg_value(argc, argv, &i));
        else if (!strcmp(a, "--decode-steps")) S = atoi(arg_value(argc, argv, &i));
        else if (!strcmp(a, "--reps")) R = atoi(arg_value(argc, argv, &i));
        else if (!strcmp(a, "--seed")) seed = strtoull(arg_value(argc, argv, &i), NULL, 10);
        else if (!strcmp(a, "--dtype")) {
            const char *v = arg_value(argc, argv, &i);
            if (!strcmp(v, "bf16")) dt = DT_BF16;
            else if (!strcmp(v, "f16")) dt = DT_F16;
            else if (!strcmp(v, "f32")) dt = DT_F32;
            else {
                fprintf(stderr, "bench_gpu: --dtype: bf16, f16 or f32\n");
                return 2;
            }
        } else if (!strcmp(a, "--init")) {
            const char *v = arg_value(argc, argv, &i);
            if (!strcmp(v, "full")) replicate = 0;
            else if (!strcmp(v, "replicate")) replicate = 1;
            else {
                fprintf(stderr, "bench_gpu: --init: full or replicate\n");
                return 2;
            }
        } else {
            fprintf(stderr, "bench_gpu: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (B < 1 || T < 1 || P < 1 || S < 1 || R < 1) {
        fprintf(stderr, "bench_gpu: sizes and --reps must be >= 1\n");
        return 2;
    }
    if (device_count() == 0) {
        fprintf(stderr, "bench_gpu: no usable CUDA device\n");
        return 77;
    }
    char desc[160];
    if (device_describe(0, desc, sizeof desc) != ST_OK) die("device_describe");
    const char *peak_label;
    double peak = peak_tflops(desc, dt, &peak_label);
    if (replicate < 0) replicate = c.n_layers * (int64_t)c.dim * c.dim > 100000000; // 7B: yes; 135M: no
    printf("# device: %s; peak used for MFU: %s\n", desc, peak_label);
    fflush(stdout);

    ops_set_threads(0);
    double t_init = time_now();
    LlamaModel m;
    make_model(&m, &c, dt, replicate, seed);
    sync_device();
    t_init = time_now() - t_init;
    int V = c.vocab_size;
    int64_t n_mm = matmul_params(&c), n_all = llama_param_count(&m);

    // ---- prefill: B x T tokens into an empty cache ----
    int32_t *ids = malloc((size_t)B * T * sizeof *ids);
    for (int64_t i = 0; i < (int64_t)B * T; i++) ids[i] = (int32_t)((1000 + 7919 * i) % V);
    LlamaSession s;
    Tensor logits;
    if (llama_session_init(&s, &m, B, T, GPU) != ST_OK) die("session");
    if (tensor_alloc_2d(&logits, DT_F32, CPU, B, V) != ST_OK) die("logits");
    double *times = malloc((size_t)(R + 1) * sizeof *times);
    for (int r = 0; r <= R; r++) { // run 0: warm-up (handles, plans, scratch)
        llama_session_reset(&s);
        sync_device();
        double t0 = time_now();
        if (llama_forward(&m, &s, ids, NULL, T, LOGITS_LAST, &logits) != ST_OK) die("prefill");
        sync_device();
        times[r] = time_now() - t0;
    }
    double prefill_s = median(times + 1, R);
    float absmax = 0;
    for (int64_t i = 0; i < (int64_t)B * V; i++) {
        float v = fabsf(((float *)logits.data)[i]);
        absmax = v > absmax || isnan(v) ? v : absmax;
    }
    llama_session_free(&s);
    tensor_free(&logits);

    // ---- decode: batch 1, P-token prompt, S greedy steps ----
    if (llama_session_init(&s, &m, 1, P + S, GPU) != ST_OK) die("session");
    if (tensor_alloc_2d(&logits, DT_F32, CPU, 1, V) != ST_OK) die("logits");
    for (int r = 0; r <= R; r++) {
        llama_session_reset(&s);
        if (llama_forward(&m, &s, ids, NULL, P, LOGITS_LAST, &logits) != ST_OK) die("decode prompt");
        sync_device();
        double t0 = time_now();
        for (int k = 0; k < S; k++) {
            const float *row = logits.data;
            int32_t next = 0;
            for (int j = 1; j < V; j++)
                if (row[j] > row[next]) next = j;
            if (llama_forward(&m, &s, &next, NULL, 1, LOGITS_LAST, &logits) != ST_OK) die("decode step");
        }
        sync_device();
        times[r] = time_now() - t0;
    }
    double decode_s = median(times + 1, R);
    llama_session_free(&s);
    tensor_free(&logits);

    double tokens = (double)B * T;
    double mfu = peak > 0 ? 2.0 * (double)n_mm * tokens / prefill_s / (peak * 1e12) : NAN;
    printf("elastilm shape=%s dtype=%s init=%s params=%lld matmul_params=%lld batch=%d prefill_len=%d "
           "prefill_ms=%.2f prefill_tok_s=%.1f mfu=%.4f decode_prompt=%d decode_steps=%d decode_ms_tok=%.3f "
           "decode_tok_s=%.1f reps=%d init_s=%.1f logit_absmax=%.3g\n",
           shape, dtype_name(dt), replicate ? "replicate" : "full", (long long)n_all, (long long)n_mm, B, T,
           prefill_s * 1e3, tokens / prefill_s, mfu, P, S, decode_s / S * 1e3, S / decode_s, R, t_init, absmax);
    fflush(stdout);
    free(times);
    free(ids);
    llama_free(&m);
    if (!isfinite(absmax) || absmax == 0.0f) { // timings of a broken forward mean nothing
        fprintf(stderr, "bench_gpu: the prefill logits are %s\n", absmax == 0.0f ? "all zero" : "not finite");
        return 1;
    }
    return 0;
}
