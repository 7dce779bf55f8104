// Model views (elastic levels + adapters) in the inference forward:
//  - a prefix view of the full weights computes what a physically pruned copy
//    of the model computes (built here by copying rows and columns);
//  - a view with LoRA adapters gives the same token losses through the KV-cache
//    forward (llama_forward) as through the training forward (llama_train),
//    two separate implementations of attention and adapters;
//  - switching views changes nothing else (the full view reproduces the model).
// Tolerance: 1e-5 relative on logits / losses (fp32, different summation orders).
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/llama.h"
#include "models/lora.h"
#include "ops/ops.h"
#include "runtime/rng.h"
#include "test_util.h"
#include "train/llama_train.h"

#define GQA "tests/fixtures/tiny-llama3-gqa"
static const Device CPU = {DEV_CPU, 0};

// rows [0, r) of src (a [R, C] tensor) or, with cols, columns [0, c)
static Tensor copy_prefix(const Tensor *src, int64_t rows, int64_t cols) {
    Tensor t;
    cr_assert_eq(tensor_alloc_2d(&t, DT_F32, CPU, rows, cols), ST_OK);
    for (int64_t r = 0; r < rows; r++) memcpy(tensor_row_f32(&t, r), tensor_row_f32(src, r), (size_t)cols * 4);
    return t;
}

Test(view, prefix_view_equals_pruned_copy) {
    LlamaModel m;
    cr_assert_eq(llama_load(&m, GQA), ST_OK, "%s", status_message());
    const LlamaConfig *c = &m.cfg;
    int kv = 1, ffn = c->ffn_dim / 2 + 3, group = c->n_heads / c->n_kv_heads, hd = c->head_dim;
    // the pruned copy: same embeddings and norms, prefix rows/columns of every projection
    LlamaModel p = m;
    p.cfg.n_kv_heads = kv;
    p.cfg.n_heads = kv * group;
    p.cfg.ffn_dim = ffn;
    p.layers = calloc((size_t)c->n_layers, sizeof *p.layers);
    LlamaWidth *w = malloc((size_t)c->n_layers * sizeof *w);
    for (int l = 0; l < c->n_layers; l++) {
        const LlamaLayer *s = &m.layers[l];
        LlamaLayer *d = &p.layers[l];
        d->attn_norm = s->attn_norm, d->mlp_norm = s->mlp_norm;
        d->wq = copy_prefix(&s->wq, (int64_t)kv * group * hd, c->dim);
        d->wk = copy_prefix(&s->wk, (int64_t)kv * hd, c->dim);
        d->wv = copy_prefix(&s->wv, (int64_t)kv * hd, c->dim);
        d->wo = copy_prefix(&s->wo, c->dim, (int64_t)kv * group * hd);
        d->w_gate = copy_prefix(&s->w_gate, ffn, c->dim);
        d->w_up = copy_prefix(&s->w_up, ffn, c->dim);
        d->w_down = copy_prefix(&s->w_down, c->dim, ffn);
        w[l] = (LlamaWidth){kv, ffn};
    }
    int32_t ids[2 * 9];
    Rng rng;
    rng_seed(&rng, 5);
    for (int i = 0; i < 18; i++) ids[i] = (int32_t)rng_below(&rng, (uint64_t)c->vocab_size);
    Tensor a, b, full;
    LlamaView v = {.widths = w};
    tu_logits(&m, &v, ids, 2, 9, &a);
    tu_logits(&p, NULL, ids, 2, 9, &b);
    tu_logits(&m, NULL, ids, 2, 9, &full);
    float scale = tu_max_abs(b.data, (size_t)tensor_numel(&b));
    float d = tu_max_abs_diff(a.data, b.data, (size_t)tensor_numel(&a));
    cr_expect_leq(d, 1e-5f * scale, "prefix view vs pruned copy: %g (scale %g)", d, scale);
    float df = tu_max_abs_diff(a.data, full.data, (size_t)tensor_numel(&a));
    cr_expect_gt(df, 1e-3f * scale, "the view must differ from the full model (%g)", df);
    for (int l = 0; l < c->n_layers; l++) {
        LlamaLayer *d2 = &p.layers[l];
        Tensor *ts[] = {&d2->wq, &d2->wk, &d2->wv, &d2->wo, &d2->w_gate, &d2->w_up, &d2->w_down};
        for (size_t i = 0; i < 7; i++) tensor_free(ts[i]);
    }
    free(p.layers);
    free(w);
    tensor_free(&a), tensor_free(&b), tensor_free(&full);
    llama_free(&m);
}

