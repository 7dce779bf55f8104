// Contextual sparsity (Lingua2+Contextual's model half) on the tiny Llama-3
// fixture: a sparse view keeping every neuron equals the dense model; one whose
// predictor ranks neurons by its bias alone keeps the first k and equals the
// prefix-width view of k channels (an independent path through the FFN);
// the predictor's BCE and gradients against finite differences; training,
// recall, the artifact round trip and resume; bad predictors named. The
// command-line half (prepare, eval with LLMLingua-2) is at the end.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elastic/ffn_predictor.h"
#include "io/h5.h"
#include "models/encoder.h"
#include "runtime/rng.h"
#include "test_util.h"

#define TINY "tests/fixtures/tiny-llama3-gqa"

static LlamaModel g_m;

static void setup(void) { cr_assert_eq(llama_load(&g_m, TINY), ST_OK, "%s", status_message()); }
static void teardown(void) { llama_free(&g_m); }

TestSuite(contextual, .init = setup, .fini = teardown, .timeout = 240);

// Random predictors for the model (R hidden), f32 arrays.
static void random_predictors(FfnPredictors *p, int R, uint64_t seed) {
    const LlamaConfig *c = &g_m.cfg;
    int L = c->n_layers, D = c->dim, F = c->ffn_dim;
    memset(p, 0, sizeof *p);
    p->n_layers = L, p->rank = R, p->dim = D, p->ffn = F, p->threshold = 0.1f;
    p->w1 = malloc(sizeof(float) * (size_t)(L * R * D));
    p->b1 = malloc(sizeof(float) * (size_t)(L * R));
    p->w2 = malloc(sizeof(float) * (size_t)(L * F * R));
    p->b2 = malloc(sizeof(float) * (size_t)(L * F));
    p->active = calloc((size_t)L, sizeof(double));
    p->recall = calloc((size_t)L * FFN_N_DENSITIES, sizeof(double));
    p->val_bce = calloc((size_t)L, sizeof(double));
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < L * R * D; i++) p->w1[i] = 0.2f * rng_normal(&r);
    for (int i = 0; i < L * R; i++) p->b1[i] = 0.1f * rng_normal(&r);
    for (int i = 0; i < L * F * R; i++) p->w2[i] = 0.2f * rng_normal(&r);
    for (int i = 0; i < L * F; i++) p->b2[i] = 0.1f * rng_normal(&r);
}

static void tokens(int32_t *ids, int n, uint64_t seed) {
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)rng_below(&r, 256);
}

Test(contextual, every_neuron_kept_equals_dense) {
    FfnPredictors p;
    random_predictors(&p, 16, 1);
    FfnPredictor *ly;
    cr_assert_eq(ffn_sparsity_build(&g_m, &p, &ly), ST_OK, "%s", status_message());
    FfnSparsity sp = {.k = g_m.cfg.ffn_dim, .layers = ly};
    LlamaView v = {.sparse = &sp};
    int32_t ids[2 * 9];
    tokens(ids, 18, 7);
    Tensor dense, sparse;
    tu_logits(&g_m, NULL, ids, 2, 9, &dense);
    tu_logits(&g_m, &v, ids, 2, 9, &sparse);
    float d = tu_max_abs_diff(dense.data, sparse.data, (size_t)tu_numel(&dense));
    cr_expect(d < 2e-5f * (1 + tu_max_abs(dense.data, (size_t)tu_numel(&dense))), "k = F differs from dense by %g", d);
    tensor_free(&dense), tensor_free(&sparse);
    ffn_sparsity_free(ly, g_m.cfg.n_layers);
    ffn_predictors_free(&p);
}

