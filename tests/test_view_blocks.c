// Views that drop layers or sub-blocks and that substitute a layer's weights
// (the layer baselines: LayerReduction, ShortGPT, AttnDrop, LaCo):
//  - a view that skips sub-blocks computes what a physically pruned copy of
//    the model computes (layers removed; a skipped attention or FFN block made
//    to contribute nothing by zeroing its output projection);
//  - a view with substitute weights computes what a copy whose layer holds
//    those weights computes;
//  - the inference (KV cache) and the training forward agree under every kind
//    of view, and the backward of a skipped block passes the gradient through;
//  - Hugging Face transformers with the same sub-blocks hooked out gives the
//    same logits (tests/reference/make_baseline_goldens.py);
//  - bad views are refused with a message.
// Tolerance: 1e-5 relative (fp32, different summation orders), as test_view.c.
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "models/llama.h"
#include "models/lora.h"
#include "runtime/rng.h"
#include "test_util.h"
#include "train/llama_train.h"

#define GQA "tests/fixtures/tiny-llama3-gqa"
#define ELASTIC "tests/fixtures/tiny-elastic-gqa"
static const Device CPU = {DEV_CPU, 0};

static Tensor copy_of(const Tensor *src) {
    Tensor t;
    cr_assert_eq(tensor_alloc(&t, DT_F32, CPU, src->ndim, src->shape), ST_OK);
    memcpy(t.data, src->data, (size_t)tensor_numel(src) * 4);
    return t;
}

static LlamaLayer layer_copy(const LlamaLayer *s) {
    LlamaLayer d;
    d.attn_norm = copy_of(&s->attn_norm), d.mlp_norm = copy_of(&s->mlp_norm);
    d.wq = copy_of(&s->wq), d.wk = copy_of(&s->wk), d.wv = copy_of(&s->wv), d.wo = copy_of(&s->wo);
    d.w_gate = copy_of(&s->w_gate), d.w_up = copy_of(&s->w_up), d.w_down = copy_of(&s->w_down);
    return d;
}

static void layer_free(LlamaLayer *d) {
    Tensor *ts[] = {&d->attn_norm, &d->mlp_norm, &d->wq, &d->wk, &d->wv, &d->wo, &d->w_gate, &d->w_up, &d->w_down};
    for (int i = 0; i < 9; i++) tensor_free(ts[i]);
}

static void random_ids(int32_t *ids, int n, int vocab, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) ids[i] = 1 + (int32_t)rng_below(&rng, (uint64_t)(vocab - 1));
}

static void expect_close(const Tensor *a, const Tensor *b, const char *what) {
    float scale = tu_max_abs(b->data, (size_t)tensor_numel(b));
    float d = tu_max_abs_diff(a->data, b->data, (size_t)tensor_numel(a));
    cr_expect_leq(d, 1e-5f * scale, "%s: max |diff| %g (scale %g)", what, d, scale);
}

// Layers 1 and 3 dropped, layer 0 without attention, layer 2 without FFN.
Test(view_blocks, skipped_blocks_equal_pruned_copy) {
    LlamaModel m;
    cr_assert_eq(llama_load(&m, ELASTIC), ST_OK, "%s", status_message());
    const LlamaConfig *c = &m.cfg;
    cr_assert_eq(c->n_layers, 6);
    uint8_t blocks[6] = {LAYER_FFN, 0, LAYER_ATTN, 0, LAYER_ALL, LAYER_ALL};
    // the pruned copy: 4 layers (0, 2, 4, 5); zero o_proj / down_proj where a block is skipped
    LlamaModel p = m;
    int keep[4] = {0, 2, 4, 5};
    p.cfg.n_layers = 4;
    p.layers = calloc(4, sizeof *p.layers);
    for (int i = 0; i < 4; i++) {
        p.layers[i] = layer_copy(&m.layers[keep[i]]);
        if (!(blocks[keep[i]] & LAYER_ATTN)) tensor_zero(&p.layers[i].wo);
        if (!(blocks[keep[i]] & LAYER_FFN)) tensor_zero(&p.layers[i].w_down);
    }
    int32_t ids[2 * 12];
    random_ids(ids, 24, c->vocab_size, 3);
    LlamaView v = {.blocks = blocks};
    Tensor a, b, full;
    tu_logits(&m, &v, ids, 2, 12, &a);
    tu_logits(&p, NULL, ids, 2, 12, &b);
    tu_logits(&m, NULL, ids, 2, 12, &full);
    expect_close(&a, &b, "block view vs pruned copy");
    float df = tu_max_abs_diff(a.data, full.data, (size_t)tensor_numel(&a));
    cr_expect_gt(df, 1e-3f, "the view must differ from the full model (%g)", df);
    for (int i = 0; i < 4; i++) layer_free(&p.layers[i]);
    free(p.layers);
    tensor_free(&a), tensor_free(&b), tensor_free(&full);
    llama_free(&m);
}

