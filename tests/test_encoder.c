// BERT encoders (models/encoder.h) against transformers 5.25 (goldens from
// tests/reference/make_encoder_goldens.py, fp32, eval mode): loading with and
// without the "bert." prefix, last hidden states and head logits (1e-5 of
// their scale), the cross-entropy and the gradient of every parameter (1e-4 of
// each gradient's scale), freezing, finite differences, bad inputs, dropout
// and the Hugging Face export round trip.
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

Test(encoder, load_prefixed_and_bare) {
    struct { const char *name; EncoderHead head; int labels; bool pooler; } cases[] = {
        {"bert-tok", HEAD_TOKEN, 2, false}, {"bert-seq", HEAD_SEQUENCE, 3, true}, {"bert-base", HEAD_NONE, 0, true}};
    for (size_t i = 0; i < 3; i++) {
        Encoder m;
        enc_load(&m, cases[i].name);
        cr_expect_eq(m.cfg.arch, ENC_BERT);
        cr_expect_eq(m.cfg.head, cases[i].head, "%s", cases[i].name);
        cr_expect_eq(m.cfg.num_labels, cases[i].labels, "%s", cases[i].name);
        cr_expect_eq(m.cfg.pooler, cases[i].pooler, "%s", cases[i].name);
        cr_expect_eq(m.cfg.dim, 24);
        cr_expect_eq(m.cfg.n_layers, 2);
        cr_expect_eq(m.cfg.head_dim, 6);
        cr_expect_eq(m.cfg.act, ACT_GELU);
        int n = encoder_params(&m, NULL);
        EncoderParam *ps = malloc((size_t)n * sizeof *ps);
        encoder_params(&m, ps);
        cr_expect_str_eq(ps[0].name, "embeddings.word_embeddings.weight");
        cr_expect_eq(ps[0].layer, -1);
        size_t total = 0;
        for (int j = 0; j < n; j++) total += (size_t)tensor_numel(ps[j].t);
        cr_expect_eq(total, encoder_n_params(&m));
        // the file's counts: 5 embedding tensors + 16 per layer (+2 pooler, +2 classifier)
        cr_expect_eq(n, 5 + 16 * 2 + (cases[i].pooler ? 2 : 0) + (cases[i].head ? 2 : 0), "%s", cases[i].name);
        free(ps);
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
    float *h = malloc((size_t)gd.b.n_tokens * (size_t)m.cfg.dim * sizeof *h);
    op_copy_to_host(h, &hidden);
    float e = enc_check_close(&gd.g, "hidden", h, (int64_t)gd.b.n_tokens * m.cfg.dim, 1e-5f);
    cr_log_info("%s: hidden max rel err %.2e", name, e);
    if (m.cfg.head != HEAD_NONE) {
        int rows = m.cfg.head == HEAD_TOKEN ? gd.b.n_tokens : gd.b.n_seq;
        float *lg = malloc((size_t)rows * (size_t)m.cfg.num_labels * sizeof *lg);
        cr_assert_eq(encoder_logits(s, &gd.b, lg), ST_OK, "%s", status_message());
        e = enc_check_close(&gd.g, "logits", lg, (int64_t)rows * m.cfg.num_labels, 1e-5f);
        cr_log_info("%s: logits max rel err %.2e", name, e);
        free(lg);
    } else {
        float lg[4];
        tu_expect_err(encoder_logits(s, &gd.b, lg), ST_USAGE, "no classification head", NULL, NULL);
    }
    free(h);
    encoder_session_free(s);
    safetensors_close(&gd.g);
    encoder_free(&m);
}

Test(encoder, forward_token_head) { check_forward("bert-tok"); }
Test(encoder, forward_sequence_head) { check_forward("bert-seq"); }
Test(encoder, forward_bare_model) { check_forward("bert-base"); }

// One step at loss_scale 1/counted: the loss and every trainable parameter's gradient vs torch.
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
    cr_assert(fabs(loss / (double)counted - ref) <= 1e-5 * fabs(ref), "loss %.7f vs torch %.7f", loss / counted, ref);
    int n = encoder_params(&m, NULL);
    EncoderParam *ps = malloc((size_t)n * sizeof *ps);
    encoder_params(&m, ps);
    float worst = 0;
    int64_t n_trainable = 0;
    for (int i = 0; i < n; i++) {
        Tensor *g = encoder_train_grad(t, i);
        bool frozen = (ps[i].layer < 0 && opt.freeze_embeddings) ||
                      (ps[i].layer >= 0 && ps[i].layer < m.cfg.n_layers && ps[i].layer < opt.freeze_below);
        if (frozen) {
            cr_expect_null(g, "%s is frozen but has a gradient", ps[i].name);
            continue;
        }
        cr_assert_not_null(g, "%s has no gradient", ps[i].name);
        n_trainable += tensor_numel(g);
        char key[128];
        snprintf(key, sizeof key, "grad.%s", ps[i].name);
        float e = enc_check_close(&gd.g, key, g->data, tensor_numel(g), 1e-4f);
        if (e > worst) worst = e;
    }
    cr_expect_eq(encoder_train_grads(t)->shape[0], n_trainable);
    cr_expect_eq(encoder_train_params(t)->shape[0], n_trainable);
    cr_log_info("%s (freeze_below %d, embeddings %s): loss %.7f (torch %.7f), worst gradient rel err %.2e", name,
                opt.freeze_below, opt.freeze_embeddings ? "frozen" : "trained", loss / counted, ref, worst);
    free(ps);
    encoder_train_free(t);
    safetensors_close(&gd.g);
    encoder_free(&m);
}

