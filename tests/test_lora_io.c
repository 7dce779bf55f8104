// LoRA sets: initialisation and layout (host/train/lora.c), peft adapter
// directories (host/train/peft.c) and HDF5 groups (host/train/lora_store.c),
// with the artifact's level table. Round trips must be bit-exact, in the full
// model and in prefix views, and every bad input must fail with one line naming
// the file and the key or dataset at fault.
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/h5.h"
#include "io/safetensors.h"
#include "models/llama.h"
#include "test_util.h"
#include "models/lora.h"
#include "elastic/artifact.h"
#include "train/lora_store.h"
#include "train/peft.h"

#define MHA "tests/fixtures/tiny-llama-mha"
#define GQA "tests/fixtures/tiny-llama3-gqa"
#define MHA_LORA "tests/fixtures/train/tiny-llama-mha-lora"
#define GQA_LORA "tests/fixtures/train/tiny-llama3-gqa-lora"
#define ALL_TARGETS ((1u << LORA_N_TARGETS) - 1)

#define OK(expr) do { Status st_ = (expr); cr_assert_eq(st_, ST_OK, "%s: %s", #expr, status_message()); } while (0)

static char g_dir[256];

static void setup(void) {
    tu_make_temp_dir(g_dir, sizeof g_dir, "loraio");
}

static void teardown(void) { tu_remove_dir(g_dir); }

TestSuite(lora_io, .init = setup, .fini = teardown);

static const char *in_dir(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", g_dir, name);
    return buf;
}

static LlamaConfig model_config(const char *path) {
    LlamaModel m;
    OK(llama_load(&m, path));
    LlamaConfig c = m.cfg;
    llama_free(&m);
    return c;
}

// Fills every A and B of a set with distinct, awkward values (B is zero after lora_init).
static void fill_params(LoraSet *s, uint32_t salt) {
    float *p = s->params.data;
    for (int64_t i = 0; i < s->n_params; i++) {
        uint32_t h = (uint32_t)i * 2654435761u ^ salt;
        h ^= h >> 15;
        p[i] = ((float)(h % 20001) - 10000.0f) * 1.2345e-5f;
    }
    if (s->n_params > 4) {
        p[0] = -0.0f;
        p[1] = 1e-40f; // subnormal
        p[2] = 3.4e38f;
        p[3] = -1.0f / 3.0f;
    }
}

static bool same_bits(const LoraSet *a, const LoraSet *b) {
    return a->n_params == b->n_params && memcmp(a->params.data, b->params.data, (size_t)a->n_params * 4) == 0;
}

// The expected [out, in] of each target for the tiny MHA model (D 80, 4 heads of 20, F 192) at kv heads and ffn.
static void mha_shape(int kv, int ffn, LoraTarget t, int *out, int *in) {
    int q = kv * 20;
    const int shapes[LORA_N_TARGETS][2] = {{q, 80}, {q, 80}, {q, 80}, {80, q}, {ffn, 80}, {ffn, 80}, {80, ffn}};
    *out = shapes[t][0], *in = shapes[t][1];
}

static void expect_shapes(const LoraSet *s, const LlamaWidth *w, void (*shape)(int, int, LoraTarget, int *, int *),
                          int full_kv, int full_ffn) {
    int64_t total = 0;
    for (int l = 0; l < s->n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            const LoraAdapter *a = lora_adapter(s, l, t);
            if (!(s->cfg.targets & (1u << t))) {
                cr_expect(a->in == 0 && a->out == 0, "layer %d %s is not a target but has a shape", l, lora_target_names[t]);
                continue;
            }
            int out, in;
            shape(w ? w[l].n_kv : full_kv, w ? w[l].ffn : full_ffn, t, &out, &in);
            cr_assert(a->in == in && a->out == out, "layer %d %s: [%d, %d], expected [%d, %d]", l, lora_target_names[t],
                      a->out, a->in, out, in);
            cr_assert(a->A.ndim == 2 && a->A.shape[0] == s->cfg.rank && a->A.shape[1] == in, "layer %d %s: A shape", l,
                      lora_target_names[t]);
            cr_assert(a->B.ndim == 2 && a->B.shape[0] == out && a->B.shape[1] == s->cfg.rank, "layer %d %s: B shape", l,
                      lora_target_names[t]);
            total += (int64_t)s->cfg.rank * (in + out);
        }
    cr_assert_eq(s->n_params, total, "n_params %lld, expected %lld", (long long)s->n_params, (long long)total);
}

// ---- lora_init, targets ---------------------------------------------------------------------

Test(lora_io, parse_targets) {
    unsigned m = 99;
    OK(lora_parse_targets("q,k,v,o,gate,up,down", &m));
    cr_expect_eq(m, ALL_TARGETS);
    OK(lora_parse_targets("all", &m));
    cr_expect_eq(m, ALL_TARGETS);
    OK(lora_parse_targets("q_proj,down_proj", &m));
    cr_expect_eq(m, (1u << LORA_Q) | (1u << LORA_DOWN), "mask %#x", m);
    OK(lora_parse_targets("v,q_proj,v", &m));
    cr_expect_eq(m, (1u << LORA_Q) | (1u << LORA_V), "mask %#x", m);
    OK(lora_parse_targets("gate_proj,up,o_proj,k_proj", &m));
    cr_expect_eq(m, (1u << LORA_GATE) | (1u << LORA_UP) | (1u << LORA_O) | (1u << LORA_K), "mask %#x", m);

    tu_expect_err(lora_parse_targets("qq", &m), ST_USAGE, "'qq'", NULL, NULL);
    tu_expect_err(lora_parse_targets("q,lm_head", &m), ST_USAGE, "'lm_head'", NULL, NULL);
    tu_expect_err(lora_parse_targets("q_pro", &m), ST_USAGE, "'q_pro'", NULL, NULL);
    tu_expect_err(lora_parse_targets("", &m), ST_USAGE, "no LoRA targets", NULL, NULL);

    char buf[64];
    cr_expect_str_eq(lora_targets_string(ALL_TARGETS, buf, sizeof buf), "q,k,v,o,gate,up,down");
    cr_expect_str_eq(lora_targets_string((1u << LORA_Q) | (1u << LORA_DOWN), buf, sizeof buf), "q,down");
    for (unsigned mask = 1; mask <= ALL_TARGETS; mask++) {
        OK(lora_parse_targets(lora_targets_string(mask, buf, sizeof buf), &m));
        cr_assert_eq(m, mask, "%#x -> \"%s\" -> %#x", mask, buf, m);
    }
}