// w2 = 0 and b2[j] = -j: every token keeps neurons 0..k-1, the prefix a width view runs.
Test(contextual, bias_ranked_predictor_equals_prefix_width_view) {
    const LlamaConfig *c = &g_m.cfg;
    FfnPredictors p;
    random_predictors(&p, 8, 2);
    memset(p.w2, 0, sizeof(float) * (size_t)(c->n_layers * c->ffn_dim * p.rank));
    for (int l = 0; l < c->n_layers; l++)
        for (int j = 0; j < c->ffn_dim; j++) p.b2[l * c->ffn_dim + j] = -(float)j;
    FfnPredictor *ly;
    cr_assert_eq(ffn_sparsity_build(&g_m, &p, &ly), ST_OK, "%s", status_message());
    int32_t ids[3 * 7];
    tokens(ids, 21, 9);
    int ks[] = {1, 37, 64, 127};
    for (size_t t = 0; t < sizeof ks / sizeof *ks; t++) {
        int k = ks[t];
        FfnSparsity sp = {.k = k, .layers = ly};
        LlamaView v = {.sparse = &sp};
        LlamaWidth w[8];
        for (int l = 0; l < c->n_layers; l++) w[l] = (LlamaWidth){c->n_kv_heads, k};
        LlamaView pv = {.widths = w};
        Tensor a, b, dense;
        tu_logits(&g_m, &v, ids, 3, 7, &a);
        tu_logits(&g_m, &pv, ids, 3, 7, &b);
        tu_logits(&g_m, NULL, ids, 3, 7, &dense);
        size_t n = (size_t)tu_numel(&a);
        float d = tu_max_abs_diff(a.data, b.data, n), far = tu_max_abs_diff(a.data, dense.data, n);
        cr_expect(d < 2e-5f * (1 + tu_max_abs(b.data, n)), "k = %d: sparse vs prefix view differ by %g", k, d);
        cr_expect(far > 1e-3f, "k = %d: the sparse FFN should differ from the dense one (%g)", k, far);
        tensor_free(&a), tensor_free(&b), tensor_free(&dense);
    }
    ffn_sparsity_free(ly, c->n_layers);
    ffn_predictors_free(&p);
}

Test(contextual, views_refuse_what_they_cannot_run) {
    const LlamaConfig *c = &g_m.cfg;
    FfnPredictors p;
    random_predictors(&p, 8, 3);
    FfnPredictor *ly;
    cr_assert_eq(ffn_sparsity_build(&g_m, &p, &ly), ST_OK, "%s", status_message());
    FfnSparsity sp = {.k = c->ffn_dim + 1, .layers = ly};
    LlamaView v = {.sparse = &sp};
    tu_expect_err(llama_view_validate(&g_m, &v), ST_USAGE, "neurons kept", NULL, NULL);
    sp.k = 4;
    LlamaWidth w[8];
    for (int l = 0; l < c->n_layers; l++) w[l] = (LlamaWidth){c->n_kv_heads, c->ffn_dim / 2};
    v.widths = w;
    tu_expect_err(llama_view_validate(&g_m, &v), ST_USAGE, "whole width", NULL, NULL);
    v.widths = NULL;
    Tensor keep = ly[1].w2;
    ly[1].w2 = tensor_rows(&keep, 0, c->ffn_dim - 1); // a predictor of the wrong shape
    tu_expect_err(llama_view_validate(&g_m, &v), ST_USAGE, "layer 1", "predictor", NULL);
    ly[1].w2 = keep;
    cr_expect_eq(llama_view_validate(&g_m, &v), ST_OK, "%s", status_message());
    ffn_sparsity_free(ly, c->n_layers);
    ffn_predictors_free(&p);
}