// Layer 2 runs with layer 4's weights (as a merged layer would), layer 3 is dropped.
Test(view_blocks, substitute_weights_equal_copy) {
    LlamaModel m;
    cr_assert_eq(llama_load(&m, ELASTIC), ST_OK, "%s", status_message());
    const LlamaConfig *c = &m.cfg;
    LlamaLayer merged = layer_copy(&m.layers[4]);
    for (int64_t i = 0; i < tensor_numel(&merged.wq); i++) ((float *)merged.wq.data)[i] *= 0.5f;
    const LlamaLayer *weights[6] = {NULL, NULL, &merged, NULL, NULL, NULL};
    uint8_t blocks[6] = {LAYER_ALL, LAYER_ALL, LAYER_ALL, 0, LAYER_ALL, LAYER_ALL};
    LlamaModel p = m;
    int keep[5] = {0, 1, 2, 4, 5};
    p.cfg.n_layers = 5;
    p.layers = calloc(5, sizeof *p.layers);
    for (int i = 0; i < 5; i++) p.layers[i] = layer_copy(i == 2 ? &merged : &m.layers[keep[i]]);
    int32_t ids[3 * 7];
    random_ids(ids, 21, c->vocab_size, 4);
    LlamaView v = {.blocks = blocks, .weights = weights};
    Tensor a, b;
    tu_logits(&m, &v, ids, 3, 7, &a);
    tu_logits(&p, NULL, ids, 3, 7, &b);
    expect_close(&a, &b, "substitute weights vs copy");
    for (int i = 0; i < 5; i++) layer_free(&p.layers[i]);
    free(p.layers);
    layer_free(&merged);
    tensor_free(&a), tensor_free(&b);
    llama_free(&m);
}

// Sum of next-token cross-entropies over rows with a target, from logits.
static double ce_from_logits(const Tensor *logits, const int32_t *targets, int n, int V) {
    double ce = 0;
    for (int i = 0; i < n; i++) {
        if (targets[i] < 0) continue;
        const float *row = tensor_row_f32(logits, i);
        double mx = row[0], sum = 0;
        for (int j = 1; j < V; j++) mx = fmax(mx, row[j]);
        for (int j = 0; j < V; j++) sum += exp(row[j] - mx);
        ce += mx + log(sum) - row[targets[i]];
    }
    return ce;
}