Test(lora_io, target_shapes) {
    LlamaConfig mha = model_config(MHA), gqa = model_config(GQA);
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        int out, in, wo, wi;
        lora_target_shape(&mha, NULL, t, &out, &in);
        mha_shape(4, 192, t, &wo, &wi);
        cr_expect(out == wo && in == wi, "%s: [%d, %d]", lora_target_names[t], out, in);
        LlamaWidth half = {2, 96};
        lora_target_shape(&mha, &half, t, &out, &in);
        mha_shape(2, 96, t, &wo, &wi);
        cr_expect(out == wo && in == wi, "%s half: [%d, %d]", lora_target_names[t], out, in);
    }
    // GQA (D 64, 4 query heads in 2 KV groups of head_dim 16, F 128) with one KV group: 2 query heads.
    LlamaWidth one = {1, 40};
    const int want[LORA_N_TARGETS][2] = {{32, 64}, {16, 64}, {16, 64}, {64, 32}, {40, 64}, {40, 64}, {64, 40}};
    const int full[LORA_N_TARGETS][2] = {{64, 64}, {32, 64}, {32, 64}, {64, 64}, {128, 64}, {128, 64}, {64, 128}};
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        int out, in;
        lora_target_shape(&gqa, &one, t, &out, &in);
        cr_expect(out == want[t][0] && in == want[t][1], "GQA %s one group: [%d, %d]", lora_target_names[t], out, in);
        lora_target_shape(&gqa, NULL, t, &out, &in);
        cr_expect(out == full[t][0] && in == full[t][1], "GQA %s: [%d, %d]", lora_target_names[t], out, in);
    }
}

