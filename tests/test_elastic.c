// Elasticization against torch (tests/reference/make_elastic_goldens.py):
// layer-skip losses and first-order Taylor importance per KV group / head and
// FFN channel on tiny MHA and GQA models; then the properties the method
// rests on: reordering keeps the model's function, levels are nested, the
// level table follows the artifact's rule, and the artifact file round-trips.
//
// Tolerances: losses 1e-5 relative; importance 1e-4 relative to the layer's
// largest score (fp32 gradients summed in a different order than torch).
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elastic/artifact.h"
#include "io/safetensors.h"
#include "models/llama.h"
#include "runtime/rng.h"
#include "test_util.h"

typedef struct {
    LlamaModel m;
    SafetensorsFile g;
    const int32_t *ids;
    int n, seq;
} Golden;

static void golden_open(Golden *gd, const char *model) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s", model);
    cr_assert_eq(llama_load(&gd->m, path), ST_OK, "%s", status_message());
    snprintf(path, sizeof path, "tests/fixtures/elastic/%s_elastic.safetensors", model);
    tu_open_safetensors(&gd->g, path);
    const SafeTensor *ids = tu_tensor(&gd->g, "calib_ids", DT_I32);
    gd->ids = (const int32_t *)ids->data;
    gd->n = (int)ids->shape[0], gd->seq = (int)ids->shape[1];
}

static void golden_close(Golden *gd) {
    safetensors_close(&gd->g);
    llama_free(&gd->m);
}

static void check_skip_losses(const char *model) {
    Golden gd;
    golden_open(&gd, model);
    int L = gd.m.cfg.n_layers;
    double base, skip[16];
    int order[16];
    uint8_t anchor[16];
    cr_assert_leq(L, 16);
    cr_assert_eq(anchors_select(&gd.m, gd.ids, gd.n, gd.seq, 1, &base, skip, order, anchor), ST_OK, "%s",
                 status_message());
    float ref = ((const float *)tu_tensor(&gd.g, "loss", DT_F32)->data)[0];
    cr_expect(fabs(base - ref) <= 1e-5 * ref, "loss %.7f vs torch %.7f", base, ref);
    const float *rs = (const float *)tu_tensor(&gd.g, "skip_loss", DT_F32)->data;
    const int32_t *ro = (const int32_t *)tu_tensor(&gd.g, "skip_order", DT_I32)->data;
    for (int l = 0; l < L; l++) {
        cr_expect(fabs(skip[l] - rs[l]) <= 1e-5 * rs[l], "layer %d skipped: %.7f vs torch %.7f", l, skip[l], rs[l]);
        cr_expect_eq(order[l], ro[l], "ascending order, position %d", l);
    }
    cr_expect(anchor[ro[L - 1]] && !anchor[ro[0]], "the anchor is the layer whose skip hurts most");
    golden_close(&gd);
}

Test(elastic, skip_losses_mha) { check_skip_losses("tiny-llama-mha"); }
Test(elastic, skip_losses_gqa) { check_skip_losses("tiny-elastic-gqa"); }

static void check_scores(const char *what, int l, const double *ours, const float *ref, int n) {
    double scale = 0;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (int i = 0; i < n; i++)
        cr_expect(fabs(ours[i] - ref[i]) <= 1e-4 * scale, "%s layer %d unit %d: %.8g vs torch %.8g", what, l, i,
                  ours[i], ref[i]);
}

static void check_importance(const char *model) {
    Golden gd;
    golden_open(&gd, model);
    const LlamaConfig *c = &gd.m.cfg;
    uint8_t anchor[16] = {0};
    anchor[1] = 1; // an anchor layer is not scored
    Importance imp;
    cr_assert_eq(importance_compute(&gd.m, gd.ids, gd.n, gd.seq, anchor, &imp), ST_OK, "%s", status_message());
    char name[64];
    for (int l = 0; l < c->n_layers; l++) {
        const double *ia = imp.attn + (size_t)l * c->n_kv_heads, *im = imp.mlp + (size_t)l * c->ffn_dim;
        if (anchor[l]) {
            for (int i = 0; i < c->n_kv_heads; i++) cr_expect_eq(ia[i], 0.0, "anchor layer %d scored", l);
            continue;
        }
        snprintf(name, sizeof name, "imp_attn.%d", l);
        check_scores("attention", l, ia, (const float *)tu_tensor(&gd.g, name, DT_F32)->data, c->n_kv_heads);
        snprintf(name, sizeof name, "imp_ffn.%d", l);
        check_scores("ffn", l, im, (const float *)tu_tensor(&gd.g, name, DT_F32)->data, c->ffn_dim);
        // the order of units follows torch's ranking
        Permutation p;
        cr_assert_eq(permutation_from_importance(&imp, anchor, &p), ST_OK);
        snprintf(name, sizeof name, "rank_attn.%d", l);
        const int32_t *rank = (const int32_t *)tu_tensor(&gd.g, name, DT_I32)->data; // ascending
        for (int i = 0; i < c->n_kv_heads; i++)
            cr_expect_eq(p.attn[(size_t)l * c->n_kv_heads + i], rank[c->n_kv_heads - 1 - i],
                         "layer %d: unit at position %d", l, i);
        permutation_free(&p);
    }
    importance_free(&imp);
    golden_close(&gd);
}