// Widths, adapters, dropped blocks and substitute weights at once, through
// both forwards; then the training backward against finite differences of the
// loss in one adapter parameter of a layer whose attention is skipped and one
// whose FFN is skipped.
Test(view_blocks, forwards_agree_under_every_kind_of_view) {
    LlamaModel m;
    cr_assert_eq(llama_load(&m, GQA), ST_OK, "%s", status_message());
    const LlamaConfig *c = &m.cfg;
    int L = c->n_layers;
    cr_assert_geq(L, 2);
    cr_assert_leq(L, 8);
    LlamaWidth w[8];
    uint8_t blocks[8];
    const LlamaLayer *weights[8] = {0};
    for (int l = 0; l < L; l++) {
        w[l] = (LlamaWidth){l % 2 ? 1 : c->n_kv_heads, c->ffn_dim - 5 * (l + 1)};
        blocks[l] = (uint8_t)(l == 0 ? LAYER_FFN : l == 1 ? LAYER_ATTN : LAYER_ALL);
    }
    weights[L - 1] = &m.layers[0]; // the last layer runs with the first one's weights
    LoraSet set;
    LoraConfig lc = {.rank = 2, .alpha = 4, .dropout = 0, .targets = (1u << LORA_N_TARGETS) - 1};
    cr_assert_eq(lora_init(&set, c, w, &lc, 9), ST_OK);
    Rng rng;
    rng_seed(&rng, 21);
    for (int l = 0; l < L; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            LoraAdapter *a = lora_adapter(&set, l, t);
            for (int64_t i = 0; i < tensor_numel(&a->B); i++) ((float *)a->B.data)[i] = 0.05f * rng_normal(&rng);
        }
    enum { NS = 2, T = 9 };
    int32_t ids[NS * T], targets[NS * T], cu[NS + 1];
    random_ids(ids, NS * T, c->vocab_size, 8);
    for (int s = 0; s <= NS; s++) cu[s] = s * T;
    for (int i = 0; i < NS * T; i++) targets[i] = i % T == T - 1 ? -1 : ids[i + 1];
    LlamaView v = {.widths = w, .lora = &set, .blocks = blocks, .weights = weights};
    Tensor logits;
    tu_logits(&m, &v, ids, NS, T, &logits);
    double ce = ce_from_logits(&logits, targets, NS * T, c->vocab_size);
    LlamaTrain t;
    TrainOptions o = {.blocks = blocks, .weights = weights};
    cr_assert_eq(llama_train_init(&t, &m, w, &set, &o, NS * T), ST_OK, "%s", status_message());
    TrainBatch b = {.ids = ids, .targets = targets, .cu = cu, .n_seq = NS, .n_tokens = NS * T};
    double loss;
    cr_assert_eq(llama_train_eval(&t, &b, &loss, NULL), ST_OK);
    cr_expect(fabs(loss - ce) <= 1e-5 * fabs(ce), "training forward %.7f vs inference forward %.7f", loss, ce);
    // gradients: layer 0's up_proj adapter (its FFN runs, attention skipped), layer 1's q adapter (attention
    // runs, FFN skipped); the adapters of skipped blocks get no gradient
    struct { int l; LoraTarget tg; bool live; } probes[] = {
        {0, LORA_UP, true}, {1, LORA_Q, true}, {0, LORA_Q, false}, {1, LORA_DOWN, false}};
    tensor_zero(&set.grads);
    cr_assert_eq(llama_train_step(&t, &b, 1.0f, 0, NULL, NULL), ST_OK);
    for (size_t k = 0; k < sizeof probes / sizeof *probes; k++) {
        LoraAdapter *a = lora_adapter(&set, probes[k].l, probes[k].tg);
        float *p = (float *)a->B.data, *g = (float *)a->gB.data;
        if (!probes[k].live) {
            cr_expect_eq(tu_max_abs(g, (size_t)tensor_numel(&a->gB)), 0.0f, "layer %d %s: a skipped block's adapter",
                         probes[k].l, lora_target_names[probes[k].tg]);
            continue;
        }
        float h = 1e-2f, keep = p[0];
        double lp, lm;
        p[0] = keep + h;
        cr_assert_eq(llama_train_eval(&t, &b, &lp, NULL), ST_OK);
        p[0] = keep - h;
        cr_assert_eq(llama_train_eval(&t, &b, &lm, NULL), ST_OK);
        p[0] = keep;
        double fd = (lp - lm) / (2 * h);
        cr_expect(fabs(fd - g[0]) <= 2e-3 * fmax(1.0, fabs(fd)), "layer %d %s: backward %g vs finite difference %g",
                  probes[k].l, lora_target_names[probes[k].tg], g[0], fd);
    }
    llama_train_free(&t);
    tensor_free(&logits);
    lora_free(&set);
    llama_free(&m);
}