Test(lora_io, init) {
    LlamaConfig c = model_config(MHA);
    LoraConfig cfg = {.rank = 4, .alpha = 8, .dropout = 0.05f, .targets = ALL_TARGETS};
    LoraSet s, s2, s3;
    OK(lora_init(&s, &c, NULL, &cfg, 1234));
    cr_expect_eq(s.n_layers, 2);
    cr_expect_eq(s.cfg.rank, 4);
    cr_expect_float_eq(lora_scale(&s), 2.0f, 0);
    expect_shapes(&s, NULL, mha_shape, 4, 192);
    cr_assert_eq(s.n_params, 2 * 4 * (4 * (80 + 80) + 2 * (80 + 192) + (192 + 80)));
    cr_assert_eq(tensor_numel(&s.params), s.n_params);
    cr_assert_eq(tensor_numel(&s.grads), s.n_params);
    cr_assert_eq(s.params.dtype, DT_F32);

    // One allocation each, in order: layer by layer, target by target, A then B.
    const float *p = s.params.data, *g = s.grads.data;
    int64_t off = 0;
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            const LoraAdapter *a = lora_adapter(&s, l, t);
            cr_assert_eq((const float *)a->A.data, p + off, "layer %d %s: A is not at offset %lld", l, lora_target_names[t],
                         (long long)off);
            cr_assert_eq((const float *)a->gA.data, g + off);
            off += 4 * a->in;
            cr_assert_eq((const float *)a->B.data, p + off, "layer %d %s: B is not at offset %lld", l, lora_target_names[t],
                         (long long)off);
            cr_assert_eq((const float *)a->gB.data, g + off);
            off += 4 * a->out;
            cr_assert(tensor_is_contiguous(&a->A) && tensor_is_contiguous(&a->B));

            // A ~ U(-1/sqrt(in), 1/sqrt(in)): within the bound, spread over it, centred; B = 0.
            float bound = 1.0f / sqrtf((float)a->in), amax = 0;
            double mean = 0;
            const float *A = a->A.data, *B = a->B.data;
            int64_t nA = 4 * a->in;
            for (int64_t i = 0; i < nA; i++) {
                cr_assert(fabsf(A[i]) <= bound, "layer %d %s: A[%lld] = %g outside +-%g", l, lora_target_names[t],
                          (long long)i, A[i], bound);
                amax = fmaxf(amax, fabsf(A[i]));
                mean += A[i];
            }
            mean /= (double)nA;
            cr_expect_gt(amax, 0.95f * bound, "layer %d %s: max |A| %g of bound %g", l, lora_target_names[t], amax, bound);
            cr_expect_lt(fabs(mean), 0.15 * bound, "layer %d %s: mean A %g", l, lora_target_names[t], mean);
            for (int64_t i = 0; i < 4 * a->out; i++) cr_assert_eq(B[i], 0.0f, "layer %d %s: B[%lld] = %g", l, lora_target_names[t], (long long)i, B[i]);
        }
    cr_assert_eq(off, s.n_params);
    for (int64_t i = 0; i < s.n_params; i++) cr_assert_eq(g[i], 0.0f, "grads[%lld] = %g", (long long)i, g[i]);
    // The A's of different adapters are not copies of each other.
    cr_expect_neq(memcmp(lora_adapter(&s, 0, LORA_Q)->A.data, lora_adapter(&s, 0, LORA_K)->A.data, 4 * 80 * 4), 0);
    cr_expect_neq(memcmp(lora_adapter(&s, 0, LORA_Q)->A.data, lora_adapter(&s, 1, LORA_Q)->A.data, 4 * 80 * 4), 0);

    OK(lora_init(&s2, &c, NULL, &cfg, 1234));
    cr_expect(same_bits(&s, &s2), "the same seed gave other weights");
    OK(lora_init(&s3, &c, NULL, &cfg, 1235));
    cr_expect(!same_bits(&s, &s3), "seeds 1234 and 1235 gave the same weights");
    lora_free(&s);
    lora_free(&s2);
    lora_free(&s3);
    cr_expect(s.params.data == NULL && s.ad == NULL && s.n_params == 0);

    // A prefix view and a subset of targets.
    LlamaWidth w[2] = {{2, 96}, {3, 64}};
    cfg = (LoraConfig){.rank = 2, .alpha = 16, .targets = (1u << LORA_V) | (1u << LORA_DOWN)};
    OK(lora_init(&s, &c, w, &cfg, 5));
    expect_shapes(&s, w, mha_shape, 4, 192);
    cr_expect_eq(s.n_params, 2 * ((40 + 80) + (80 + 96)) + 2 * ((60 + 80) + (80 + 64)));
    for (int l = 0; l < 2; l++) {
        const LoraAdapter *a = lora_adapter(&s, l, LORA_DOWN);
        float bound = 1.0f / sqrtf((float)a->in);
        for (int64_t i = 0; i < 2 * a->in; i++) cr_assert(fabsf(((float *)a->A.data)[i]) <= bound);
    }
    cr_expect_float_eq(lora_scale(&s), 8.0f, 0);
    lora_free(&s);

    // Bad configurations.
    cfg = (LoraConfig){.rank = 0, .alpha = 16, .targets = ALL_TARGETS};
    tu_expect_err(lora_init(&s, &c, NULL, &cfg, 1), ST_USAGE, "rank", NULL, NULL);
    cfg.rank = 4;
    cfg.dropout = 1.0f;
    tu_expect_err(lora_init(&s, &c, NULL, &cfg, 1), ST_USAGE, "dropout", NULL, NULL);
    cfg.dropout = -0.1f;
    tu_expect_err(lora_init(&s, &c, NULL, &cfg, 1), ST_USAGE, "dropout", NULL, NULL);
    cfg.dropout = NAN;
    tu_expect_err(lora_init(&s, &c, NULL, &cfg, 1), ST_USAGE, "dropout", NULL, NULL);
}

// ---- peft ---------------------------------------------------------------------------------------

// Every targeted matrix of s equals the fixture file's tensor of the same key, bit for bit.
static void expect_matches_file(const LoraSet *s, const char *path) {
    SafetensorsFile f;
    tu_open_safetensors(&f, path);
    size_t used = 0;
    char key[160];
    for (int l = 0; l < s->n_layers; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            const LoraAdapter *a = lora_adapter(s, l, t);
            if (!a->in) continue;
            for (int w = 0; w < 2; w++) {
                const Tensor *m = w ? &a->B : &a->A;
                peft_key(key, sizeof key, l, t, w ? 'B' : 'A');
                const SafeTensor *st = tu_tensor(&f, key, DT_F32);
                cr_assert(st->ndim == 2 && st->shape[0] == m->shape[0] && st->shape[1] == m->shape[1],
                          "%s: [%lld, %lld] in the file, [%lld, %lld] in the set", key, (long long)st->shape[0],
                          (long long)st->shape[1], (long long)m->shape[0], (long long)m->shape[1]);
                cr_assert_eq(memcmp(st->data, m->data, st->nbytes), 0, "%s differs from the file", key);
                used++;
            }
        }
    cr_expect_eq(used, f.n, "%zu of the file's %zu tensors used", used, f.n);
    safetensors_close(&f);
}

Test(lora_io, peft_import_fixture) {
    char key[160];
    peft_key(key, sizeof key, 1, LORA_GATE, 'B');
    cr_expect_str_eq(key, "base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight");
    peft_key(key, sizeof key, 0, LORA_O, 'A');
    cr_expect_str_eq(key, "base_model.model.model.layers.0.self_attn.o_proj.lora_A.weight");

    LlamaConfig c = model_config(MHA);
    LoraSet s;
    OK(peft_import(&s, &c, NULL, MHA_LORA));
    cr_expect_eq(s.cfg.rank, 4);
    cr_expect_float_eq(s.cfg.alpha, 8.0f, 0);
    cr_expect_float_eq(s.cfg.dropout, 0.0f, 0);
    cr_expect_eq(s.cfg.targets, ALL_TARGETS, "targets %#x", s.cfg.targets);
    cr_expect_eq(s.n_layers, 2);
    expect_shapes(&s, NULL, mha_shape, 4, 192);
    expect_matches_file(&s, MHA_LORA "/adapter_model.safetensors");
    // The fixture's B's are trained (not zero): the import did not keep lora_init's B = 0.
    const float *B = lora_adapter(&s, 1, LORA_DOWN)->B.data;
    float bmax = 0;
    for (int i = 0; i < 80 * 4; i++) bmax = fmaxf(bmax, fabsf(B[i]));
    cr_expect_gt(bmax, 1e-3f);
    lora_free(&s);
}