Test(encoder, grads_token_head) { check_grads("bert-tok", (EncoderTrainOptions){0}); }
Test(encoder, grads_sequence_head) { check_grads("bert-seq", (EncoderTrainOptions){0}); }
Test(encoder, grads_frozen) {
    check_grads("bert-tok", (EncoderTrainOptions){.freeze_below = 1, .freeze_embeddings = true});
    check_grads("bert-seq", (EncoderTrainOptions){.freeze_below = 1});
    check_grads("bert-seq", (EncoderTrainOptions){.freeze_below = 2, .freeze_embeddings = true});
}

// Central differences of the eval loss on a few single weights vs the backward.
Test(encoder, finite_differences) {
    const char *names[] = {"bert-tok", "bert-seq"};
    for (int k = 0; k < 2; k++) {
        Encoder m;
        enc_load(&m, names[k]);
        Golden gd;
        golden_open(&gd, names[k]);
        EncoderTrain *t;
        cr_assert_eq(encoder_train_new(&t, &m, &(EncoderTrainOptions){0}, 64), ST_OK, "%s", status_message());
        encoder_train_zero_grads(t);
        cr_assert_eq(encoder_train_step(t, &gd.b, gd.targets, 1.0f, 0, NULL, NULL), ST_OK);
        int n = encoder_params(&m, NULL);
        EncoderParam *ps = malloc((size_t)n * sizeof *ps);
        encoder_params(&m, ps);
        const char *probe[] = {"embeddings.word_embeddings.weight", "embeddings.LayerNorm.weight",
                               "encoder.layer.0.attention.self.query.weight", "encoder.layer.1.intermediate.dense.bias",
                               "encoder.layer.1.output.LayerNorm.bias", "classifier.weight"};
        for (int i = 0; i < n; i++)
            for (size_t p = 0; p < sizeof probe / sizeof *probe; p++) {
                if (strcmp(ps[i].name, probe[p]) != 0) continue;
                int64_t j = ps[i].layer < 0 && p == 0 ? (int64_t)gd.b.ids[3] * m.cfg.dim + 5 : 7;
                float *w = (float *)ps[i].t->data + j;
                float w0 = *w, eps = 1e-2f;
                double lp, lm;
                *w = w0 + eps;
                cr_assert_eq(encoder_train_eval(t, &gd.b, gd.targets, &lp, NULL), ST_OK);
                *w = w0 - eps;
                cr_assert_eq(encoder_train_eval(t, &gd.b, gd.targets, &lm, NULL), ST_OK);
                *w = w0;
                double fd = (lp - lm) / (2 * eps), an = ((float *)encoder_train_grad(t, i)->data)[j];
                cr_log_info("%s %s[%lld]: finite difference %.6f, backward %.6f", names[k], ps[i].name, (long long)j,
                            fd, an);
                cr_expect(fabs(fd - an) <= 2e-2 * fabs(an) + 2e-3, "%s %s[%lld]: finite difference %.6f vs %.6f",
                          names[k], ps[i].name, (long long)j, fd, an);
            }
        free(ps);
        encoder_train_free(t);
        safetensors_close(&gd.g);
        encoder_free(&m);
    }
}