Test(contextual, bce_and_gradients_against_finite_differences) {
    int D = 6, F = 5, R = 4, n = 3;
    int64_t np = (int64_t)R * D + R + F * R + F;
    float *params = malloc(sizeof(float) * (size_t)np), *grad = malloc(sizeof(float) * (size_t)np);
    float x[3 * 6];
    uint8_t y[3 * 5];
    Rng r;
    rng_seed(&r, 11);
    for (int64_t i = 0; i < np; i++) params[i] = 0.5f * rng_normal(&r);
    for (int i = 0; i < n * D; i++) x[i] = rng_normal(&r);
    for (int i = 0; i < n * F; i++) y[i] = (uint8_t)rng_below(&r, 2);
    double loss;
    cr_assert_eq(ffn_predictor_loss_grad(params, D, F, R, x, y, n, &loss, grad), ST_OK, "%s", status_message());
    // the loss in double from the definition
    double want = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < F; j++) {
            double z = params[R * D + R + F * R + j];
            for (int h = 0; h < R; h++) {
                double a = params[R * D + h];
                for (int d = 0; d < D; d++) a += (double)params[h * D + d] * x[i * D + d];
                z += (a > 0 ? a : 0) * params[R * D + R + j * R + h];
            }
            double s = 1 / (1 + exp(-z));
            want -= y[i * F + j] ? log(s) : log(1 - s);
        }
    cr_expect(fabs(loss - want) < 1e-5 * (1 + fabs(want)), "BCE %.9g, want %.9g", loss, want);
    // every parameter's gradient by central differences (in double through the C code's f32 loss)
    float *shift = malloc(sizeof(float) * (size_t)np), *g2 = malloc(sizeof(float) * (size_t)np);
    double worst = 0;
    for (int64_t i = 0; i < np; i++) {
        memcpy(shift, params, sizeof(float) * (size_t)np);
        double h = 1e-2, lp, lm;
        shift[i] = params[i] + (float)h;
        ffn_predictor_loss_grad(shift, D, F, R, x, y, n, &lp, g2);
        shift[i] = params[i] - (float)h;
        ffn_predictor_loss_grad(shift, D, F, R, x, y, n, &lm, g2);
        double fd = (lp - lm) / (2 * h), e = fabs(fd - grad[i]) / (1e-2 + fabs(fd));
        if (e > worst) worst = e;
    }
    cr_expect(worst < 2e-2, "gradient vs finite differences: worst relative error %g", worst);
    // the exported BCE: the same sum, and dz = sigmoid(z) - y
    float z[4] = {-30.0f, -0.5f, 0.25f, 40.0f}, dz[4];
    uint8_t t[4] = {1, 0, 1, 0};
    double sum = ffn_bce(z, t, 1, 4, dz, 1.0f), ref = 0;
    for (int j = 0; j < 4; j++) {
        double zz = z[j], s = 1 / (1 + exp(-zz));
        ref += t[j] ? log1p(exp(-zz)) : zz + log1p(exp(-zz)); // -log s, -log(1 - s)
        cr_expect(fabs(dz[j] - (s - t[j])) < 1e-6, "dz[%d] = %g, want %g", j, dz[j], s - t[j]);
    }
    cr_expect(fabs(sum - ref) < 1e-4 * ref, "BCE %g, want %g", sum, ref);
    free(params), free(grad), free(shift), free(g2);
}

Test(contextual, labels_follow_the_rules) {
    cr_expect(ffn_label(0.2f, false, 0.1f) && ffn_label(-0.2f, false, 0.1f) && !ffn_label(0.05f, false, 0.1f));
    // the artifact's label is "inactive": silu < 0.001, negatives included
    cr_expect(ffn_label(-0.2f, true, 0.1f) && ffn_label(0.0009f, true, 0.1f) && !ffn_label(0.001f, true, 0.1f));
}