static void gqa_shape(int kv, int ffn, LoraTarget t, int *out, int *in) {
    int q = kv * 2 * 16, k = kv * 16;
    const int shapes[LORA_N_TARGETS][2] = {{q, 64}, {k, 64}, {k, 64}, {64, q}, {ffn, 64}, {ffn, 64}, {64, ffn}};
    *out = shapes[t][0], *in = shapes[t][1];
}

Test(lora_io, peft_import_gqa_fixture) {
    LlamaConfig c = model_config(GQA);
    LoraSet s;
    OK(peft_import(&s, &c, NULL, GQA_LORA));
    cr_expect_eq(s.cfg.rank, 4);
    cr_expect_float_eq(s.cfg.alpha, 8.0f, 0);
    cr_expect_eq(s.cfg.targets, ALL_TARGETS, "targets %#x", s.cfg.targets);
    expect_shapes(&s, NULL, gqa_shape, 2, 128);
    expect_matches_file(&s, GQA_LORA "/adapter_model.safetensors");
    lora_free(&s);
    // The MHA adapter does not fit the GQA model: the first mismatching key is named.
    tu_expect_err(peft_import(&s, &c, NULL, MHA_LORA), ST_FORMAT, "adapter_model.safetensors", 
               "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "shape");
    cr_expect(s.params.data == NULL && s.ad == NULL);
}

static json_t *load_json(const char *path) {
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    cr_assert_not_null(j, "%s:%d: %s", path, err.line, err.text);
    return j;
}

// adapter_config.json as peft writes it for set s.
static void expect_config_json(const char *dir, const LoraSet *s, const char *base_model) {
    char path[600];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    json_t *j = load_json(path);
    cr_expect_str_eq(json_string_value(json_object_get(j, "peft_type")), "LORA");
    cr_expect_str_eq(json_string_value(json_object_get(j, "task_type")), "CAUSAL_LM");
    cr_expect_str_eq(json_string_value(json_object_get(j, "bias")), "none");
    json_t *r = json_object_get(j, "r");
    cr_expect(json_is_integer(r) && json_integer_value(r) == s->cfg.rank, "r");
    json_t *alpha = json_object_get(j, "lora_alpha");
    cr_expect(json_is_number(alpha) && (float)json_number_value(alpha) == s->cfg.alpha, "lora_alpha");
    json_t *drop = json_object_get(j, "lora_dropout");
    cr_expect(json_is_number(drop) && (float)json_number_value(drop) == s->cfg.dropout, "lora_dropout");
    cr_expect(json_is_false(json_object_get(j, "use_rslora")));
    cr_expect(json_is_false(json_object_get(j, "use_dora")));
    cr_expect(json_is_false(json_object_get(j, "fan_in_fan_out")));
    json_t *base = json_object_get(j, "base_model_name_or_path");
    if (base_model) cr_expect_str_eq(json_string_value(base), base_model);
    else cr_expect(json_is_null(base));
    json_t *tm = json_object_get(j, "target_modules");
    cr_assert(json_is_array(tm), "target_modules is not a list");
    size_t k = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        if (!(s->cfg.targets & (1u << t))) continue;
        cr_assert_lt(k, json_array_size(tm));
        cr_expect_str_eq(json_string_value(json_array_get(tm, k)), lora_target_names[t]);
        k++;
    }
    cr_expect_eq(json_array_size(tm), k, "target_modules has %zu entries, expected %zu", json_array_size(tm), k);
    json_decref(j);
}

Test(lora_io, peft_roundtrip_full) {
    LlamaConfig c = model_config(MHA);
    LoraConfig cfg = {.rank = 3, .alpha = 6.5f, .dropout = 0.05f, .targets = ALL_TARGETS};
    LoraSet s, back;
    OK(lora_init(&s, &c, NULL, &cfg, 9));
    fill_params(&s, 1);
    char dir[512];
    in_dir(dir, sizeof dir, "full");
    OK(peft_export(&s, dir, "some/base-model"));
    expect_config_json(dir, &s, "some/base-model");
    char path[600];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    expect_matches_file(&s, path);

    OK(peft_import(&back, &c, NULL, dir));
    cr_expect_eq(back.cfg.rank, 3);
    cr_expect_eq(back.cfg.alpha, 6.5f);
    cr_expect_eq(back.cfg.dropout, 0.05f);
    cr_expect_eq(back.cfg.targets, ALL_TARGETS);
    expect_shapes(&back, NULL, mha_shape, 4, 192);
    cr_assert(same_bits(&s, &back), "the round trip changed the weights");
    lora_free(&back);

    // Exporting again over the same directory replaces it; no base model gives null.
    fill_params(&s, 2);
    OK(peft_export(&s, dir, NULL));
    expect_config_json(dir, &s, NULL);
    OK(peft_import(&back, &c, NULL, dir));
    cr_assert(same_bits(&s, &back), "the second export was not read back");
    lora_free(&back);
    lora_free(&s);
}