Test(elastic, importance_mha) { check_importance("tiny-llama-mha"); }
Test(elastic, importance_gqa) { check_importance("tiny-elastic-gqa"); }

// The reordered full model computes the original's logits (<= 1e-5 relative),
// for the importance order and for a random one; the weights did move.
Test(elastic, permutation_keeps_the_function) {
    for (int kind = 0; kind < 2; kind++) {
        LlamaModel m, ref;
        cr_assert_eq(llama_load(&m, "tests/fixtures/tiny-elastic-gqa"), ST_OK);
        cr_assert_eq(llama_load(&ref, "tests/fixtures/tiny-elastic-gqa"), ST_OK);
        const LlamaConfig *c = &m.cfg;
        uint8_t anchor[6] = {0, 0, 0, 1, 0, 0};
        Permutation p;
        if (kind == 0) {
            Golden gd;
            golden_open(&gd, "tiny-elastic-gqa");
            Importance imp;
            cr_assert_eq(importance_compute(&gd.m, gd.ids, gd.n, gd.seq, anchor, &imp), ST_OK);
            cr_assert_eq(permutation_from_importance(&imp, anchor, &p), ST_OK);
            importance_free(&imp);
            golden_close(&gd);
        } else {
            cr_assert_eq(permutation_random(c->n_layers, c->n_kv_heads, c->ffn_dim, anchor, 7, &p), ST_OK);
        }
        cr_assert_eq(permutation_apply(&m, &p), ST_OK);
        float moved = tu_max_abs_diff(m.layers[0].wq.data, ref.layers[0].wq.data, (size_t)tensor_numel(&m.layers[0].wq));
        cr_expect_gt(moved, 0.0f, "layer 0's q rows moved");
        float same = tu_max_abs_diff(m.layers[3].w_up.data, ref.layers[3].w_up.data,
                                     (size_t)tensor_numel(&m.layers[3].w_up));
        cr_expect_eq(same, 0.0f, "the anchor layer is untouched");
        int32_t ids[2 * 10];
        Rng rng;
        rng_seed(&rng, 3);
        for (int i = 0; i < 20; i++) ids[i] = (int32_t)rng_below(&rng, 256);
        Tensor a, b;
        tu_logits(&m, NULL, ids, 2, 10, &a);
        tu_logits(&ref, NULL, ids, 2, 10, &b);
        float scale = tu_max_abs(b.data, (size_t)tensor_numel(&b));
        float d = tu_max_abs_diff(a.data, b.data, (size_t)tensor_numel(&a));
        cr_expect_leq(d, 1e-5f * scale, "reordered vs original logits: %g (scale %g)", d, scale);
        tensor_free(&a), tensor_free(&b);
        permutation_free(&p);
        llama_free(&m), llama_free(&ref);
    }
}

