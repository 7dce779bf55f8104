// MobileBERT (models/encoder.h, models/mobilebert.c) against transformers 5.25
// (goldens from tests/reference/make_mobilebert_goldens.py, fp32, eval mode):
// four tiny models covering trigram input or not, the shared key/query
// bottleneck, use_bottleneck_attention, neither, no bottleneck, NoNorm and
// LayerNorm, the pooler (classifier_activation) or [CLS] read directly.
// Last hidden states and logits (1e-5 of their scale) of the packed batch (the
// goldens ran each sequence alone), the loss and every parameter's gradient
// (1e-4), freezing, finite differences, dropout, the Hugging Face round trip
// and bad configs.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "models/encoder.h"
#include "ops/ops.h"
#include "test_encoder_common.h"
#include "test_util.h"

#define DIR ENC_FIXTURES

static const char *const MODELS[] = {"mobilebert-tok", "mobilebert-seq", "mobilebert-seqcls", "mobilebert-ln"};
#define N_MODELS 4

// The model's parameter table next to the file's tensors: same count, same names.
Test(encoder_mobilebert, load_configs) {
    struct {
        const char *name;
        EncoderHead head;
        int labels, dim, inner, n_ffn;
        bool pooler, trigram, use_bottleneck, kq, uba, no_norm;
    } cases[] = {
        {"mobilebert-tok", HEAD_TOKEN, 2, 24, 16, 3, false, true, true, true, false, true},
        {"mobilebert-seq", HEAD_SEQUENCE, 3, 24, 16, 2, true, true, true, true, true, true},
        {"mobilebert-seqcls", HEAD_SEQUENCE, 2, 16, 16, 1, false, true, true, false, false, true},
        {"mobilebert-ln", HEAD_TOKEN, 2, 16, 16, 2, false, false, false, true, false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        Encoder m;
        enc_load(&m, cases[i].name);
        const EncoderConfig *c = &m.cfg;
        cr_expect_eq(c->arch, ENC_MOBILEBERT);
        cr_expect_eq(c->head, cases[i].head, "%s", cases[i].name);
        cr_expect_eq(c->num_labels, cases[i].labels, "%s", cases[i].name);
        cr_expect_eq(c->pooler, cases[i].pooler, "%s", cases[i].name);
        cr_expect_eq(c->dim, cases[i].dim, "%s", cases[i].name);
        cr_expect_eq(c->inner, cases[i].inner, "%s", cases[i].name);
        cr_expect_eq(c->head_dim, cases[i].inner / 4, "%s", cases[i].name);
        cr_expect_eq(c->n_ffn, cases[i].n_ffn, "%s", cases[i].name);
        cr_expect_eq(c->trigram, cases[i].trigram, "%s", cases[i].name);
        cr_expect_eq(c->use_bottleneck, cases[i].use_bottleneck, "%s", cases[i].name);
        cr_expect_eq(c->kq_shared_bottleneck, cases[i].kq, "%s", cases[i].name);
        cr_expect_eq(c->use_bottleneck_attention, cases[i].uba, "%s", cases[i].name);
        cr_expect_eq(c->no_norm, cases[i].no_norm, "%s", cases[i].name);
        cr_expect_eq(c->act, ACT_RELU);
        char path[256];
        snprintf(path, sizeof path, DIR "%s/model.safetensors", cases[i].name);
        SafetensorsFile f;
        tu_open_safetensors(&f, path);
        int n = encoder_params(&m, NULL);
        EncoderParam *ps = malloc((size_t)n * sizeof *ps);
        encoder_params(&m, ps);
        cr_expect_eq((size_t)n, f.n, "%s: %d parameters, the file holds %zu tensors", cases[i].name, n, f.n);
        size_t total = 0;
        for (int j = 0; j < n; j++) {
            char full[160];
            bool head = strncmp(ps[j].name, "classifier.", 11) == 0;
            snprintf(full, sizeof full, "%s%s", head ? "" : "mobilebert.", ps[j].name);
            cr_expect_not_null(safetensors_find(&f, full), "%s: %s not in the file", cases[i].name, full);
            total += (size_t)tensor_numel(ps[j].t);
        }
        cr_expect_eq(total, encoder_n_params(&m));
        free(ps);
        safetensors_close(&f);
        encoder_free(&m);
    }
}

static void check_forward(const char *name) {
    Encoder m;
    enc_load(&m, name);
    Golden gd;
    golden_open(&gd, name);
    EncoderSession *s;
    cr_assert_eq(encoder_session_new(&s, &m, 64), ST_OK, "%s", status_message());
    Tensor hidden;
    cr_assert_eq(encoder_hidden(s, &gd.b, &hidden), ST_OK, "%s", status_message());
    cr_assert_eq(hidden.shape[0], gd.b.n_tokens);
    cr_assert_eq(hidden.shape[1], m.cfg.dim);
    float *h = malloc((size_t)gd.b.n_tokens * (size_t)m.cfg.dim * sizeof *h);
    op_copy_to_host(h, &hidden);
    float eh = enc_check_close(&gd.g, "hidden", h, (int64_t)gd.b.n_tokens * m.cfg.dim, 1e-5f);
    int rows = m.cfg.head == HEAD_TOKEN ? gd.b.n_tokens : gd.b.n_seq;
    float *lg = malloc((size_t)rows * (size_t)m.cfg.num_labels * sizeof *lg);
    cr_assert_eq(encoder_logits(s, &gd.b, lg), ST_OK, "%s", status_message());
    float el = enc_check_close(&gd.g, "logits", lg, (int64_t)rows * m.cfg.num_labels, 1e-5f);
    cr_log_info("%s: hidden max rel err %.2e, logits %.2e", name, eh, el);
    // each sequence alone gives its rows of the packed batch (the trigram's edges are per sequence)
    for (int q = 0; q < gd.b.n_seq; q++) {
        int32_t cu1[2] = {0, gd.b.cu[q + 1] - gd.b.cu[q]};
        EncoderBatch one = {.ids = gd.b.ids + gd.b.cu[q], .types = gd.b.types + gd.b.cu[q], .cu = cu1, .n_seq = 1,
                            .n_tokens = cu1[1]};
        cr_assert_eq(encoder_hidden(s, &one, &hidden), ST_OK);
        float *h1 = malloc((size_t)cu1[1] * (size_t)m.cfg.dim * sizeof *h1);
        op_copy_to_host(h1, &hidden);
        float d = tu_max_abs_diff(h1, h + (size_t)gd.b.cu[q] * m.cfg.dim, (size_t)cu1[1] * m.cfg.dim);
        cr_expect(d <= 1e-5f * tu_max_abs(h1, (size_t)cu1[1] * m.cfg.dim), "%s: sequence %d alone differs by %g", name,
                  q, d);
        free(h1);
    }
    free(lg);
    free(h);
    encoder_session_free(s);
    safetensors_close(&gd.g);
    encoder_free(&m);
}

Test(encoder_mobilebert, forward) {
    for (int i = 0; i < N_MODELS; i++) check_forward(MODELS[i]);
}

// One step at loss_scale 1/counted: the loss and every trainable gradient vs torch (a parameter torch gives no
// gradient, being unused, must get zeros).
static void check_grads(const char *name, EncoderTrainOptions opt) {
    Encoder m;
    enc_load(&m, name);
    Golden gd;
    golden_open(&gd, name);
    EncoderTrain *t;
    cr_assert_eq(encoder_train_new(&t, &m, &opt, 64), ST_OK, "%s", status_message());
    encoder_train_zero_grads(t);
    double loss = 0;
    int64_t counted = 0;
    cr_assert_eq(encoder_train_step(t, &gd.b, gd.targets, 1.0f / (float)gd.counted, 0, &loss, &counted), ST_OK, "%s",
                 status_message());
    cr_assert_eq(counted, gd.counted);
    float ref = ((const float *)tu_tensor(&gd.g, "loss", DT_F32)->data)[0];
    cr_assert(fabs(loss / (double)counted - ref) <= 1e-5 * fabs(ref), "%s: loss %.7f vs torch %.7f", name,
              loss / counted, ref);
    int n = encoder_params(&m, NULL);
    EncoderParam *ps = malloc((size_t)n * sizeof *ps);
    encoder_params(&m, ps);
    float worst = 0;
    int unused = 0;
    for (int i = 0; i < n; i++) {
        Tensor *g = encoder_train_grad(t, i);
        bool frozen = (ps[i].layer < 0 && opt.freeze_embeddings) ||
                      (ps[i].layer >= 0 && ps[i].layer < m.cfg.n_layers && ps[i].layer < opt.freeze_below);
        if (frozen) {
            cr_expect_null(g, "%s: %s is frozen but has a gradient", name, ps[i].name);
            continue;
        }
        cr_assert_not_null(g, "%s: %s has no gradient", name, ps[i].name);
        char key[160];
        snprintf(key, sizeof key, "grad.%s", ps[i].name);
        if (!safetensors_find(&gd.g, key)) {
            unused++;
            float mx = tu_max_abs(g->data, (size_t)tensor_numel(g));
            cr_expect_eq(mx, 0.0f, "%s: %s is unused in transformers but has gradient %g", name, ps[i].name, mx);
            continue;
        }
        float e = enc_check_close(&gd.g, key, g->data, tensor_numel(g), 1e-4f);
        if (e > worst) worst = e;
    }
    cr_log_info("%s (freeze_below %d, embeddings %s): loss %.7f (torch %.7f), worst gradient rel err %.2e, %d unused",
                name, opt.freeze_below, opt.freeze_embeddings ? "frozen" : "trained", loss / counted, ref, worst,
                unused);
    free(ps);
    encoder_train_free(t);
    safetensors_close(&gd.g);
    encoder_free(&m);
}

Test(encoder_mobilebert, grads) {
    for (int i = 0; i < N_MODELS; i++) check_grads(MODELS[i], (EncoderTrainOptions){0});
}

Test(encoder_mobilebert, grads_frozen) {
    check_grads("mobilebert-tok", (EncoderTrainOptions){.freeze_below = 1, .freeze_embeddings = true});
    check_grads("mobilebert-seq", (EncoderTrainOptions){.freeze_below = 1});
    check_grads("mobilebert-ln", (EncoderTrainOptions){.freeze_below = 2, .freeze_embeddings = true});
}

// Central differences of the eval loss on single weights vs the backward.
Test(encoder_mobilebert, finite_differences) {
    const char *probe[] = {"embeddings.word_embeddings.weight",
                           "embeddings.embedding_transformation.weight",
                           "embeddings.LayerNorm.weight",
                           "encoder.layer.0.bottleneck.input.LayerNorm.bias",
                           "encoder.layer.0.bottleneck.attention.dense.weight",
                           "encoder.layer.0.attention.self.key.weight",
                           "encoder.layer.0.attention.self.value.weight",
                           "encoder.layer.1.ffn.0.intermediate.dense.bias",
                           "encoder.layer.1.ffn.1.output.LayerNorm.weight",
                           "encoder.layer.1.output.dense.weight",
                           "encoder.layer.1.output.bottleneck.LayerNorm.weight",
                           "pooler.dense.weight",
                           "classifier.weight"};
    for (int k = 0; k < N_MODELS; k++) {
        Encoder m;
        enc_load(&m, MODELS[k]);
        Golden gd;
        golden_open(&gd, MODELS[k]);
        EncoderTrain *t;
        cr_assert_eq(encoder_train_new(&t, &m, &(EncoderTrainOptions){0}, 64), ST_OK, "%s", status_message());
        encoder_train_zero_grads(t);
        cr_assert_eq(encoder_train_step(t, &gd.b, gd.targets, 1.0f, 0, NULL, NULL), ST_OK);
        int n = encoder_params(&m, NULL);
        EncoderParam *ps = malloc((size_t)n * sizeof *ps);
        encoder_params(&m, ps);
        int checked = 0;
        for (int i = 0; i < n; i++)
            for (size_t p = 0; p < sizeof probe / sizeof *probe; p++) {
                if (strcmp(ps[i].name, probe[p]) != 0) continue;
                // a row of the word table that the batch uses (at the trigram's three offsets)
                int64_t j = p == 0 ? (int64_t)gd.b.ids[3] * ps[i].t->shape[1] + 5 : 3 % tensor_numel(ps[i].t);
                float *w = (float *)ps[i].t->data + j;
                float w0 = *w, eps = 1e-3f; // (small: ReLU kinks)
                double lp, lm;
                *w = w0 + eps;
                cr_assert_eq(encoder_train_eval(t, &gd.b, gd.targets, &lp, NULL), ST_OK);
                *w = w0 - eps;
                cr_assert_eq(encoder_train_eval(t, &gd.b, gd.targets, &lm, NULL), ST_OK);
                *w = w0;
                double fd = (lp - lm) / (2 * eps), an = ((float *)encoder_train_grad(t, i)->data)[j];
                cr_log_info("%s %s[%lld]: finite difference %.6f, backward %.6f", MODELS[k], ps[i].name,
                            (long long)j, fd, an);
                cr_expect(fabs(fd - an) <= 2e-2 * fabs(an) + 2e-3, "%s %s[%lld]: finite difference %.6f vs %.6f",
                          MODELS[k], ps[i].name, (long long)j, fd, an);
                checked++;
            }
        cr_expect(checked >= 6, "%s: only %d probes", MODELS[k], checked);
        free(ps);
        encoder_train_free(t);
        safetensors_close(&gd.g);
        encoder_free(&m);
    }
}

// With dropout a seed gives the same step twice and another seed another one; eval has none.
// (mobilebert-tok: the dropout after output.bottleneck; mobilebert-ln: the two inside the block.)
Test(encoder_mobilebert, dropout_is_seeded) {
    enc_check_dropout_seeded("mobilebert-tok");
    enc_check_dropout_seeded("mobilebert-ln");
}

// Finite differences of a dropout step's loss (same seed, same masks) vs its backward: the masks
// are applied to the gradients where the forward applied them.
Test(encoder_mobilebert, dropout_backward) {
    const char *names[] = {"mobilebert-tok", "mobilebert-ln"};
    const char *probe[] = {"embeddings.position_embeddings.weight", "encoder.layer.0.attention.output.dense.weight",
                           "encoder.layer.0.output.dense.bias", "encoder.layer.1.intermediate.dense.weight"};
    for (int k = 0; k < 2; k++) {
        Encoder m;
        enc_load(&m, names[k]);
        Golden gd;
        golden_open(&gd, names[k]);
        EncoderTrain *t;
        cr_assert_eq(encoder_train_new(&t, &m, &(EncoderTrainOptions){.dropout = 0.2f}, 64), ST_OK);
        encoder_train_zero_grads(t);
        cr_assert_eq(encoder_train_step(t, &gd.b, gd.targets, 1.0f, 5, NULL, NULL), ST_OK);
        int n = encoder_params(&m, NULL);
        EncoderParam *ps = malloc((size_t)n * sizeof *ps);
        encoder_params(&m, ps);
        int64_t ng = encoder_train_grads(t)->shape[0];
        float *saved = malloc((size_t)ng * sizeof *saved);
        memcpy(saved, encoder_train_grads(t)->data, (size_t)ng * sizeof *saved);
        for (int i = 0; i < n; i++)
            for (size_t p = 0; p < sizeof probe / sizeof *probe; p++) {
                if (strcmp(ps[i].name, probe[p]) != 0) continue;
                int64_t j = 9 % tensor_numel(ps[i].t);
                float *w = (float *)ps[i].t->data + j;
                float w0 = *w, eps = 3e-3f;
                double lp, lm;
                memcpy(encoder_train_grads(t)->data, saved, (size_t)ng * sizeof *saved); // (steps accumulate)
                float an = ((float *)encoder_train_grad(t, i)->data)[j];
                *w = w0 + eps;
                cr_assert_eq(encoder_train_step(t, &gd.b, gd.targets, 1.0f, 5, &lp, NULL), ST_OK);
                *w = w0 - eps;
                cr_assert_eq(encoder_train_step(t, &gd.b, gd.targets, 1.0f, 5, &lm, NULL), ST_OK);
                *w = w0;
                double fd = (lp - lm) / (2 * eps);
                cr_expect(fabs(fd - an) <= 2e-2 * fabs(an) + 2e-3, "%s %s[%lld] with dropout: %.6f vs %.6f", names[k],
                          ps[i].name, (long long)j, fd, an);
            }
        memcpy(encoder_train_grads(t)->data, saved, (size_t)ng * sizeof *saved);
        free(saved);
        free(ps);
        encoder_train_free(t);
        safetensors_close(&gd.g);
        encoder_free(&m);
    }
}

// Save -> load: the same config, table and logits (bit for bit); kept for check_encoder_export.py.
static void round_trip(Encoder *m, const Golden *gd, const char *keep_as) {
    char dir[256], sub[300];
    tu_make_temp_dir(dir, sizeof dir, "mbsave");
    snprintf(sub, sizeof sub, "%s/model", dir);
    cr_assert_eq(encoder_save_hf(m, sub, NULL), ST_OK, "%s", status_message());
    const char *keep = getenv("ELASTILM_ENCODER_EXPORT_DIR"); // for tests/reference/check_encoder_export.py
    if (keep && keep_as) {
        char kd[512];
        snprintf(kd, sizeof kd, "%s/%s", keep, keep_as);
        cr_assert_eq(encoder_save_hf(m, kd, NULL), ST_OK, "%s", status_message());
    }
    Encoder back;
    cr_assert_eq(encoder_load(&back, sub), ST_OK, "%s", status_message());
    const EncoderConfig *a = &m->cfg, *b = &back.cfg;
    cr_expect_eq(b->arch, ENC_MOBILEBERT);
    cr_expect_eq(b->head, a->head);
    cr_expect_eq(b->num_labels, a->num_labels);
    cr_expect_eq(b->pooler, a->pooler && a->head != HEAD_TOKEN);
    cr_expect(b->dim == a->dim && b->inner == a->inner && b->embedding_size == a->embedding_size &&
              b->n_ffn == a->n_ffn && b->trigram == a->trigram && b->use_bottleneck == a->use_bottleneck &&
              b->kq_shared_bottleneck == a->kq_shared_bottleneck &&
              b->use_bottleneck_attention == a->use_bottleneck_attention && b->no_norm == a->no_norm &&
              b->act == a->act && b->ffn_dim == a->ffn_dim && b->n_heads == a->n_heads);
    size_t pooler_n = a->pooler && a->head == HEAD_TOKEN ? (size_t)a->dim * (a->dim + 1) : 0; // not saved
    cr_expect_eq(encoder_n_params(&back), encoder_n_params(m) - pooler_n);
    // the config text alone gives the same table
    char *text;
    cr_assert_eq(encoder_config_json(m, &text), ST_OK);
    EncoderConfig pc;
    cr_assert_eq(encoder_config_parse(&pc, text, "config text"), ST_OK, "%s", status_message());
    cr_expect_eq(pc.pooler, a->pooler);
    cr_expect_eq(pc.inner, a->inner);
    free(text);
    int rows = a->head == HEAD_TOKEN ? gd->b.n_tokens : gd->b.n_seq;
    float *x = enc_logits_of(m, &gd->b), *y = enc_logits_of(&back, &gd->b);
    cr_expect_eq(memcmp(x, y, (size_t)rows * (size_t)a->num_labels * sizeof *x), 0, "logits differ after saving");
    free(x), free(y);
    encoder_free(&back);
    char cmd[600], out[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    tu_run(cmd, out, sizeof out);
}

Test(encoder_mobilebert, save_hf_round_trip) {
    const char *keep[] = {"mb-tok", "mb-seq", "mb-seqcls", "mb-ln"};
    for (int i = 0; i < N_MODELS; i++) {
        Golden gd;
        golden_open(&gd, MODELS[i]);
        Encoder m;
        enc_load(&m, MODELS[i]);
        round_trip(&m, &gd, keep[i]);
        encoder_free(&m);
        safetensors_close(&gd.g);
    }
    // a sequence model given a token head: MobileBertForTokenClassification has no pooler
    Golden gd;
    golden_open(&gd, "mobilebert-seq");
    Encoder m;
    enc_load(&m, "mobilebert-seq");
    cr_expect(m.cfg.pooler);
    cr_assert_eq(encoder_set_head(&m, HEAD_TOKEN, 3, 9), ST_OK, "%s", status_message());
    cr_expect(!m.cfg.pooler, "a token head drops the pooler");
    round_trip(&m, &gd, NULL);
    encoder_free(&m);
    safetensors_close(&gd.g);
}

// A random MobileBERT (encoder_alloc + init) trains: a few SGD steps lower the loss.
Test(encoder_mobilebert, random_model_trains) {
    EncoderConfig c = {.arch = ENC_MOBILEBERT, .vocab_size = 20, .dim = 16, .n_layers = 2, .n_heads = 2,
                       .head_dim = 4, .ffn_dim = 12, .max_position = 16, .type_vocab = 2, .ln_eps = 1e-12f,
                       .act = ACT_RELU, .embedding_size = 4, .inner = 8, .n_ffn = 2, .trigram = true,
                       .use_bottleneck = true, .kq_shared_bottleneck = true, .no_norm = true,
                       .head = HEAD_TOKEN, .num_labels = 2};
    Encoder m;
    cr_assert_eq(encoder_alloc(&m, &c), ST_OK, "%s", status_message());
    encoder_init_random(&m, 0.3f, 3);
    cr_expect_eq(((float *)m.embd_ln.w.data)[0], 1.0f);
    cr_expect_eq(((float *)m.word_embd.data)[1], 0.0f); // the padding row
    int32_t ids[10] = {1, 5, 7, 2, 9, 3, 3, 11, 4, 6}, cu[3] = {0, 6, 10}, y[10] = {0, 1, 1, 0, 1, 0, 0, 1, 1, 0};
    EncoderBatch b = {.ids = ids, .cu = cu, .n_seq = 2, .n_tokens = 10};
    EncoderTrain *t;
    cr_assert_eq(encoder_train_new(&t, &m, &(EncoderTrainOptions){0}, 16), ST_OK, "%s", status_message());
    double first = 0, last = 0;
    for (int step = 0; step < 30; step++) {
        encoder_train_zero_grads(t);
        double l;
        cr_assert_eq(encoder_train_step(t, &b, y, 0.1f, 0, &l, NULL), ST_OK);
        cr_assert(isfinite(l), "step %d: loss %g", step, l);
        if (step == 0) first = l;
        last = l;
        Tensor *p = encoder_train_params(t), *g = encoder_train_grads(t);
        for (int64_t i = 0; i < p->shape[0]; i++) ((float *)p->data)[i] -= 0.1f * ((float *)g->data)[i];
    }
    cr_expect(last < 0.7 * first, "loss %.4f -> %.4f", first, last);
    encoder_train_free(t);
    encoder_free(&m);
    // configs transformers cannot run are refused
    EncoderConfig bad = c;
    bad.n_ffn = 0;
    tu_expect_err(encoder_alloc(&m, &bad), ST_FORMAT, "num_feedforward_networks", NULL, NULL);
    bad = c;
    bad.kq_shared_bottleneck = false;
    tu_expect_err(encoder_alloc(&m, &bad), ST_FORMAT, "true_hidden_size (8)", "hidden_size (16)", NULL);
}

Test(encoder_mobilebert, bad_configs) {
    char dir[256], cfg[300];
    Encoder m;
    struct {
        const char *from, *to;
        Status code;
        const char *what;
    } cases[] = {
        {"\"num_feedforward_networks\": 3", "\"num_feedforward_networks\": 0", ST_FORMAT, "num_feedforward_networks"},
        {"\"normalization_type\": \"no_norm\"", "\"normalization_type\": \"rms\"", ST_UNSUPPORTED, "'rms'"},
        {"\"true_hidden_size\": 16", "\"true_hidden_size\": 8", ST_FORMAT, "intra_bottleneck_size 16"},
        {"\"num_attention_heads\": 4", "\"num_attention_heads\": 3", ST_FORMAT, "num_attention_heads 3"},
        {"\"use_bottleneck\": true", "\"use_bottleneck\": 1", ST_FORMAT, "'use_bottleneck'"},
        // without the shared bottleneck, query reads the 24-wide input: transformers could not run it
        {"\"key_query_shared_bottleneck\": true", "\"key_query_shared_bottleneck\": false", ST_FORMAT,
         "true_hidden_size (16)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tu_copy_dir(DIR "mobilebert-tok", dir, sizeof dir);
        snprintf(cfg, sizeof cfg, "%s/config.json", dir);
        tu_replace_in_file(cfg, cases[i].from, cases[i].to);
        Status st = encoder_load(&m, dir);
        tu_expect_err(st, cases[i].code, "config.json", cases[i].what, NULL);
        cr_expect_null(strchr(status_message(), '\n'), "one line: %s", status_message());
        tu_remove_dir(dir);
    }
}

// Rewrites dir/model.safetensors without tensor `drop`.
static void drop_tensor(const char *dir, const char *drop) {
    char path[512], tmp[520];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    SafetensorsFile f;
    tu_open_safetensors(&f, path);
    const char **names = calloc(f.n, sizeof *names);
    Tensor *ts = calloc(f.n, sizeof *ts);
    size_t k = 0;
    for (size_t i = 0; i < f.n; i++) {
        if (strcmp(f.tensors[i].name, drop) == 0) continue;
        names[k] = f.tensors[i].name;
        ts[k++] = tensor_wrap((void *)f.tensors[i].data, f.tensors[i].dtype, (Device){DEV_CPU, 0}, f.tensors[i].ndim,
                              f.tensors[i].shape);
    }
    snprintf(tmp, sizeof tmp, "%s.new", path);
    cr_assert_eq(safetensors_write(tmp, names, ts, k), ST_OK, "%s", status_message());
    safetensors_close(&f);
    cr_assert_eq(rename(tmp, path), 0);
    free(names);
    free(ts);
}

Test(encoder_mobilebert, missing_tensors) {
    const struct { const char *model, *drop; } cases[] = {
        {"mobilebert-tok", "mobilebert.encoder.layer.1.ffn.1.output.LayerNorm.bias"},
        {"mobilebert-tok", "mobilebert.encoder.layer.0.bottleneck.attention.dense.weight"},
        {"mobilebert-tok", "mobilebert.embeddings.embedding_transformation.weight"},
        {"mobilebert-seq", "mobilebert.pooler.dense.weight"},
        {"mobilebert-ln", "mobilebert.encoder.layer.0.output.LayerNorm.weight"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char dir[256];
        Encoder m;
        char src[256];
        snprintf(src, sizeof src, DIR "%s", cases[i].model);
        tu_copy_dir(src, dir, sizeof dir);
        drop_tensor(dir, cases[i].drop);
        Status st = encoder_load(&m, dir);
        tu_expect_err(st, ST_FORMAT, "model.safetensors", "missing tensor", cases[i].drop);
        cr_expect_null(strchr(status_message(), '\n'), "one line: %s", status_message());
        tu_remove_dir(dir);
    }
}