// The training forward without dropout equals the inference forward; with
// dropout a seed gives the same step twice, and another seed another one.
Test(encoder, dropout_is_seeded) { enc_check_dropout_seeded("bert-tok"); }

// Training moves weights into the flat buffer and back, values kept (and updates kept).
Test(encoder, flat_params_round_trip) {
    Encoder m;
    enc_load(&m, "bert-seq");
    float cls0 = ((float *)m.classifier.w.data)[1];
    void *before = m.classifier.w.data;
    EncoderTrain *t;
    cr_assert_eq(encoder_train_new(&t, &m, &(EncoderTrainOptions){.freeze_below = 1}, 64), ST_OK);
    cr_expect_neq(m.classifier.w.data, before);
    cr_expect_eq(((float *)m.classifier.w.data)[1], cls0);
    Tensor *p = encoder_train_params(t);
    float *last = (float *)p->data + p->shape[0] - 1; // the classifier's last bias
    cr_expect_eq(last, (float *)m.classifier.b.data + 2);
    *last += 1.0f;
    float want = *last;
    encoder_train_free(t);
    cr_expect_eq(m.classifier.b.data, (float *)before + 3 * m.cfg.dim);
    cr_expect_eq(((float *)m.classifier.b.data)[2], want);
    encoder_free(&m);
}

Test(encoder, bad_batches) {
    Encoder m;
    enc_load(&m, "bert-tok");
    int32_t ids[4] = {1, 2, 3, 99}, cu[3] = {0, 2, 4}, types[4] = {0, 0, 2, 0};
    EncoderBatch b = {.ids = ids, .cu = cu, .n_seq = 2, .n_tokens = 4};
    tu_expect_err(encoder_check_batch(&m, &b, 64), ST_USAGE, "token id 99", NULL, NULL);
    ids[3] = 4;
    b.types = types;
    tu_expect_err(encoder_check_batch(&m, &b, 64), ST_USAGE, "token type 2", NULL, NULL);
    b.types = NULL;
    tu_expect_err(encoder_check_batch(&m, &b, 3), ST_USAGE, "exceeds", NULL, NULL);
    cu[1] = 0;
    tu_expect_err(encoder_check_batch(&m, &b, 64), ST_USAGE, "sequence 0 has 0 tokens", NULL, NULL);
    int32_t long_ids[30] = {0}, long_cu[2] = {0, 30};
    EncoderBatch lb = {.ids = long_ids, .cu = long_cu, .n_seq = 1, .n_tokens = 30};
    tu_expect_err(encoder_check_batch(&m, &lb, 64), ST_USAGE, "1..24", NULL, NULL);
    encoder_free(&m);
}

// Rewrites dir/model.safetensors without tensor `drop` and with `retype` as I32 (either may be NULL).
static void rewrite_weights(const char *dir, const char *drop, const char *retype) {
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    SafetensorsFile f;
    tu_open_safetensors(&f, path);
    const char **names = calloc(f.n, sizeof *names);
    Tensor *ts = calloc(f.n, sizeof *ts);
    size_t k = 0;
    for (size_t i = 0; i < f.n; i++) {
        if (drop && strcmp(f.tensors[i].name, drop) == 0) continue;
        names[k] = f.tensors[i].name;
        ts[k] = tensor_wrap((void *)f.tensors[i].data, f.tensors[i].dtype, (Device){DEV_CPU, 0}, f.tensors[i].ndim,
                            f.tensors[i].shape);
        if (retype && strcmp(f.tensors[i].name, retype) == 0) ts[k].dtype = DT_I32;
        k++;
    }
    char tmp[520];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    cr_assert_eq(safetensors_write(tmp, names, ts, k), ST_OK, "%s", status_message());
    safetensors_close(&f);
    cr_assert_eq(rename(tmp, path), 0);
    free(names);
    free(ts);
}

