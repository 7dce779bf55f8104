// OPT (models/opt.h) against Hugging Face transformers' OPTForCausalLM on tiny
// random models: tests/reference/make_opt_goldens.py writes tests/fixtures/opt/
// (pre-ln: opt-125m style; post-ln: opt-350m style with project_in/out;
// variant: GELU, no biases, LayerNorm without parameters, untied head).
// Tolerance: max |Δlogit| <= 1e-4 * max(1, max |logit|) in fp32 (summation
// order differs between OpenBLAS and PyTorch, nothing else should).
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "models/opt.h"
#include "ops/ops.h"
#include "test_util.h"

static const Device CPU = {DEV_CPU, 0};
#define FIX "tests/fixtures/opt"
#define TOL 1e-4f

typedef struct {
    OptModel m;
    SafetensorsFile golden;
    const int32_t *ids, *mask;
    const float *want;
    int n_seq, T, V;
    float scale; // max(1, max |golden logit|): the scale of the tolerance
} Golden;

static void golden_open(Golden *g, const char *model, const char *key) {
    ops_set_threads(1);
    char path[512];
    snprintf(path, sizeof path, FIX "/%s", model);
    Status st = opt_load(&g->m, path);
    cr_assert_eq(st, ST_OK, "%s", status_message());
    snprintf(path, sizeof path, FIX "/%s/golden.safetensors", model);
    tu_open_safetensors(&g->golden, path);
    char name[64];
    snprintf(name, sizeof name, "%s.input_ids", key);
    const SafeTensor *ids = tu_tensor(&g->golden, name, DT_I32);
    g->ids = (const int32_t *)ids->data;
    snprintf(name, sizeof name, "%s.attention_mask", key);
    g->mask = (const int32_t *)tu_tensor(&g->golden, name, DT_I32)->data;
    snprintf(name, sizeof name, "%s.logits", key);
    const SafeTensor *lt = tu_tensor(&g->golden, name, DT_F32);
    g->want = (const float *)lt->data;
    g->n_seq = (int)ids->shape[0], g->T = (int)ids->shape[1], g->V = g->m.cfg.vocab_size;
    cr_assert_eq(lt->shape[2], g->V);
    float mx = tu_max_abs(g->want, (size_t)g->n_seq * g->T * g->V);
    g->scale = mx > 1.0f ? mx : 1.0f;
}

static void golden_close(Golden *g) {
    opt_free(&g->m);
    safetensors_close(&g->golden);
}

static const float *want_row(const Golden *g, int b, int t) { return g->want + ((size_t)b * g->T + t) * g->V; }

// max |Δ| of one logits row against the golden (b, t), 0 for a pad.
static float row_diff(const Golden *g, const float *row, int b, int t) {
    if (!g->mask[b * g->T + t]) return 0.0f;
    return tu_max_abs_diff(row, want_row(g, b, t), (size_t)g->V);
}

static float worse(float a, float b) { return b <= a ? a : b; } // NaN wins

// The whole batch at once; every real position.
static float full_diff(Golden *g) {
    OptSession s;
    cr_assert_eq(opt_session_init(&s, &g->m, g->n_seq, g->T, CPU), ST_OK, "%s", status_message());
    Tensor logits;
    cr_assert_eq(tensor_alloc_2d(&logits, DT_F32, CPU, (int64_t)g->n_seq * g->T, g->V), ST_OK);
    cr_assert_eq(opt_forward(&g->m, &s, g->ids, g->mask, g->T, LOGITS_ALL, &logits), ST_OK, "%s", status_message());
    float d = 0.0f;
    for (int b = 0; b < g->n_seq; b++)
        for (int t = 0; t < g->T; t++) d = worse(d, row_diff(g, tensor_row_f32(&logits, (int64_t)b * g->T + t), b, t));
    // LOGITS_LAST on a fresh session: the last row of each sequence
    opt_session_reset(&s);
    Tensor last = tensor_rows(&logits, 0, g->n_seq);
    cr_assert_eq(opt_forward(&g->m, &s, g->ids, g->mask, g->T, LOGITS_LAST, &last), ST_OK, "%s", status_message());
    for (int b = 0; b < g->n_seq; b++) d = worse(d, row_diff(g, tensor_row_f32(&last, b), b, g->T - 1));
    tensor_free(&logits);
    opt_session_free(&s);
    return d;
}