Test(contextual, train_store_load_and_resume) {
    char dir[256], art[400], resume[400], out[8192];
    tu_make_temp_dir(dir, sizeof dir, "ctxs");
    snprintf(art, sizeof art, "%s/art.h5", dir);
    snprintf(resume, sizeof resume, "%s/partial.h5", dir);
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "elasticize --model " TINY " --tokenizer tests/fixtures/train/byte-tokenizer.json "
                            "--calib tests/fixtures/train/text.txt --samples 4 --seq 16 --keep 0 --out %s --quiet", art),
                 0, "%s", out);
    int nw = 12, seq = 16;
    int32_t ids[12 * 16];
    tokens(ids, nw * seq, 5);
    FfnTrainOptions o = ffn_train_defaults();
    o.rank = 8, o.epochs = 3, o.batch = 64, o.val_windows = 3, o.batch_windows = 5, o.resume = resume;
    o.mem_budget = 1; // one layer per recording group
    FfnPredictors a, b, c;
    cr_assert_eq(ffn_predictors_train(&g_m, ids, nw, seq, &o, &a), ST_OK, "%s", status_message());
    int L = g_m.cfg.n_layers, F = g_m.cfg.ffn_dim;
    for (int l = 0; l < L; l++) {
        cr_expect(a.active[l] >= 0 && a.active[l] <= 1, "active share %g", a.active[l]);
        for (int q = 0; q + 1 < FFN_N_DENSITIES; q++) // more neurons kept, more active ones found
            cr_expect(a.recall[l * FFN_N_DENSITIES + q] <= a.recall[l * FFN_N_DENSITIES + q + 1] + 1e-12);
        cr_expect(isfinite(a.val_bce[l]) && a.val_bce[l] > 0);
    }
    // a rerun with the resume file reads every layer back: the same predictors
    cr_assert_eq(ffn_predictors_train(&g_m, ids, nw, seq, &o, &b), ST_OK, "%s", status_message());
    cr_expect_eq(memcmp(a.w2, b.w2, sizeof(float) * (size_t)(L * F * 8)), 0, "resumed predictors differ");
    cr_expect_eq(memcmp(a.recall, b.recall, sizeof(double) * (size_t)(L * FFN_N_DENSITIES)), 0);
    // other settings do not reuse the file; the artifact's full-batch steps split into equal micro-batches
    o.epochs = 2, o.batch = 0, o.steps_per_epoch = 2, o.max_micro = 40; // 144 training tokens: batches of 72 = 2 x 36
    cr_assert_eq(ffn_predictors_train(&g_m, ids, nw, seq, &o, &c), ST_OK, "%s", status_message());
    cr_expect_neq(memcmp(a.w2, c.w2, sizeof(float) * (size_t)(L * F * 8)), 0, "other settings reused the file");
    ffn_predictors_free(&c);
    // the artifact round trip
    cr_assert_eq(ffn_predictors_save(art, "baselines/x/paper/predictor", &g_m.cfg, &a), ST_OK, "%s", status_message());
    cr_assert_eq(ffn_predictors_load(art, "baselines/x/paper/predictor", &g_m.cfg, &c), ST_OK, "%s", status_message());
    cr_expect_eq(memcmp(a.w1, c.w1, sizeof(float) * (size_t)(L * 8 * g_m.cfg.dim)), 0);
    cr_expect_eq(memcmp(a.b2, c.b2, sizeof(float) * (size_t)(L * F)), 0);
    cr_expect_eq(c.rank, 8);
    ffn_predictors_free(&c);
    // a predictor of the wrong shape is named
    H5Store *f;
    cr_assert_eq(h5_open_update(&f, art), ST_OK);
    float junk[8 * 3] = {0};
    cr_assert_eq(h5_delete(f, "baselines/x/paper/predictor/b2"), ST_OK);
    cr_assert_eq(h5_write_f32(f, "baselines/x/paper/predictor/b2", 2, (int64_t[]){8, 3}, junk), ST_OK);
    cr_assert_eq(h5_commit(f), ST_OK);
    Status st = ffn_predictors_load(art, "baselines/x/paper/predictor", &g_m.cfg, &c);
    cr_expect_neq(st, ST_OK);
    cr_expect(strstr(status_message(), "art.h5") && strstr(status_message(), "b2"), "%s", status_message());
    tu_expect_err(ffn_predictors_load(art, "baselines/y/paper/predictor", &g_m.cfg, &c), ST_USAGE, "prepare", NULL,
                  NULL);
    ffn_predictors_free(&a), ffn_predictors_free(&b);
    tu_remove_dir(dir);
}

// ---- from the command line: prepare and eval --mode Lingua2+Contextual -------------------

#define ARC "tests/fixtures/datasets/hf_arc_easy.jsonl"

static char c_dir[256], c_llm[512], c_art[512], c_enc[512], c_seq[512], c_cl[512];

static void cli_setup(void) {
    tu_make_temp_dir(c_dir, sizeof c_dir, "ctxcli");
    tu_make_byte_llm_artifact(c_dir, c_llm, sizeof c_llm, c_art, sizeof c_art);
    tu_make_tiny_encoder_as(c_dir, "clf", 512, HEAD_TOKEN, c_enc, sizeof c_enc);
    tu_make_tiny_encoder_as(c_dir, "seqclf", 512, HEAD_SEQUENCE, c_seq, sizeof c_seq);
    tu_tiny_tiktoken(-1, NULL, c_cl, sizeof c_cl);
}

static void cli_teardown(void) {
    remove(c_cl);
    tu_remove_dir(c_dir);
}

TestSuite(contextual_cli, .init = cli_setup, .fini = cli_teardown, .timeout = 240);

#define EVAL "eval --mode Lingua2+Contextual --dataset ARC_E --data " ARC " --limit 4 --model %s --artifact %s "