// Token losses of a view with adapters, by the inference and the training forward.
Test(view, lora_view_matches_training_forward) {
    LlamaModel m;
    cr_assert_eq(llama_load(&m, GQA), ST_OK, "%s", status_message());
    const LlamaConfig *c = &m.cfg;
    LlamaWidth w[8];
    cr_assert_leq(c->n_layers, 8);
    for (int l = 0; l < c->n_layers; l++) w[l] = (LlamaWidth){l % 2 ? 1 : c->n_kv_heads, c->ffn_dim - 17 * (l + 1)};
    LoraSet set;
    LoraConfig lc = {.rank = 3, .alpha = 6, .dropout = 0, .targets = (1u << LORA_N_TARGETS) - 1};
    cr_assert_eq(lora_init(&set, c, w, &lc, 9), ST_OK);
    Rng rng;
    rng_seed(&rng, 11);
    for (int l = 0; l < c->n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            LoraAdapter *a = lora_adapter(&set, l, t);
            for (int64_t i = 0; i < tensor_numel(&a->B); i++) ((float *)a->B.data)[i] = 0.05f * rng_normal(&rng);
        }
    enum { NS = 3, T = 11 };
    int32_t ids[NS * T], targets[NS * T], cu[NS + 1];
    for (int i = 0; i < NS * T; i++) ids[i] = (int32_t)rng_below(&rng, (uint64_t)c->vocab_size);
    for (int s = 0; s <= NS; s++) cu[s] = s * T;
    for (int i = 0; i < NS * T; i++) targets[i] = i % T == T - 1 ? -1 : ids[i + 1];
    LlamaView v = {.widths = w, .lora = &set};
    Tensor logits;
    tu_logits(&m, &v, ids, NS, T, &logits);
    double ce = 0;
    for (int i = 0; i < NS * T; i++) {
        if (targets[i] < 0) continue;
        const float *row = tensor_row_f32(&logits, i);
        double mx = row[0], sum = 0;
        for (int j = 1; j < c->vocab_size; j++) mx = fmax(mx, row[j]);
        for (int j = 0; j < c->vocab_size; j++) sum += exp(row[j] - mx);
        ce += mx + log(sum) - row[targets[i]];
    }
    LlamaTrain t;
    cr_assert_eq(llama_train_init(&t, &m, w, &set, NULL, NS * T), ST_OK, "%s", status_message());
    TrainBatch b = {.ids = ids, .targets = targets, .cu = cu, .n_seq = NS, .n_tokens = NS * T};
    double loss;
    cr_assert_eq(llama_train_eval(&t, &b, &loss, NULL), ST_OK);
    cr_expect(fabs(loss - ce) <= 1e-5 * fabs(ce), "training forward %.7f vs inference forward %.7f", loss, ce);
    // a set shaped for other widths is refused
    LlamaSession s;
    cr_assert_eq(llama_session_init(&s, &m, 1, 4, CPU), ST_OK);
    LlamaView wrong = {.widths = NULL, .lora = &set};
    cr_expect_eq(llama_session_set_view(&s, &m, &wrong), ST_USAGE);
    cr_expect(strstr(status_message(), "adapter is [") != NULL, "%s", status_message());
    llama_session_free(&s);
    llama_train_free(&t);
    tensor_free(&logits);
    lora_free(&set);
    llama_free(&m);
}

// Switching levels between requests allocates nothing: once a session has run
// its largest view, going back and forth keeps every scratch buffer in place.
Test(view, switching_views_allocates_nothing) {
    LlamaModel m;
    cr_assert_eq(llama_load(&m, "tests/fixtures/tiny-llama3-gqa"), ST_OK, "%s", status_message());
    const LlamaConfig *c = &m.cfg;
    LlamaWidth w[8];
    for (int l = 0; l < c->n_layers; l++) w[l] = (LlamaWidth){1, c->ffn_dim / 2};
    LoraSet set;
    LoraConfig lc = {.rank = 4, .alpha = 8, .targets = (1u << LORA_N_TARGETS) - 1};
    cr_assert_eq(lora_init(&set, c, w, &lc, 1), ST_OK);
    LlamaView small = {.widths = w, .lora = &set}, bare = {.widths = w};
    const LlamaView *views[] = {&small, NULL, &bare, &small, NULL};
    LlamaSession s;
    cr_assert_eq(llama_session_init(&s, &m, 1, 8, (Device){DEV_CPU, 0}), ST_OK);
    Tensor logits;
    cr_assert_eq(tensor_alloc_2d(&logits, DT_F32, (Device){DEV_CPU, 0}, 1, c->vocab_size), ST_OK);
    int32_t ids[6] = {3, 1, 4, 1, 5, 9};
    void *x = NULL, *u = NULL, *k = NULL;
    for (size_t i = 0; i < sizeof views / sizeof *views; i++) {
        llama_session_reset(&s);
        cr_assert_eq(llama_session_set_view(&s, &m, views[i]), ST_OK, "%s", status_message());
        if (i > 0) cr_expect_geq(s.scratch_tokens, 6, "switch %zu schedules a new scratch", i);
        cr_assert_eq(llama_forward(&m, &s, ids, NULL, 6, LOGITS_LAST, &logits), ST_OK);
        if (i == 0) x = s.s.x.data, u = s.s.lora_u.data, k = s.k[0].data;
        cr_expect(s.s.x.data == x && s.s.lora_u.data == u && s.k[0].data == k, "switch %zu reallocated", i);
    }
    tensor_free(&logits);
    llama_session_free(&s);
    lora_free(&set);
    llama_free(&m);
}