// Hugging Face with attention hooked out of layers 1 and 4 and the MLP out of 2 and 4.
Test(view_blocks, matches_transformers_with_blocks_hooked_out) {
    LlamaModel m;
    cr_assert_eq(llama_load(&m, ELASTIC), ST_OK, "%s", status_message());
    SafetensorsFile e, g;
    cr_assert_eq(safetensors_open(&e, "tests/fixtures/elastic/tiny-elastic-gqa_elastic.safetensors"), ST_OK);
    cr_assert_eq(safetensors_open(&g, "tests/fixtures/elastic/tiny-elastic-gqa_baselines.safetensors"), ST_OK,
                 "%s", status_message());
    const SafeTensor *ids = tu_tensor(&e, "calib_ids", DT_I32), *ref = tu_tensor(&g, "drop_logits", DT_F32);
    uint8_t blocks[6] = {LAYER_ALL, LAYER_FFN, LAYER_ATTN, LAYER_ALL, 0, LAYER_ALL};
    LlamaView v = {.blocks = blocks};
    Tensor out;
    tu_logits(&m, &v, (const int32_t *)ids->data, 4, 16, &out);
    size_t n = (size_t)tensor_numel(&out);
    float scale = tu_max_abs((const float *)ref->data, n), d = tu_max_abs_diff((const float *)ref->data, out.data, n);
    cr_expect_leq(d, 1e-5f * scale, "logits vs transformers: %g (scale %g)", d, scale);
    tensor_free(&out);
    safetensors_close(&e);
    safetensors_close(&g);
    llama_free(&m);
}

Test(view_blocks, bad_views_are_refused) {
    LlamaModel m;
    cr_assert_eq(llama_load(&m, ELASTIC), ST_OK, "%s", status_message());
    LlamaSession s;
    cr_assert_eq(llama_session_init(&s, &m, 1, 4, CPU), ST_OK);
    uint8_t blocks[6] = {LAYER_ALL, 7, LAYER_ALL, LAYER_ALL, LAYER_ALL, LAYER_ALL};
    LlamaView bad_bits = {.blocks = blocks};
    cr_expect_eq(llama_session_set_view(&s, &m, &bad_bits), ST_USAGE);
    cr_expect(strstr(status_message(), "layer 1") != NULL, "%s", status_message());
    LlamaLayer wrong = m.layers[2];
    wrong.w_down = tensor_cols(&m.layers[2].w_down, 0, 10); // a narrower matrix
    const LlamaLayer *weights[6] = {NULL, NULL, NULL, &wrong, NULL, NULL};
    LlamaView bad_weights = {.weights = weights};
    cr_expect_eq(llama_session_set_view(&s, &m, &bad_weights), ST_USAGE);
    cr_expect(strstr(status_message(), "layer 3") != NULL, "%s", status_message());
    LlamaTrain t;
    TrainOptions o = {.weights = weights};
    cr_expect_eq(llama_train_init(&t, &m, NULL, NULL, &o, 8), ST_USAGE);
    llama_session_free(&s);
    llama_free(&m);
}

// Going back and forth between a level, dropped layers and merged weights
// keeps every buffer in place.
Test(view_blocks, switching_block_views_allocates_nothing) {
    LlamaModel m;
    cr_assert_eq(llama_load(&m, ELASTIC), ST_OK, "%s", status_message());
    uint8_t drop[6] = {LAYER_ALL, 0, LAYER_ATTN, LAYER_FFN, 0, LAYER_ALL};
    const LlamaLayer *merged[6] = {NULL, &m.layers[5], NULL, NULL, NULL, NULL};
    LlamaWidth w[6];
    for (int l = 0; l < 6; l++) w[l] = (LlamaWidth){2, 40};
    LlamaView a = {.blocks = drop}, b = {.weights = merged, .blocks = drop}, c = {.widths = w};
    const LlamaView *views[] = {NULL, &a, &b, &c, &a, NULL, &b};
    LlamaSession s;
    cr_assert_eq(llama_session_init(&s, &m, 1, 8, CPU), ST_OK);
    Tensor logits;
    cr_assert_eq(tensor_alloc_2d(&logits, DT_F32, CPU, 1, m.cfg.vocab_size), ST_OK);
    int32_t ids[6] = {3, 1, 4, 1, 5, 9};
    void *x = NULL, *k = NULL;
    for (size_t i = 0; i < sizeof views / sizeof *views; i++) {
        llama_session_reset(&s);
        cr_assert_eq(llama_session_set_view(&s, &m, views[i]), ST_OK, "%s", status_message());
        cr_assert_eq(llama_forward(&m, &s, ids, NULL, 6, LOGITS_LAST, &logits), ST_OK);
        if (i == 0) x = s.s.x.data, k = s.k[0].data;
        cr_expect(s.s.x.data == x && s.k[0].data == k && s.scratch_tokens >= 6, "switch %zu reallocated", i);
    }
    tensor_free(&logits);
    llama_session_free(&s);
    llama_free(&m);
}