// Prefill of the first split tokens (pads included), then one token at a time;
// then truncate to cut tokens and run the rest again in one forward.
static float incremental_diff(Golden *g, int split, int cut) {
    int n = g->n_seq, T = g->T, V = g->V;
    OptSession s;
    cr_assert_eq(opt_session_init(&s, &g->m, n, T, CPU), ST_OK, "%s", status_message());
    Tensor logits;
    cr_assert_eq(tensor_alloc_2d(&logits, DT_F32, CPU, (int64_t)n * T, V), ST_OK);
    int32_t *ids = malloc((size_t)n * T * sizeof *ids), *mask = malloc((size_t)n * T * sizeof *mask);
    float d = 0.0f;
    // [first, first + len) of every sequence
#define SLICE(first, len)                                                \
    for (int b_ = 0; b_ < n; b_++)                                       \
        for (int i_ = 0; i_ < (len); i_++) {                             \
            ids[b_ * (len) + i_] = g->ids[b_ * T + (first) + i_];        \
            mask[b_ * (len) + i_] = g->mask[b_ * T + (first) + i_];      \
        }
    SLICE(0, split);
    Tensor pre = tensor_rows(&logits, 0, (int64_t)n * split);
    cr_assert_eq(opt_forward(&g->m, &s, ids, mask, split, LOGITS_ALL, &pre), ST_OK, "%s", status_message());
    for (int b = 0; b < n; b++)
        for (int t = 0; t < split; t++) d = worse(d, row_diff(g, tensor_row_f32(&pre, (int64_t)b * split + t), b, t));
    Tensor one = tensor_rows(&logits, 0, n);
    for (int t = split; t < T; t++) {
        SLICE(t, 1);
        cr_assert_eq(opt_forward(&g->m, &s, ids, mask, 1, LOGITS_LAST, &one), ST_OK, "%s", status_message());
        for (int b = 0; b < n; b++) d = worse(d, row_diff(g, tensor_row_f32(&one, b), b, t));
    }
    opt_session_truncate(&s, cut);
    cr_assert_eq(s.n_past, cut);
    SLICE(cut, T - cut);
    Tensor rest = tensor_rows(&logits, 0, (int64_t)n * (T - cut));
    cr_assert_eq(opt_forward(&g->m, &s, ids, mask, T - cut, LOGITS_ALL, &rest), ST_OK, "%s", status_message());
    for (int b = 0; b < n; b++)
        for (int t = cut; t < T; t++)
            d = worse(d, row_diff(g, tensor_row_f32(&rest, (int64_t)b * (T - cut) + t - cut), b, t));
#undef SLICE
    free(ids), free(mask);
    tensor_free(&logits);
    opt_session_free(&s);
    return d;
}