Test(lora_io, peft_roundtrip_prefix_and_subset) {
    LlamaConfig c = model_config(MHA);
    LlamaWidth w[2] = {{2, 96}, {2, 96}};
    LoraConfig cfg = {.rank = 4, .alpha = 8, .targets = ALL_TARGETS};
    LoraSet s, back;
    OK(lora_init(&s, &c, w, &cfg, 3));
    fill_params(&s, 3);
    char dir[512];
    in_dir(dir, sizeof dir, "half");
    OK(peft_export(&s, dir, MHA));
    expect_config_json(dir, &s, MHA);
    char path[600];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    expect_matches_file(&s, path); // the view's shapes: q_proj B [40, 4], down_proj A [4, 96], ...
    OK(peft_import(&back, &c, w, dir));
    expect_shapes(&back, w, mha_shape, 4, 192);
    cr_assert(same_bits(&s, &back), "the prefix round trip changed the weights");
    lora_free(&back);
    // The full model does not take the half model's adapter.
    tu_expect_err(peft_import(&back, &c, NULL, dir), ST_FORMAT, path,
               "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", "shape");
    lora_free(&s);

    // Per-layer widths and a subset of targets.
    LlamaWidth w2[2] = {{1, 17}, {4, 192}};
    cfg = (LoraConfig){.rank = 2, .alpha = 2, .dropout = 0.1f, .targets = (1u << LORA_Q) | (1u << LORA_V) | (1u << LORA_DOWN)};
    OK(lora_init(&s, &c, w2, &cfg, 4));
    fill_params(&s, 4);
    in_dir(dir, sizeof dir, "subset");
    OK(peft_export(&s, dir, NULL));
    expect_config_json(dir, &s, NULL);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    expect_matches_file(&s, path); // also: exactly 2 layers x 3 targets x 2 tensors in the file
    OK(peft_import(&back, &c, w2, dir));
    cr_expect_eq(back.cfg.targets, cfg.targets, "targets %#x", back.cfg.targets);
    cr_expect_eq(back.cfg.dropout, 0.1f);
    expect_shapes(&back, w2, mha_shape, 4, 192);
    cr_assert(same_bits(&s, &back));
    lora_free(&back);
    lora_free(&s);
}

// ---- peft_import errors -------------------------------------------------------------------------