Test(contextual_cli, prepare_then_eval) {
    static char out[32768];
    char res[700], p1[700], p2[700];
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "prepare --mode Lingua2+Contextual --model %s --artifact %s --calib "
                            "tests/fixtures/train/text.txt --samples 10 --seq 16 --quiet", c_llm, c_art),
                 0, "%s", out);
    cr_expect(strstr(out, "mean over layers") && strstr(out, "recall"), "%s", out);
    snprintf(res, sizeof res, "%s/res", c_dir);
    snprintf(p1, sizeof p1, "%s/sparse.jsonl", c_dir);
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            EVAL "--prefill-slo 0.5 --decode-slo 0.5 --tlm %s --cl100k %s --results %s "
                                 "--predictions %s --quiet",
                            c_llm, c_art, c_enc, c_cl, res, p1),
                 0, "%s", out);
    char file[800];
    snprintf(file, sizeof file, "%s/llm_ARC_E.txt", res);
    size_t len;
    char *line = tu_read_text(file, &len);
    cr_expect(!strncmp(line, "ARC_E llm Lingua2+Contextual 0.5 0.5 ", 37), "%s", line);
    free(line);
    char *preds = tu_read_text(p1, &len);
    cr_expect(strstr(preds, "\"prompt_ratio\": 0.5"), "%s", preds);
    free(preds);
    // at (1.0, 1.0) nothing is compressed or sparse: the full model's scores
    snprintf(p1, sizeof p1, "%s/same.jsonl", c_dir);
    snprintf(p2, sizeof p2, "%s/full.jsonl", c_dir);
    cr_assert_eq(tu_run_bin(out, sizeof out, EVAL "--tlm %s --cl100k %s --predictions %s --quiet", c_llm, c_art, c_enc,
                            c_cl, p1),
                 0, "%s", out);
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "eval --dataset ARC_E --data " ARC " --limit 4 --model %s --predictions %s --quiet", c_llm,
                            p2),
                 0, "%s", out);
    double a[64], b[64];
    int na = tu_pred_scores(p1, a, 64), nb = tu_pred_scores(p2, b, 64);
    cr_expect(na == nb && na >= 8, "%d and %d scores", na, nb);
    for (int i = 0; i < na && i < nb; i++) cr_expect(fabs(a[i] - b[i]) < 1e-5, "score %d: %g vs %g", i, a[i], b[i]);
    // the density changes the answers' scores
    snprintf(p2, sizeof p2, "%s/dense-prompt.jsonl", c_dir);
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            EVAL "--prefill-slo 1.0 --decode-slo 0.5 --tlm %s --cl100k %s --predictions %s --quiet",
                            c_llm, c_art, c_enc, c_cl, p2),
                 0, "%s", out);
    nb = tu_pred_scores(p2, b, 64);
    double far = 0;
    for (int i = 0; i < na && i < nb; i++) far = fmax(far, fabs(a[i] - b[i]));
    cr_expect(far > 1e-4, "density 0.5 left every score as it was (%g)", far);
}

Test(contextual_cli, bad_input_is_named) {
    static char out[32768];
    // no predictors for the artifact's variant
    cr_expect_eq(tu_run_bin(out, sizeof out, EVAL "--compat artifact --tlm %s --cl100k %s --quiet", c_llm, c_art, c_enc,
                            c_cl),
                 2, "%s", out);
    cr_expect(strstr(out, "prepare --mode Lingua2+Contextual") && strstr(out, "artifact"), "%s", out);
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            "prepare --mode Lingua2+Contextual --model %s --artifact %s --calib "
                            "tests/fixtures/train/text.txt --samples 6 --seq 16 --compat artifact --quiet", c_llm, c_art),
                 0, "%s", out);
    // a classifier without a token-classification head
    cr_expect_neq(tu_run_bin(out, sizeof out, EVAL "--compat artifact --tlm %s --cl100k %s --quiet", c_llm, c_art,
                             c_seq, c_cl),
                  0, "%s", out);
    cr_expect(strstr(out, "token-classification"), "%s", out);
    // no cl100k file
    cr_expect_neq(tu_run_bin(out, sizeof out, EVAL "--compat artifact --tlm %s --cl100k %s/none --quiet", c_llm, c_art,
                             c_enc, c_dir),
                  0, "%s", out);
    cr_expect(strstr(out, "cl100k"), "%s", out);
    // --threshold is this policy's only
    cr_expect_eq(tu_run_bin(out, sizeof out,
                            "prepare --mode ShortGPT --model %s --artifact %s --calib tests/fixtures/train/text.txt "
                            "--threshold 0.2 --quiet", c_llm, c_art),
                 2, "%s", out);
    cr_expect(strstr(out, "--threshold"), "%s", out);
    // the artifact's variant evaluates
    cr_expect_eq(tu_run_bin(out, sizeof out,
                            EVAL "--compat artifact --prefill-slo 0.4 --decode-slo 0.6 --tlm %s --cl100k %s --quiet",
                            c_llm, c_art, c_enc, c_cl),
                 0, "%s", out);
}