Test(encoder, bad_inputs) {
    char dir[256];
    Encoder m;
    // missing tensor
    tu_copy_dir(DIR "bert-tok", dir, sizeof dir);
    rewrite_weights(dir, "bert.encoder.layer.1.attention.self.key.bias", NULL);
    tu_expect_err(encoder_load(&m, dir), ST_FORMAT, "model.safetensors", "missing tensor",
                  "bert.encoder.layer.1.attention.self.key.bias");
    tu_remove_dir(dir);
    // missing head tensor
    tu_copy_dir(DIR "bert-tok", dir, sizeof dir);
    rewrite_weights(dir, "classifier.weight", NULL);
    tu_expect_err(encoder_load(&m, dir), ST_FORMAT, "model.safetensors", "'classifier.weight'", NULL);
    tu_remove_dir(dir);
    // wrong dtype
    tu_copy_dir(DIR "bert-base", dir, sizeof dir);
    rewrite_weights(dir, NULL, "encoder.layer.0.output.dense.bias");
    tu_expect_err(encoder_load(&m, dir), ST_FORMAT, "model.safetensors", "encoder.layer.0.output.dense.bias", "I32");
    tu_remove_dir(dir);
    // wrong shape (config and weights disagree)
    char cfg[300], st_path[300];
    tu_copy_dir(DIR "bert-seq", dir, sizeof dir);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    tu_replace_in_file(cfg, "\"intermediate_size\": 40", "\"intermediate_size\": 41");
    tu_expect_err(encoder_load(&m, dir), ST_FORMAT, "model.safetensors", "encoder.layer.0.intermediate.dense.weight",
                  "[41, 24]");
    tu_remove_dir(dir);
    // not a BERT
    tu_copy_dir(DIR "bert-seq", dir, sizeof dir);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    tu_replace_in_file(cfg, "\"model_type\": \"bert\"", "\"model_type\": \"llama\"");
    tu_expect_err(encoder_load(&m, dir), ST_UNSUPPORTED, "config.json", "model_type 'llama'", NULL);
    tu_replace_in_file(cfg, "\"model_type\": \"llama\"", "\"model_type\": \"mobilebert\"");
    // read as a MobileBERT (default embedding_size 128 etc.): its weights do not fit
    tu_expect_err(encoder_load(&m, dir), ST_FORMAT, "model.safetensors", NULL, NULL);
    tu_remove_dir(dir);
    // a missing key
    tu_copy_dir(DIR "bert-seq", dir, sizeof dir);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    tu_replace_in_file(cfg, "\"hidden_size\"", "\"hidden_sizes\"");
    tu_expect_err(encoder_load(&m, dir), ST_FORMAT, "config.json", "'hidden_size'", NULL);
    tu_remove_dir(dir);
    // no config.json
    tu_copy_dir(DIR "bert-seq", dir, sizeof dir);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    cr_assert_eq(unlink(cfg), 0);
    tu_expect_err(encoder_load(&m, dir), ST_IO, "config.json", NULL, NULL);
    tu_remove_dir(dir);
    // a truncated weights file
    tu_copy_dir(DIR "bert-seq", dir, sizeof dir);
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    cr_assert_eq(truncate(st_path, 30000), 0);
    Status st = encoder_load(&m, dir);
    cr_assert_neq(st, ST_OK);
    tu_expect_err(st, st, "model.safetensors", NULL, NULL);
    tu_remove_dir(dir);
}