// The "prefix" case: both rows share their first P tokens. A one-sequence base
// session runs them; a two-sequence session attached to it runs the two
// continuations (row 1 has a pad in the middle). Then the attached session is
// truncated inside the prefix and runs the rest again.
static float shared_prefix_diff(Golden *g, int P, int cut) {
    int n = g->n_seq, T = g->T, V = g->V;
    for (int t = 0; t < P; t++) cr_assert_eq(g->ids[t], g->ids[T + t], "the golden rows do not share a prefix");
    OptSession base, s;
    cr_assert_eq(opt_session_init(&base, &g->m, 1, P, CPU), ST_OK, "%s", status_message());
    cr_assert_eq(opt_session_init(&s, &g->m, n, T - cut, CPU), ST_OK, "%s", status_message());
    Tensor logits;
    cr_assert_eq(tensor_alloc_2d(&logits, DT_F32, CPU, (int64_t)n * T, V), ST_OK);
    Tensor pl = tensor_rows(&logits, 0, P);
    cr_assert_eq(opt_forward(&g->m, &base, g->ids, g->mask, P, LOGITS_ALL, &pl), ST_OK, "%s", status_message());
    float d = 0.0f;
    for (int t = 0; t < P; t++) d = worse(d, row_diff(g, tensor_row_f32(&pl, t), 0, t));
    cr_assert_eq(opt_session_attach(&s, &base, P), ST_OK, "%s", status_message());
    int32_t *ids = malloc((size_t)n * T * sizeof *ids), *mask = malloc((size_t)n * T * sizeof *mask);
    for (int round = 0; round < 2; round++) {
        int first = round == 0 ? P : cut, len = T - first;
        if (round == 1) {
            opt_session_truncate(&s, cut);
            cr_assert_eq(s.n_past, cut);
            cr_assert_eq(s.base_n, cut, "a cut inside the shared prefix keeps its first tokens shared");
        }
        for (int b = 0; b < n; b++)
            for (int t = 0; t < len; t++) {
                ids[b * len + t] = g->ids[b * T + first + t];
                mask[b * len + t] = g->mask[b * T + first + t];
            }
        Tensor out = tensor_rows(&logits, 0, (int64_t)n * len);
        cr_assert_eq(opt_forward(&g->m, &s, ids, mask, len, LOGITS_ALL, &out), ST_OK, "%s", status_message());
        for (int b = 0; b < n; b++)
            for (int t = 0; t < len; t++)
                d = worse(d, row_diff(g, tensor_row_f32(&out, (int64_t)b * len + t), b, first + t));
    }
    free(ids), free(mask);
    tensor_free(&logits);
    opt_session_free(&s);
    opt_session_free(&base);
    return d;
}

static void check_model(const char *model) {
    Golden g;
    golden_open(&g, model, "case0");
    float tol = TOL * g.scale;
    float df = full_diff(&g), di = incremental_diff(&g, 5, 3);
    golden_close(&g);
    golden_open(&g, model, "prefix");
    float ds = shared_prefix_diff(&g, 6, 4);
    cr_log_info("opt %s: max|dlogit| left-padded batch %.2e, incremental+truncate %.2e, shared prefix %.2e "
                "(max|logit| %.2f, relative %.2e)",
                model, df, di, ds, g.scale, worse(worse(df, di), ds) / g.scale);
    cr_expect_leq(df, tol, "%s: left-padded batch max |dlogit| %g", model, df);
    cr_expect_leq(di, tol, "%s: KV-cache decode max |dlogit| %g", model, di);
    cr_expect_leq(ds, tol, "%s: shared prefix max |dlogit| %g", model, ds);
    golden_close(&g);
}

Test(opt, golden_pre_ln) { check_model("pre-ln"); }
Test(opt, golden_post_ln_project_in_out) { check_model("post-ln"); }
Test(opt, golden_gelu_no_bias_no_affine_untied) { check_model("variant"); }

Test(opt, config_and_param_count) {
    const char *names[] = {"pre-ln", "post-ln", "variant"};
    for (int i = 0; i < 3; i++) {
        OptModel m;
        char path[256];
        snprintf(path, sizeof path, FIX "/%s", names[i]);
        cr_assert_eq(opt_load(&m, path), ST_OK, "%s", status_message());
        // every stored tensor is a parameter (a tied head is not stored)
        snprintf(path, sizeof path, FIX "/%s/model.safetensors", names[i]);
        SafetensorsFile f;
        tu_open_safetensors(&f, path);
        int64_t n = 0;
        for (size_t j = 0; j < f.n; j++) {
            int64_t k = 1;
            for (int d = 0; d < f.tensors[j].ndim; d++) k *= f.tensors[j].shape[d];
            n += k;
        }
        cr_expect_eq(opt_param_count(&m), n, "%s: %lld parameters, the file holds %lld", names[i],
                     (long long)opt_param_count(&m), (long long)n);
        cr_expect_eq(m.cfg.head_dim, m.cfg.dim / m.cfg.n_heads);
        cr_expect_eq(m.cfg.pad_token_id, 1);
        cr_expect_eq(m.cfg.eos_token_id, 2);
        cr_expect_str_eq(m.source_dtype, "f32");
        safetensors_close(&f);
        if (i == 1) {
            cr_expect(!m.cfg.pre_norm && !m.cfg.final_norm && m.cfg.embed_dim == 16 && m.project_in.data);
        }
        if (i == 2) {
            cr_expect(m.cfg.act == ACT_GELU && !m.cfg.bias && !m.cfg.ln_affine && !m.cfg.tie_embeddings);
            cr_expect(m.lm_head.data != m.tok_embd.data);
        }
        opt_free(&m);
    }
}