// A copy of the MHA fixture adapter whose config has `from` replaced by `to`; imports must fail.
static void expect_config_err(const char *from, const char *to, Status code, const char *needle) {
    char dir[256], path[600];
    tu_copy_dir(MHA_LORA, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    tu_replace_in_file(path, from, to);
    LlamaConfig c = model_config(MHA);
    LoraSet s = {0};
    Status st = peft_import(&s, &c, NULL, dir);
    tu_expect_err(st, code ? code : (st ? st : ST_FORMAT), path, needle, NULL); // code 0: any failure
    cr_expect(s.params.data == NULL && s.ad == NULL, "a failed import left a set behind");
    tu_remove_dir(dir);
}

Test(lora_io, peft_import_config_errors) {
    // The unedited copy imports.
    char dir[256], path[600];
    tu_copy_dir(MHA_LORA, dir, sizeof dir);
    LlamaConfig c = model_config(MHA);
    LoraSet s;
    OK(peft_import(&s, &c, NULL, dir));
    lora_free(&s);

    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    cr_assert_eq(unlink(path), 0);
    tu_expect_err(peft_import(&s, &c, NULL, dir), ST_IO, path, NULL, NULL);
    tu_remove_dir(dir);

    char line[700];
    tu_copy_dir(MHA_LORA, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    tu_replace_in_file(path, "\"r\": 4,", "\"r\": 4,,");
    snprintf(line, sizeof line, "%s:31", path); // the line of "r"
    tu_expect_err(peft_import(&s, &c, NULL, dir), ST_FORMAT, line, "malformed JSON", NULL);
    tu_remove_dir(dir);

    expect_config_err("\"use_rslora\": false", "\"use_rslora\": true", ST_UNSUPPORTED, "rslora");
    expect_config_err("\"use_dora\": false", "\"use_dora\": true", ST_UNSUPPORTED, "DoRA");
    expect_config_err("\"fan_in_fan_out\": false", "\"fan_in_fan_out\": true", ST_UNSUPPORTED, "fan_in_fan_out");
    expect_config_err("\"bias\": \"none\"", "\"bias\": \"all\"", ST_UNSUPPORTED, "bias");
    expect_config_err("\"peft_type\": \"LORA\"", "\"peft_type\": \"LOHA\"", ST_UNSUPPORTED, "peft_type");
    expect_config_err("\"r\": 4,", "\"r\": 0,", ST_FORMAT, "'r'");
    expect_config_err("\"r\": 4,", "\"r\": \"4\",", ST_FORMAT, "'r'");
    expect_config_err("\"lora_alpha\": 8,", "\"lora_alpha\": \"8\",", ST_FORMAT, "'lora_alpha'");
    expect_config_err("\"rank_pattern\": {}", "\"rank_pattern\": {\"q_proj\": 8}", ST_UNSUPPORTED, "rank_pattern");
    expect_config_err("\"down_proj\",", "\"lm_head\",", ST_UNSUPPORTED, "lm_head");
    expect_config_err("\"down_proj\",", "\"embed_tokens\",", ST_UNSUPPORTED, "not a LLaMA projection");
    expect_config_err("\"down_proj\",", "17,", ST_UNSUPPORTED, "target module");
    expect_config_err("\"target_modules\": [", "\"target_modules\": 5, \"x\": [", ST_FORMAT, "target_modules");
}

// peft's lora_dropout is a probability; an impossible one is refused naming the config file and the key.
Test(lora_io, peft_import_bad_dropout_names_the_file) {
    expect_config_err("\"lora_dropout\": 0.0,", "\"lora_dropout\": 1.5,", 0, "lora_dropout");
    expect_config_err("\"lora_dropout\": 0.0,", "\"lora_dropout\": -0.5,", 0, "lora_dropout");
}

// A copy of the MHA fixture adapter whose safetensors holds the fixture's tensors, except that `drop`
// is left out and `reshape` (if any) is written as [rows, cols] (its first rows*cols values).
static void adapter_with_tensors(char *dir, size_t n, const char *drop, const char *reshape, int64_t rows, int64_t cols) {
    tu_copy_dir(MHA_LORA, dir, n);
    SafetensorsFile f;
    tu_open_safetensors(&f, MHA_LORA "/adapter_model.safetensors");
    const char **names = calloc(f.n, sizeof *names);
    Tensor *ts = calloc(f.n, sizeof *ts);
    size_t k = 0;
    for (size_t i = 0; i < f.n; i++) {
        const SafeTensor *t = &f.tensors[i];
        if (drop && !strcmp(t->name, drop)) continue;
        names[k] = t->name;
        if (reshape && !strcmp(t->name, reshape)) {
            cr_assert_leq(rows * cols * 4, (int64_t)t->nbytes);
            ts[k++] = tensor_wrap((void *)t->data, DT_F32, (Device){DEV_CPU, 0}, 2, (int64_t[]){rows, cols});
        } else {
            ts[k++] = tensor_wrap((void *)t->data, t->dtype, (Device){DEV_CPU, 0}, t->ndim, t->shape);
        }
    }
    char path[600];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    OK(safetensors_write(path, names, ts, k));
    free(names);
    free(ts);
    safetensors_close(&f);
}

// adapter_with_tensors(drop, reshape, rows, cols) must fail to import (ST_FORMAT) naming the
// safetensors file, key and needle, and leave no set behind.
static void expect_tensor_err(const char *drop, const char *reshape, int64_t rows, int64_t cols, const char *key,
                              const char *needle) {
    char dir[256], path[600];
    adapter_with_tensors(dir, sizeof dir, drop, reshape, rows, cols);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    LlamaConfig c = model_config(MHA);
    LoraSet s = {0};
    tu_expect_err(peft_import(&s, &c, NULL, dir), ST_FORMAT, path, key, needle);
    cr_expect(s.params.data == NULL && s.ad == NULL, "a failed import left a set behind");
    tu_remove_dir(dir);
}

Test(lora_io, peft_import_tensor_errors) {
    LlamaConfig c = model_config(MHA);
    LoraSet s;
    char dir[256], path[600];
    const char *key = "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight";

    // The rewritten file with nothing changed imports to the same values.
    adapter_with_tensors(dir, sizeof dir, NULL, NULL, 0, 0);
    OK(peft_import(&s, &c, NULL, dir));
    expect_matches_file(&s, MHA_LORA "/adapter_model.safetensors");
    lora_free(&s);
    tu_remove_dir(dir);

    expect_tensor_err(key, NULL, 0, 0, key, "missing");
    expect_tensor_err(NULL, key, 79, 4, key, "[79, 4]");
    const char *keyA = "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight";
    expect_tensor_err(NULL, keyA, 4, 191, keyA, "expected [4, 192]");
    expect_tensor_err(NULL, keyA, 192, 4, keyA, "shape"); // transposed

    // No safetensors at all.
    tu_copy_dir(MHA_LORA, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    cr_assert_eq(unlink(path), 0);
    tu_expect_err(peft_import(&s, &c, NULL, dir), ST_IO, path, NULL, NULL);
    tu_remove_dir(dir);

    // Not a directory at all.
    in_dir(path, sizeof path, "nowhere");
    tu_expect_err(peft_import(&s, &c, NULL, path), ST_IO, "nowhere/adapter_config.json", NULL, NULL);
}

// ---- HDF5 store -----------------------------------------------------------------------------------

Test(lora_io, store_roundtrip) {
    LlamaConfig c = model_config(MHA);
    LlamaWidth w[2] = {{2, 96}, {3, 64}};
    LoraConfig cfg_full = {.rank = 4, .alpha = 8, .dropout = 0.05f, .targets = ALL_TARGETS};
    LoraConfig cfg_half = {.rank = 2, .alpha = 3.5f, .dropout = 0, .targets = (1u << LORA_K) | (1u << LORA_UP)};
    LoraSet full, half, back;
    OK(lora_init(&full, &c, NULL, &cfg_full, 1));
    fill_params(&full, 11);
    OK(lora_init(&half, &c, w, &cfg_half, 2));
    fill_params(&half, 12);

    char path[512];
    in_dir(path, sizeof path, "art.h5");
    H5Store *f;
    OK(h5_create(&f, path));
    OK(lora_store_write(f, "lora/1", &full));
    OK(lora_store_write(f, "lora/0.5", &half));
    OK(h5_commit(f));

    OK(h5_open_read(&f, path));
    // Attributes and datasets as documented.
    int64_t rank;
    double alpha, dropout;
    char *targets;
    OK(h5_get_attr_i64(f, "lora/1", "rank", &rank));
    OK(h5_get_attr_f64(f, "lora/1", "alpha", &alpha));
    OK(h5_get_attr_f64(f, "lora/1", "dropout", &dropout));
    OK(h5_get_attr_str(f, "lora/1", "targets", &targets));
    cr_expect_eq(rank, 4);
    cr_expect_eq(alpha, 8.0);
    cr_expect_eq((float)dropout, 0.05f);
    cr_expect_str_eq(targets, "q,k,v,o,gate,up,down");
    free(targets);
    OK(h5_get_attr_i64(f, "lora/0.5", "rank", &rank));
    OK(h5_get_attr_f64(f, "lora/0.5", "alpha", &alpha));
    OK(h5_get_attr_str(f, "lora/0.5", "targets", &targets));
    cr_expect_eq(rank, 2);
    cr_expect_eq(alpha, 3.5);
    cr_expect_str_eq(targets, "k,up");
    free(targets);
    int64_t shape[2];
    float *data;
    OK(h5_read_f32(f, "lora/0.5/1/up_proj/B", 2, shape, &data));
    cr_expect(shape[0] == 64 && shape[1] == 2, "[%lld, %lld]", (long long)shape[0], (long long)shape[1]);
    cr_expect_eq(memcmp(data, lora_adapter(&half, 1, LORA_UP)->B.data, 64 * 2 * 4), 0);
    free(data);
    OK(h5_read_f32(f, "lora/1/0/down_proj/A", 2, shape, &data));
    cr_expect(shape[0] == 4 && shape[1] == 192, "[%lld, %lld]", (long long)shape[0], (long long)shape[1]);
    cr_expect_eq(memcmp(data, lora_adapter(&full, 0, LORA_DOWN)->A.data, 4 * 192 * 4), 0);
    free(data);
    cr_expect(!h5_exists(f, "lora/0.5/0/q_proj"), "an untargeted projection was written");
    char **names;
    int count;
    OK(h5_list(f, "lora/1/0", &names, &count));
    cr_expect_eq(count, 7);
    h5_free_names(names, count);

    OK(lora_store_read(f, "lora/1", &c, NULL, &back));
    cr_expect(back.cfg.rank == 4 && back.cfg.alpha == 8.0f && back.cfg.dropout == 0.05f && back.cfg.targets == ALL_TARGETS);
    cr_assert(same_bits(&full, &back), "the full set changed in the round trip");
    lora_free(&back);
    OK(lora_store_read(f, "lora/0.5", &c, w, &back));
    cr_expect(back.cfg.rank == 2 && back.cfg.alpha == 3.5f && back.cfg.dropout == 0 && back.cfg.targets == cfg_half.targets);
    expect_shapes(&back, w, mha_shape, 4, 192);
    cr_assert(same_bits(&half, &back), "the prefix set changed in the round trip");
    lora_free(&back);

    // A view that does not match what was stored: the dataset is named.
    tu_expect_err(lora_store_read(f, "lora/0.5", &c, NULL, &back), ST_FORMAT, path, "lora/0.5/0/k_proj/B", "shape");
    cr_expect(back.params.data == NULL && back.ad == NULL);
    LlamaWidth w_other[2] = {{2, 96}, {3, 65}};
    tu_expect_err(lora_store_read(f, "lora/0.5", &c, w_other, &back), ST_FORMAT, path, "lora/0.5/1/up_proj/B", NULL);
    tu_expect_err(lora_store_read(f, "lora/1", &c, w, &back), ST_FORMAT, path, "lora/1/0/q_proj/B", NULL);
    tu_expect_err(lora_store_read(f, "lora/0.25", &c, NULL, &back), ST_FORMAT, path, "lora/0.25", NULL);
    h5_close(f);

    // Rewriting a group replaces the whole set (no stale matrices of the old targets).
    OK(h5_open_update(&f, path));
    OK(lora_store_write(f, "lora/1", &half));
    OK(h5_commit(f));
    OK(h5_open_read(&f, path));
    cr_expect(!h5_exists(f, "lora/1/0/q_proj"), "a stale matrix of the old set remains");
    OK(lora_store_read(f, "lora/1", &c, w, &back));
    cr_expect_eq(back.cfg.rank, 2);
    cr_assert(same_bits(&half, &back));
    lora_free(&back);
    h5_close(f);
    lora_free(&full);
    lora_free(&half);
}

Test(lora_io, store_bad_attributes) {
    LlamaConfig c = model_config(MHA);
    LoraConfig cfg = {.rank = 2, .alpha = 4, .targets = 1u << LORA_Q};
    LoraSet s, back;
    OK(lora_init(&s, &c, NULL, &cfg, 1));
    char path[512];
    in_dir(path, sizeof path, "attrs.h5");
    H5Store *f;
    OK(h5_create(&f, path));
    OK(lora_store_write(f, "a", &s));
    OK(lora_store_write(f, "b", &s));
    OK(h5_set_attr_str(f, "a", "targets", "q,bogus"));
    OK(h5_write_f32(f, "c/0/q_proj/A", 2, (int64_t[]){2, 80}, lora_adapter(&s, 0, LORA_Q)->A.data)); // no attributes
    OK(h5_commit(f));
    OK(h5_open_read(&f, path));
    Status st = lora_store_read(f, "a", &c, NULL, &back);
    cr_assert_neq(st, ST_OK);
    tu_expect_err(st, st, path, "bogus", NULL);
    tu_expect_err(lora_store_read(f, "c", &c, NULL, &back), ST_FORMAT, path, "rank", NULL);
    OK(lora_store_read(f, "b", &c, NULL, &back));
    cr_assert(same_bits(&s, &back));
    lora_free(&back);
    h5_close(f);
    lora_free(&s);
}

// Impossible attribute values (rank 0, dropout 1): refused naming the file and the group.
Test(lora_io, store_bad_rank_dropout_names_the_file) {
    LlamaConfig c = model_config(MHA);
    LoraConfig cfg = {.rank = 2, .alpha = 4, .targets = 1u << LORA_Q};
    LoraSet s, back = {0};
    OK(lora_init(&s, &c, NULL, &cfg, 1));
    char path[512];
    in_dir(path, sizeof path, "attrs.h5");
    H5Store *f;
    OK(h5_create(&f, path));
    OK(lora_store_write(f, "r0", &s));
    OK(h5_set_attr_i64(f, "r0", "rank", 0));
    OK(lora_store_write(f, "d1", &s));
    OK(h5_set_attr_f64(f, "d1", "dropout", 1.0));
    OK(h5_commit(f));
    OK(h5_open_read(&f, path));
    Status st = lora_store_read(f, "r0", &c, NULL, &back);
    cr_assert_neq(st, ST_OK);
    tu_expect_err(st, st, path, "r0", "rank");
    cr_expect(back.params.data == NULL && back.ad == NULL);
    st = lora_store_read(f, "d1", &c, NULL, &back);
    cr_assert_neq(st, ST_OK);
    tu_expect_err(st, st, path, "d1", "dropout");
    lora_free(&back);
    h5_close(f);
    lora_free(&s);
}

Test(lora_io, level_widths) {
    LlamaConfig c = model_config(MHA);
    char path[512];
    in_dir(path, sizeof path, "levels.h5");
    H5Store *f;
    OK(h5_create(&f, path));
    OK(h5_write_i32(f, "levels/0.5/n_kv", 1, (int64_t[]){2}, (int32_t[]){2, 3}));
    OK(h5_write_i32(f, "levels/0.5/ffn", 1, (int64_t[]){2}, (int32_t[]){96, 192}));
    OK(h5_write_i32(f, "levels/0/n_kv", 1, (int64_t[]){2}, (int32_t[]){0, 3}));
    OK(h5_write_i32(f, "levels/0/ffn", 1, (int64_t[]){2}, (int32_t[]){96, 96}));
    OK(h5_write_i32(f, "levels/big/n_kv", 1, (int64_t[]){2}, (int32_t[]){4, 5}));
    OK(h5_write_i32(f, "levels/big/ffn", 1, (int64_t[]){2}, (int32_t[]){96, 96}));
    OK(h5_write_i32(f, "levels/wide/n_kv", 1, (int64_t[]){2}, (int32_t[]){4, 4}));
    OK(h5_write_i32(f, "levels/wide/ffn", 1, (int64_t[]){2}, (int32_t[]){193, 96}));
    OK(h5_write_i32(f, "levels/nil/n_kv", 1, (int64_t[]){2}, (int32_t[]){4, 4}));
    OK(h5_write_i32(f, "levels/nil/ffn", 1, (int64_t[]){2}, (int32_t[]){96, 0}));
    OK(h5_write_i32(f, "levels/three/n_kv", 1, (int64_t[]){3}, (int32_t[]){2, 2, 2}));
    OK(h5_write_i32(f, "levels/three/ffn", 1, (int64_t[]){3}, (int32_t[]){96, 96, 96}));
    OK(h5_write_i32(f, "levels/half/n_kv", 1, (int64_t[]){2}, (int32_t[]){2, 2}));
    OK(h5_commit(f));

    OK(h5_open_read(&f, path));
    LlamaWidth w[2] = {{-1, -1}, {-1, -1}};
    OK(artifact_level_widths(f, "1", &c, w));
    cr_expect(w[0].n_kv == 4 && w[0].ffn == 192 && w[1].n_kv == 4 && w[1].ffn == 192, "level 1: {%d, %d} {%d, %d}",
              w[0].n_kv, w[0].ffn, w[1].n_kv, w[1].ffn);
    w[0] = w[1] = (LlamaWidth){-1, -1};
    OK(artifact_level_widths(f, "1.0", &c, w));
    cr_expect(w[0].n_kv == 4 && w[1].ffn == 192);
    OK(artifact_level_widths(f, "0.5", &c, w));
    cr_expect(w[0].n_kv == 2 && w[0].ffn == 96 && w[1].n_kv == 3 && w[1].ffn == 192, "level 0.5: {%d, %d} {%d, %d}",
              w[0].n_kv, w[0].ffn, w[1].n_kv, w[1].ffn);

    tu_expect_err(artifact_level_widths(f, "0.25", &c, w), ST_FORMAT, path, "level 0.25", "levels/0.25");
    tu_expect_err(artifact_level_widths(f, "0", &c, w), ST_FORMAT, path, "level 0,", "layer 0");
    tu_expect_err(artifact_level_widths(f, "big", &c, w), ST_FORMAT, path, "level big,", "layer 1");
    tu_expect_err(artifact_level_widths(f, "wide", &c, w), ST_FORMAT, path, "level wide,", "layer 0");
    tu_expect_err(artifact_level_widths(f, "nil", &c, w), ST_FORMAT, path, "level nil,", "layer 1");
    tu_expect_err(artifact_level_widths(f, "three", &c, w), ST_FORMAT, path, "levels/three/n_kv", NULL);
    tu_expect_err(artifact_level_widths(f, "half", &c, w), ST_FORMAT, path, "levels/half/ffn", NULL);
    h5_close(f);

    // A file with no level table at all: level 1 only.
    in_dir(path, sizeof path, "empty.h5");
    OK(h5_create(&f, path));
    OK(h5_commit(f));
    OK(h5_open_read(&f, path));
    OK(artifact_level_widths(f, "1", &c, w));
    cr_expect(w[0].n_kv == 4 && w[1].ffn == 192);
    tu_expect_err(artifact_level_widths(f, "0.5", &c, w), ST_FORMAT, path, "level 0.5", "elasticize");
    h5_close(f);
}