// Save -> load gives the same model: same head, same logits (bit for bit: f32 written as is).
static void round_trip(Encoder *m, const Golden *gd, const char *tok_dir, const char *keep_as) {
    char dir[256], sub[300];
    tu_make_temp_dir(dir, sizeof dir, "encsave");
    snprintf(sub, sizeof sub, "%s/model", dir);
    cr_assert_eq(encoder_save_hf(m, sub, tok_dir), ST_OK, "%s", status_message());
    cr_assert_eq(encoder_save_hf(m, sub, tok_dir), ST_OK, "saving over a saved model: %s", status_message());
    const char *keep = getenv("ELASTILM_ENCODER_EXPORT_DIR"); // for tests/reference/check_encoder_export.py
    if (keep && keep_as) {
        char kd[512];
        snprintf(kd, sizeof kd, "%s/%s", keep, keep_as);
        cr_assert_eq(encoder_save_hf(m, kd, tok_dir), ST_OK, "%s", status_message());
    }
    Encoder back;
    cr_assert_eq(encoder_load(&back, sub), ST_OK, "%s", status_message());
    cr_expect_eq(back.cfg.head, m->cfg.head);
    cr_expect_eq(back.cfg.num_labels, m->cfg.num_labels);
    // a BERT token head is saved as transformers has it: without the pooler it does not use
    bool pooler = m->cfg.pooler && m->cfg.head != HEAD_TOKEN;
    cr_expect_eq(back.cfg.pooler, pooler);
    cr_expect_eq(encoder_n_params(&back), encoder_n_params(m) - (m->cfg.pooler && !pooler ? 24 * 25 : 0));
    int rows = m->cfg.head == HEAD_TOKEN ? gd->b.n_tokens : gd->b.n_seq;
    float *a = enc_logits_of(m, &gd->b), *b = enc_logits_of(&back, &gd->b);
    cr_expect_eq(memcmp(a, b, (size_t)rows * (size_t)m->cfg.num_labels * sizeof *a), 0, "logits differ after saving");
    free(a), free(b);
    encoder_free(&back);
    // a directory with other files in it is not replaced
    tu_write_file_in(sub, "notes.txt", "mine");
    tu_expect_err(encoder_save_hf(m, sub, NULL), ST_USAGE, "notes.txt", NULL, NULL);
    char cmd[600], out[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    tu_run(cmd, out, sizeof out);
}

Test(encoder, save_hf_round_trip) {
    Golden gd;
    golden_open(&gd, "bert-tok");
    Encoder m;
    enc_load(&m, "bert-tok");
    round_trip(&m, &gd, NULL, "tok");
    encoder_free(&m);
    // a sentence encoder given a fresh head: the bare model + a 3-label sequence head (and a new pooler)
    enc_load(&m, "bert-base");
    cr_assert_eq(encoder_set_head(&m, HEAD_SEQUENCE, 3, 7), ST_OK, "%s", status_message());
    cr_expect_eq(m.cfg.head, HEAD_SEQUENCE);
    cr_expect(m.cfg.pooler);
    round_trip(&m, &gd, NULL, "seq");
    // and a token head replacing it
    cr_assert_eq(encoder_set_head(&m, HEAD_TOKEN, 2, 8), ST_OK, "%s", status_message());
    round_trip(&m, &gd, NULL, NULL);
    encoder_free(&m);
    safetensors_close(&gd.g);
}

Test(encoder, random_model_trains) {
    EncoderConfig c = {.arch = ENC_BERT, .vocab_size = 32, .dim = 16, .n_layers = 2, .n_heads = 2, .head_dim = 8,
                       .ffn_dim = 24, .max_position = 16, .type_vocab = 2, .ln_eps = 1e-12f, .act = ACT_GELU,
                       .pooler = true, .head = HEAD_SEQUENCE, .num_labels = 2};
    Encoder m;
    cr_assert_eq(encoder_alloc(&m, &c), ST_OK, "%s", status_message());
    encoder_init_random(&m, 0.2f, 1);
    cr_expect_eq(((float *)m.embd_ln.w.data)[0], 1.0f);
    cr_expect_eq(((float *)m.layers[0].q.b.data)[0], 0.0f);
    cr_expect_neq(((float *)m.layers[0].q.w.data)[0], 0.0f);
    // a MobileBERT config needs its own fields (tests/test_encoder_mobilebert.c runs them)
    EncoderConfig mb = c;
    mb.arch = ENC_MOBILEBERT;
    Encoder m2;
    tu_expect_err(encoder_alloc(&m2, &mb), ST_FORMAT, "embedding_size", NULL, NULL);
    encoder_free(&m);
}

// Replaces the first `from` in a binary file by `to` (of the same length).
static void patch_bytes(const char *path, const char *from, const char *to) {
    size_t len, k = strlen(from);
    cr_assert_eq(strlen(to), k);
    uint8_t *p = tu_read_file(path, &len);
    uint8_t *at = memmem(p, len, from, k);
    cr_assert_not_null(at, "%s: no '%s'", path, from);
    memcpy(at, to, k);
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    cr_assert_eq(fwrite(p, 1, len, fp), len);
    cr_assert_eq(fclose(fp), 0);
    free(p);
}

// A weights file with tensors of dtypes elastilm does not read (the I64 embeddings.position_ids of BERT
// checkpoints such as all-MiniLM-L6-v2): the file opens, the model loads, and reading that tensor fails
// naming it.
Test(encoder, unreadable_dtypes_listed) {
    char dir[256], path[300];
    tu_copy_dir(DIR "bert-base", dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    SafetensorsFile f;
    tu_open_safetensors(&f, path);
    size_t n = f.n + 2;
    const char **names = calloc(n, sizeof *names);
    Tensor *ts = calloc(n, sizeof *ts);
    for (size_t i = 0; i < f.n; i++) {
        names[i] = f.tensors[i].name;
        ts[i] = tensor_wrap((void *)f.tensors[i].data, f.tensors[i].dtype, (Device){DEV_CPU, 0}, f.tensors[i].ndim,
                            f.tensors[i].shape);
    }
    // two placeholders written as I32 [1, 24] / [10], retagged below as I64 [1, 12] and U16 [20]
    int32_t pos[24] = {0}, flags[10] = {0x01010101, 0x01000100, 0x00000001};
    names[f.n] = "embeddings.position_ids";
    ts[f.n] = tensor_wrap(pos, DT_I32, (Device){DEV_CPU, 0}, 2, (int64_t[]){1, 24});
    names[f.n + 1] = "zz.mask";
    ts[f.n + 1] = tensor_wrap(flags, DT_I32, (Device){DEV_CPU, 0}, 1, (int64_t[]){10});
    char tmp[320];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    cr_assert_eq(safetensors_write(tmp, names, ts, n), ST_OK, "%s", status_message());
    safetensors_close(&f);
    free(names);
    free(ts);
    cr_assert_eq(rename(tmp, path), 0);
    // same byte lengths: [1, 24] I32 = [1, 12] I64, [10] I32 = [20] U16
    patch_bytes(path, "\"dtype\":\"I32\",\"shape\":[1,24]", "\"dtype\":\"I64\",\"shape\":[1,12]");
    patch_bytes(path, "\"dtype\":\"I32\",\"shape\":[10]", "\"dtype\":\"U16\",\"shape\":[20]");
    SafetensorsFile g;
    cr_assert_eq(safetensors_open(&g, path), ST_OK, "%s", status_message());
    cr_expect_eq(g.n_unreadable, 2);
    const SafeTensor *t = safetensors_find(&g, "embeddings.position_ids");
    cr_assert_not_null(t);
    cr_expect_eq(t->dtype, SAFETENSORS_UNREADABLE);
    cr_expect_str_eq(t->tag, "I64");
    cr_expect_eq(t->shape[1], 12);
    cr_expect_eq(t->nbytes, 96);
    Tensor v;
    tu_expect_err(safetensors_view(&g, t, &v), ST_UNSUPPORTED, "embeddings.position_ids", "I64", "model.safetensors");
    t = safetensors_find(&g, "zz.mask");
    cr_assert_not_null(t);
    cr_expect_str_eq(t->tag, "U16");
    cr_expect_eq(safetensors_view(&g, safetensors_find(&g, "embeddings.LayerNorm.bias"), &v), ST_OK);
    for (size_t i = 0; i < g.n; i++) cr_expect_neq(g.tensors[i].dtype, SAFETENSORS_UNREADABLE);
    safetensors_close(&g);
    Encoder m;
    cr_assert_eq(encoder_load(&m, dir), ST_OK, "%s", status_message());
    encoder_free(&m);
    tu_remove_dir(dir);
}