// ---- checkpoints with other names, broken ones ------------------------------------

// Rewrites fixture `model` into a fresh temp dir (config.json beside it), with
// each tensor name's leading `strip` removed; `drop` (a full name) left out;
// `shrink` (a full name) stored one row short.
static void rewrite(const char *model, char *dir, size_t n, const char *strip, const char *drop, const char *shrink) {
    char src[256], path[600];
    snprintf(src, sizeof src, FIX "/%s", model);
    tu_make_temp_dir(dir, n, "opt");
    snprintf(path, sizeof path, "%s/config.json", src);
    char *cfg = tu_read_text(path, NULL);
    tu_write_file_in(dir, "config.json", cfg);
    free(cfg);
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    SafetensorsFile f;
    tu_open_safetensors(&f, path);
    const char **names = calloc(f.n, sizeof *names);
    Tensor *ts = calloc(f.n, sizeof *ts);
    size_t k = 0;
    for (size_t i = 0; i < f.n; i++) {
        const char *name = f.tensors[i].name;
        if (drop && strcmp(name, drop) == 0) continue;
        cr_assert_eq(safetensors_view(&f, &f.tensors[i], &ts[k]), ST_OK, "%s", status_message());
        if (shrink && strcmp(name, shrink) == 0) ts[k] = tensor_rows(&ts[k], 0, ts[k].shape[0] - 1);
        size_t sl = strlen(strip);
        names[k++] = strncmp(name, strip, sl) == 0 ? name + sl : name;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    cr_assert_eq(safetensors_write(path, names, ts, k), ST_OK, "%s", status_message());
    free(names), free(ts);
    safetensors_close(&f);
}

Test(opt, load_without_model_prefix) {
    const char *strips[] = {"model.", "model.decoder."}; // "decoder.layers.0..." and bare "layers.0..."
    for (int i = 0; i < 2; i++) {
        char dir[256];
        rewrite("post-ln", dir, sizeof dir, strips[i], NULL, NULL);
        char path[300];
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        SafetensorsFile f;
        tu_open_safetensors(&f, path);
        cr_assert_null(safetensors_find(&f, "model.decoder.embed_tokens.weight"));
        safetensors_close(&f);
        Golden g;
        golden_open(&g, "post-ln", "case0");
        OptModel fixture = g.m;
        cr_assert_eq(opt_load(&g.m, dir), ST_OK, "%s", status_message());
        float d = full_diff(&g);
        cr_expect_leq(d, TOL * g.scale, "stripped '%s': max |dlogit| %g", strips[i], d);
        opt_free(&fixture);
        golden_close(&g);
        tu_remove_dir(dir);
    }
}

Test(opt, load_errors_name_file_and_tensor) {
    char dir[256];
    OptModel m;
    rewrite("pre-ln", dir, sizeof dir, "", "model.decoder.layers.1.fc2.bias", NULL);
    tu_expect_err(opt_load(&m, dir), ST_FORMAT, "model.safetensors", "missing tensor", "layers.1.fc2.bias");
    tu_remove_dir(dir);

    rewrite("pre-ln", dir, sizeof dir, "", NULL, "model.decoder.layers.0.fc1.weight");
    tu_expect_err(opt_load(&m, dir), ST_FORMAT, "model.safetensors", "model.decoder.layers.0.fc1.weight",
                  "has shape [63, 32], config.json implies [64, 32]");
    tu_remove_dir(dir);

    // project_in is required when word_embed_proj_dim != hidden_size
    rewrite("post-ln", dir, sizeof dir, "", "model.decoder.project_in.weight", NULL);
    tu_expect_err(opt_load(&m, dir), ST_FORMAT, "model.safetensors", "project_in.weight", NULL);
    tu_remove_dir(dir);

    // an untied head needs lm_head.weight
    rewrite("variant", dir, sizeof dir, "", "lm_head.weight", NULL);
    tu_expect_err(opt_load(&m, dir), ST_FORMAT, "model.safetensors", "'lm_head.weight'", NULL);
    tu_remove_dir(dir);

    // a truncated file
    rewrite("pre-ln", dir, sizeof dir, "", NULL, NULL);
    char path[300];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t len;
    uint8_t *bytes = tu_read_file(path, &len);
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    cr_assert_eq(fwrite(bytes, 1, len / 2, fp), len / 2);
    fclose(fp);
    free(bytes);
    Status st = opt_load(&m, dir);
    cr_expect_neq(st, ST_OK);
    cr_expect(strstr(status_message(), "model.safetensors") != NULL, "message lacks the file: %s", status_message());
    cr_log_info("truncated safetensors: %s: %s", status_name(st), status_message());
    tu_remove_dir(dir);

    // config.json: a bad activation, a missing key, a wrong type, heads that do not divide
    struct {
        const char *from, *to;
        Status code;
        const char *needle;
    } cases[] = {
        {"\"activation_function\": \"relu\"", "\"activation_function\": \"swish\"", ST_UNSUPPORTED, "'swish'"},
        {"\"ffn_dim\"", "\"ffn_dimension\"", ST_FORMAT, "missing key 'ffn_dim'"},
        {"\"do_layer_norm_before\": true", "\"do_layer_norm_before\": \"yes\"", ST_FORMAT, "do_layer_norm_before"},
        {"\"num_attention_heads\": 4", "\"num_attention_heads\": 5", ST_FORMAT, "num_attention_heads"},
        {"\"model_type\": \"opt\"", "\"model_type\": \"llama\"", ST_UNSUPPORTED, "model_type"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rewrite("pre-ln", dir, sizeof dir, "", NULL, NULL);
        snprintf(path, sizeof path, "%s/config.json", dir);
        tu_replace_in_file(path, cases[i].from, cases[i].to);
        tu_expect_err(opt_load(&m, dir), cases[i].code, "config.json", cases[i].needle, NULL);
        tu_remove_dir(dir);
    }
    tu_expect_err(opt_load(&m, "/nonexistent-opt-dir"), ST_IO, "/nonexistent-opt-dir", NULL, NULL);
}

Test(opt, forward_rejects_bad_input) {
    OptModel m;
    cr_assert_eq(opt_load(&m, FIX "/pre-ln"), ST_OK, "%s", status_message());
    int P = m.cfg.max_position, V = m.cfg.vocab_size;
    OptSession s;
    cr_assert_eq(opt_session_init(&s, &m, 1, P + 5, CPU), ST_OK, "%s", status_message());
    Tensor logits;
    cr_assert_eq(tensor_alloc_2d(&logits, DT_F32, CPU, P + 4, V), ST_OK);
    int32_t ids[64] = {0}, mask[64];
    for (int i = 0; i < 64; i++) ids[i] = 5, mask[i] = 1;
    ids[1] = V;
    tu_expect_err(opt_forward(&m, &s, ids, NULL, 2, LOGITS_NONE, NULL), ST_USAGE, "outside the vocabulary", NULL, NULL);
    ids[1] = 5;
    mask[0] = 2;
    tu_expect_err(opt_forward(&m, &s, ids, mask, 2, LOGITS_NONE, NULL), ST_USAGE, "0 or 1", NULL, NULL);
    mask[0] = 1;
    Tensor wrong = tensor_rows(&logits, 0, 1);
    tu_expect_err(opt_forward(&m, &s, ids, NULL, 2, LOGITS_ALL, &wrong), ST_USAGE, "logits must be", NULL, NULL);
    // positions: P real tokens fit, one more does not; pads take no position
    for (int i = 0; i < 4; i++) mask[i] = 0;
    cr_assert_eq(opt_forward(&m, &s, ids, mask, P + 4, LOGITS_NONE, NULL), ST_OK, "%s", status_message());
    tu_expect_err(opt_forward(&m, &s, ids, NULL, 1, LOGITS_NONE, NULL), ST_USAGE, "max_position_embeddings", NULL, NULL);
    opt_session_truncate(&s, P + 3); // one real token less: room for one more
    cr_assert_eq(s.n_real[0], P - 1);
    cr_assert_eq(opt_forward(&m, &s, ids, NULL, 1, LOGITS_NONE, NULL), ST_OK, "%s", status_message());
    opt_session_reset(&s);
    tu_expect_err(opt_forward(&m, &s, ids, NULL, P + 1, LOGITS_NONE, NULL), ST_USAGE, "max_position_embeddings", NULL,
                  NULL);
    // capacity
    OptSession small;
    cr_assert_eq(opt_session_init(&small, &m, 1, 3, CPU), ST_OK);
    tu_expect_err(opt_forward(&m, &small, ids, NULL, 4, LOGITS_NONE, NULL), ST_USAGE, "capacity", NULL, NULL);
    OptSession two;
    cr_assert_eq(opt_session_init(&two, &m, 2, 3, CPU), ST_OK);
    tu_expect_err(opt_session_attach(&small, &two, 1), ST_USAGE, "one sequence", NULL, NULL);
    opt_session_free(&two);
    opt_session_free(&small);
    tensor_free(&logits);
    opt_session_free(&s);
    opt_free(&m);
}

// ---- tokenizer -------------------------------------------------------------

static void expect_ids(const TokenList *got, json_t *want, const char *text, const char *what) {
    size_t n = json_array_size(want);
    bool same = got->n == n;
    for (size_t i = 0; same && i < n; i++) same = got->ids[i] == json_integer_value(json_array_get(want, i));
    char g[512] = "", w[512] = "";
    for (size_t i = 0; i < got->n && strlen(g) < 480; i++) snprintf(g + strlen(g), sizeof g - strlen(g), " %d", got->ids[i]);
    for (size_t i = 0; i < n && strlen(w) < 480; i++)
        snprintf(w + strlen(w), sizeof w - strlen(w), " %lld", (long long)json_integer_value(json_array_get(want, i)));
    cr_expect(same, "'%s' (%s): got [%s], transformers [%s]", text, what, g, w);
}

Test(opt, tokenizer_matches_hf) {
    Tokenizer *t;
    cr_assert_eq(tokenizer_load_for_model(&t, FIX "/pre-ln"), ST_OK, "%s", status_message());
    cr_expect_str_eq(tokenizer_kind(t), "byte-level BPE");
    json_error_t err;
    json_t *root = json_load_file(FIX "/tokenizer_golden.json", 0, &err);
    cr_assert_not_null(root, "%s", err.text);
    size_t i;
    json_t *c;
    int n = 0;
    json_array_foreach(root, i, c) {
        const char *text = json_string_value(json_object_get(c, "text"));
        for (int special = 0; special < 2; special++) {
            TokenList got = {0};
            Status st = tokenizer_encode(t, text, strlen(text), special, &got);
            cr_expect_eq(st, ST_OK, "'%s': %s", text, status_message());
            if (st == ST_OK) expect_ids(&got, json_object_get(c, special ? "ids_special" : "ids"), text,
                                        special ? "with special tokens" : "without");
            if (st == ST_OK && !special) { // decode round trip (byte-level: lossless)
                char *back = NULL;
                size_t blen = 0;
                cr_expect_eq(tokenizer_decode(t, got.ids, got.n, false, &back, &blen), ST_OK, "%s", status_message());
                cr_expect(back && blen == strlen(text) && memcmp(back, text, blen) == 0, "decode of '%s' gave '%s'", text,
                          back ? back : "(null)");
                free(back);
            }
            token_list_free(&got);
        }
        n++;
    }
    cr_expect_geq(n, 10);
    json_decref(root);
    tokenizer_free(t);
}

// ---- a device, when this build and machine have one --------------------------------

Test(opt, cuda_matches_cpu) {
    if (!ops_backend_available(DEV_CUDA)) cr_skip_test("no CUDA backend or device");
    const char *names[] = {"pre-ln", "post-ln", "variant"};
    const Device GPU = {DEV_CUDA, 0};
    for (int i = 0; i < 3; i++) {
        Golden g;
        golden_open(&g, names[i], "prefix");
        cr_assert_eq(opt_to_device(&g.m, GPU, DT_F32), ST_OK, "%s", status_message());
        // f32 weights on the device: the same as the CPU up to TF32 attention (~1e-3 relative)
        OptSession base, s;
        int P = 6, n = g.n_seq, T = g.T, V = g.V;
        cr_assert_eq(opt_session_init(&base, &g.m, 1, P, GPU), ST_OK, "%s", status_message());
        cr_assert_eq(opt_session_init(&s, &g.m, n, T, GPU), ST_OK, "%s", status_message());
        Tensor logits;
        cr_assert_eq(tensor_alloc_2d(&logits, DT_F32, CPU, (int64_t)n * T, V), ST_OK);
        cr_assert_eq(opt_forward(&g.m, &s, g.ids, g.mask, T, LOGITS_ALL, &logits), ST_OK, "%s", status_message());
        float d = 0.0f;
        for (int b = 0; b < n; b++)
            for (int t = 0; t < T; t++) d = worse(d, row_diff(&g, tensor_row_f32(&logits, (int64_t)b * T + t), b, t));
        // shared prefix + decode one token at a time with LOGITS_LAST
        Tensor pl = tensor_rows(&logits, 0, 1);
        cr_assert_eq(opt_forward(&g.m, &base, g.ids, g.mask, P, LOGITS_LAST, &pl), ST_OK, "%s", status_message());
        d = worse(d, row_diff(&g, pl.data, 0, P - 1));
        opt_session_reset(&s);
        cr_assert_eq(opt_session_attach(&s, &base, P), ST_OK, "%s", status_message());
        int32_t ids[8], mask[8];
        Tensor one = tensor_rows(&logits, 0, n);
        for (int t = P; t < T; t++) {
            for (int b = 0; b < n; b++) ids[b] = g.ids[b * T + t], mask[b] = g.mask[b * T + t];
            cr_assert_eq(opt_forward(&g.m, &s, ids, mask, 1, LOGITS_LAST, &one), ST_OK, "%s", status_message());
            for (int b = 0; b < n; b++) d = worse(d, row_diff(&g, tensor_row_f32(&one, b), b, t));
        }
        cr_log_info("opt %s on CUDA (f32 weights): max|dlogit| %.2e (max|logit| %.2f)", names[i], d, g.scale);
        cr_expect_leq(d, 2e-3f * g.scale, "%s on CUDA: max |dlogit| %g", names[i], d);
        opt_session_free(&s);
        opt_session_free(&base);
        tensor_free(&logits);
        golden_close(&g);
        // bf16 weights: loose
        golden_open(&g, names[i], "case0");
        cr_assert_eq(opt_to_device(&g.m, GPU, DT_BF16), ST_OK, "%s", status_message());
        cr_assert_eq(opt_session_init(&s, &g.m, n, g.T, GPU), ST_OK, "%s", status_message());
        cr_assert_eq(tensor_alloc_2d(&logits, DT_F32, CPU, (int64_t)n * g.T, V), ST_OK);
        cr_assert_eq(opt_forward(&g.m, &s, g.ids, g.mask, g.T, LOGITS_ALL, &logits), ST_OK, "%s", status_message());
        d = 0.0f;
        for (int b = 0; b < n; b++)
            for (int t = 0; t < g.T; t++) d = worse(d, row_diff(&g, tensor_row_f32(&logits, (int64_t)b * g.T + t), b, t));
        cr_log_info("opt %s on CUDA (bf16 weights): max|dlogit| %.2e", names[i], d);
        cr_expect_leq(d, 0.1f * g.scale, "%s on CUDA bf16: max |dlogit| %g", names[i], d);
        opt_session_free(&s);
        tensor_free(&logits);
        golden_close(&g);
    }
}