// The artifact's rule gives the level tables of its LLMPruner scripts.
Test(elastic, level_table_matches_the_artifact) {
    LevelSpec lv[16];
    int n = levels_default(lv, 16);
    cr_assert_eq(n, 9);
    struct { int H, KV, hd, F; int heads[9], ffn[9]; } cases[] = {
        {32, 32, 128, 11008, {4, 4, 8, 12, 16, 20, 24, 28, 32}, {1100, 1376, 2752, 4128, 5504, 6880, 8256, 9632, 11008}},
        {32, 32, 100, 8640, {4, 4, 8, 12, 16, 20, 24, 28, 32}, {863, 1080, 2160, 3240, 4320, 5400, 6480, 7560, 8640}},
        {32, 8, 128, 14336, {4, 4, 8, 12, 16, 20, 24, 28, 32}, {1433, 1792, 3584, 5376, 7168, 8960, 10752, 12544, 14336}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        LlamaConfig c = {.n_layers = 2, .n_heads = cases[k].H, .n_kv_heads = cases[k].KV, .head_dim = cases[k].hd,
                         .ffn_dim = cases[k].F};
        uint8_t anchor[2] = {0, 1};
        LlamaWidth w[2], prev = {0, 0};
        for (int i = 0; i < n; i++) {
            level_widths(&c, anchor, lv[i].ratio, w);
            int heads = w[0].n_kv * (c.n_heads / c.n_kv_heads);
            cr_expect_eq(heads, cases[k].heads[i], "case %zu level %g: %d query heads", k, lv[i].level, heads);
            cr_expect_eq(w[0].ffn, cases[k].ffn[i], "case %zu level %g: %d FFN channels", k, lv[i].level, w[0].ffn);
            cr_expect(w[1].n_kv == c.n_kv_heads && w[1].ffn == c.ffn_dim, "anchors stay whole");
            cr_expect(w[0].n_kv >= prev.n_kv && w[0].ffn >= prev.ffn, "levels are nested");
            prev = w[0];
        }
    }
    int m;
    cr_assert_eq(levels_parse("0.2,0.55,1", lv, 16, &m), ST_OK);
    cr_expect(m == 3 && lv[0].ratio == 0.9 && fabs(lv[1].ratio - 0.5625) < 1e-12 && lv[2].ratio == 0.0);
    cr_expect_eq(levels_parse("0.2,x", lv, 16, &m), ST_USAGE);
    cr_expect_eq(levels_parse("1.5", lv, 16, &m), ST_USAGE);
}

// Nestedness in units: level r's kept units (a prefix of the importance order)
// are a subset of level r' > r's, and they are the most important ones.
Test(elastic, levels_keep_the_most_important_units) {
    Golden gd;
    golden_open(&gd, "tiny-elastic-gqa");
    const LlamaConfig *c = &gd.m.cfg;
    uint8_t anchor[6] = {0};
    Importance imp;
    Permutation p;
    cr_assert_eq(importance_compute(&gd.m, gd.ids, gd.n, gd.seq, anchor, &imp), ST_OK);
    cr_assert_eq(permutation_from_importance(&imp, anchor, &p), ST_OK);
    LevelSpec lv[16];
    int n = levels_default(lv, 16);
    LlamaWidth w[6];
    for (int i = 0; i < n; i++) {
        level_widths(c, anchor, lv[i].ratio, w);
        for (int l = 0; l < c->n_layers; l++) {
            const double *sc = imp.mlp + (size_t)l * c->ffn_dim;
            const int32_t *ord = p.mlp + (size_t)l * c->ffn_dim;
            double min_kept = INFINITY, max_dropped = -INFINITY;
            for (int j = 0; j < c->ffn_dim; j++) {
                if (j < w[l].ffn) min_kept = fmin(min_kept, sc[ord[j]]);
                else max_dropped = fmax(max_dropped, sc[ord[j]]);
            }
            cr_expect(min_kept >= max_dropped, "level %g layer %d: a dropped channel beats a kept one", lv[i].level, l);
        }
    }
    importance_free(&imp);
    permutation_free(&p);
    golden_close(&gd);
}

Test(elastic, artifact_round_trip_and_errors) {
    Golden gd;
    golden_open(&gd, "tiny-elastic-gqa");
    const LlamaConfig *c = &gd.m.cfg;
    Artifact a;
    memset(&a, 0, sizeof a);
    snprintf(a.model, sizeof a.model, "tiny");
    snprintf(a.calib, sizeof a.calib, "calib.txt");
    snprintf(a.order, sizeof a.order, "importance");
    a.samples = gd.n, a.seq = gd.seq, a.seed = 5, a.base_loss = 1.5;
    a.anchor = calloc(6, 1);
    a.anchor[2] = a.anchor[4] = 1;
    a.skip_loss = calloc(6, sizeof(double));
    for (int l = 0; l < 6; l++) a.skip_loss[l] = 5 + l;
    cr_assert_eq(importance_compute(&gd.m, gd.ids, gd.n, gd.seq, a.anchor, &a.imp), ST_OK);
    cr_assert_eq(permutation_from_importance(&a.imp, a.anchor, &a.perm), ST_OK);
    a.n_levels = levels_default(a.levels, ARTIFACT_MAX_LEVELS);
    char dir[32], path[64];
    tu_make_temp_dir(dir, sizeof dir, "art");
    snprintf(path, sizeof path, "%s/a.h5", dir);
    cr_assert_eq(artifact_write(path, c, &a), ST_OK, "%s", status_message());
    Artifact b;
    cr_assert_eq(artifact_read(path, c, &b), ST_OK, "%s", status_message());
    cr_expect_eq(b.n_levels, 9);
    cr_expect(b.levels[0].level == 0.2 && b.levels[8].level == 1.0 && b.levels[3].ratio == 0.625);
    cr_expect(memcmp(a.anchor, b.anchor, 6) == 0);
    cr_expect(memcmp(a.perm.attn, b.perm.attn, 6 * 4 * sizeof(int32_t)) == 0);
    cr_expect(memcmp(a.perm.mlp, b.perm.mlp, 6 * 96 * sizeof(int32_t)) == 0);
    cr_expect(b.samples == gd.n && b.seq == gd.seq && b.seed == 5 && b.base_loss == 1.5);
    cr_expect(!strcmp(b.order, "importance") && !strcmp(b.calib, "calib.txt"));
    artifact_free(&b);
    // a level view: anchors whole, others at the level's widths
    LevelView v;
    cr_assert_eq(level_view_load(path, &gd.m, "0.5", false, &v), ST_OK, "%s", status_message());
    cr_expect(v.widths[2].n_kv == 4 && v.widths[2].ffn == 96 && v.widths[0].n_kv == 2 && v.widths[0].ffn == 36);
    cr_expect(!v.has_lora && v.view.lora == NULL);
    level_view_free(&v);
    cr_expect_eq(level_view_load(path, &gd.m, "0.45", false, &v), ST_FORMAT);
    cr_expect(strstr(status_message(), "no level 0.45") != NULL, "%s", status_message());
    // another model's artifact is refused
    LlamaModel other;
    cr_assert_eq(llama_load(&other, "tests/fixtures/tiny-llama-mha"), ST_OK);
    cr_expect_eq(artifact_read(path, &other.cfg, &b), ST_FORMAT);
    cr_expect(strstr(status_message(), "made for a model with") != NULL, "%s", status_message());
    llama_free(&other);
    // not an artifact
    char txt[64];
    snprintf(txt, sizeof txt, "%s/x.h5", dir);
    FILE *fp = fopen(txt, "w");
    fputs("hello", fp);
    fclose(fp);
    cr_expect_eq(artifact_read(txt, c, &b), ST_FORMAT);
    cr_expect(strstr(status_message(), "x.h5") != NULL, "%s", status_message());
    artifact_free(&a);
    tu_remove_dir(dir);
    golden_close(&gd);
}

// --export: the reordered model written as a Hugging Face directory loads back
// (through the HF loader) with the original model's logits. The transformers
// side of the same check is tests/reference/check_export.py.
Test(elastic, export_reloads_with_the_same_logits) {
    LlamaModel m, ref, back;
    cr_assert_eq(llama_load(&m, "tests/fixtures/tiny-elastic-gqa"), ST_OK);
    cr_assert_eq(llama_load(&ref, "tests/fixtures/tiny-elastic-gqa"), ST_OK);
    uint8_t anchor[6] = {1, 0, 0, 0, 0, 1};
    Permutation p;
    cr_assert_eq(permutation_random(6, m.cfg.n_kv_heads, m.cfg.ffn_dim, anchor, 11, &p), ST_OK);
    cr_assert_eq(permutation_apply(&m, &p), ST_OK);
    char dir[64];
    tu_make_temp_dir(dir, sizeof dir, "export");
    cr_assert_eq(llama_export_hf(&m, dir), ST_OK, "%s", status_message());
    cr_assert_eq(llama_load(&back, dir), ST_OK, "%s", status_message());
    cr_expect(back.cfg.n_layers == 6 && back.cfg.n_kv_heads == 4 && back.cfg.head_dim == 8 && !back.cfg.tie_embeddings);
    float moved = tu_max_abs_diff(back.layers[2].w_down.data, ref.layers[2].w_down.data,
                                  (size_t)tensor_numel(&ref.layers[2].w_down));
    cr_expect_gt(moved, 0.0f, "the exported weights are the reordered ones");
    int32_t ids[12];
    for (int i = 0; i < 12; i++) ids[i] = (int32_t)(7 + 19 * i) % 256;
    Tensor a, b;
    tu_logits(&back, NULL, ids, 1, 12, &a);
    tu_logits(&ref, NULL, ids, 1, 12, &b);
    float scale = tu_max_abs(b.data, (size_t)tensor_numel(&b));
    float d = tu_max_abs_diff(a.data, b.data, (size_t)tensor_numel(&a));
    cr_expect_leq(d, 1e-5f * scale, "exported vs original logits: %g", d);
    tensor_free(&a), tensor_free(&b);
    permutation_free(&p);
    llama_free(&back), llama_free(&m), llama_free(&ref);
    tu_remove_dir(dir);
}
