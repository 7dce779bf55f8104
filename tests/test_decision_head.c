// The TLM's decision head against transformers 5.25 / tokenizers 0.23.3 (goldens
// from tests/reference/make_decision_goldens.py, fp32, eval mode): a BERT whose
// vocabulary grew by the 14 SLO tokens and whose pooled output feeds two
// independent linear heads (10 prompt ratios, 9 model ratios), stored as one
// 19-row classifier with label groups [10, 9]. Checked: loading the groups, the
// logits (1e-5 of their scale), the summed loss CE(prompt) + CE(model) over the
// sequences with a target not counted (1e-5), the gradients with layer 0 and the
// old embeddings frozen but the new word rows trained (1e-4 of each gradient's
// scale; old rows exactly 0), finite differences on new rows, targets outside
// their group and bad group configs refused, the export round trip,
// encoder_resize_vocab, and tokenizer_json_add_tokens against HF add_tokens.
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"
#include "models/encoder.h"
#include "runtime/mapped_file.h"
#include "test_encoder_common.h"
#include "test_util.h"
#include "text/tokenizer.h"

#define NAME "bert-decision"
#define OLD_VOCAB 64 // before the 14 SLO tokens
#define NEW_VOCAB 78
#define N_LABELS 19
#define N_GROUPS 2

static const EncoderTrainOptions DECISION_OPT = {
    .freeze_below = 1, .freeze_embeddings = true, .train_word_rows_from = OLD_VOCAB};

static float golden_f32(const Golden *gd, const char *name, int64_t i) {
    return ((const float *)tu_tensor(&gd->g, name, DT_F32)->data)[i];
}

Test(decision_head, loads_label_groups) {
    Encoder m;
    enc_load(&m, NAME);
    cr_expect_eq(m.cfg.arch, ENC_BERT);
    cr_expect_eq(m.cfg.head, HEAD_SEQUENCE);
    cr_expect_eq(m.cfg.num_labels, N_LABELS);
    cr_expect(m.cfg.pooler);
    cr_expect_eq(m.cfg.vocab_size, NEW_VOCAB);
    cr_expect_eq(m.cfg.n_groups, N_GROUPS);
    cr_expect_eq(m.cfg.group_size[0], 10);
    cr_expect_eq(m.cfg.group_size[1], 9);
    cr_expect_eq(m.word_embd.shape[0], NEW_VOCAB);
    cr_expect_eq(m.classifier.w.shape[0], N_LABELS);
    // n = 0 undoes the groups; sizes that do not add up are refused, the groups kept
    cr_assert_eq(encoder_set_label_groups(&m, NULL, 0), ST_OK, "%s", status_message());
    cr_expect_eq(m.cfg.n_groups, 0);
    tu_expect_err(encoder_set_label_groups(&m, (int[]){10, 8}, 2), ST_FORMAT, "18 labels", "19", NULL);
    cr_expect_eq(m.cfg.n_groups, 0);
    tu_expect_err(encoder_set_label_groups(&m, (int[]){19, 0}, 2), ST_FORMAT, "group 1", NULL, NULL);
    tu_expect_err(encoder_set_label_groups(&m, (int[]){1, 1, 1, 1, 1, 1, 1, 1, 11}, 9), ST_USAGE, "9 label groups",
                  NULL, NULL);
    cr_assert_eq(encoder_set_label_groups(&m, (int[]){10, 9}, 2), ST_OK, "%s", status_message());
    cr_expect_eq(m.cfg.group_size[1], 9);
    encoder_free(&m);
}

Test(decision_head, logits) {
    Encoder m;
    enc_load(&m, NAME);
    Golden gd;
    golden_open(&gd, NAME);
    cr_assert_eq(gd.b.n_seq, 3);
    float *lg = enc_logits_of(&m, &gd.b);
    float e = enc_check_close(&gd.g, "logits", lg, (int64_t)gd.b.n_seq * N_LABELS, 1e-5f);
    cr_log_info("decision head: logits max rel err %.2e", e);
    free(lg);
    safetensors_close(&gd.g);
    encoder_free(&m);
}

// One step at loss_scale 1: the summed loss and every trainable gradient vs torch;
// the frozen parameters have none and the old word rows a zero gradient.
Test(decision_head, loss_and_gradients) {
    Encoder m;
    enc_load(&m, NAME);
    Golden gd;
    golden_open(&gd, NAME);
    EncoderTrain *t;
    cr_assert_eq(encoder_train_new(&t, &m, &DECISION_OPT, 64), ST_OK, "%s", status_message());
    encoder_train_zero_grads(t);
    double loss = 0;
    int64_t counted = 0;
    cr_assert_eq(encoder_train_step(t, &gd.b, gd.targets, 1.0f, 0, &loss, &counted), ST_OK, "%s", status_message());
    cr_expect_eq(counted, 3, "every sequence has a counted target");
    double ref = golden_f32(&gd, "loss", 0);
    cr_expect(fabs(loss - ref) <= 1e-5 * fabs(ref), "loss %.7f vs torch %.7f", loss, ref);
    double ev;
    cr_assert_eq(encoder_train_eval(t, &gd.b, gd.targets, &ev, NULL), ST_OK, "%s", status_message());
    cr_expect(fabs(ev - ref) <= 1e-5 * fabs(ref), "eval loss %.7f vs torch %.7f", ev, ref);

    int n = encoder_params(&m, NULL);
    EncoderParam *ps = malloc((size_t)n * sizeof *ps);
    encoder_params(&m, ps);
    float worst = 0;
    int64_t n_trainable = 0;
    int checked = 0;
    for (int i = 0; i < n; i++) {
        Tensor *g = encoder_train_grad(t, i);
        bool word = ps[i].t == &m.word_embd;
        bool frozen = (ps[i].layer < 0 && !word) || ps[i].layer == 0;
        if (frozen) {
            cr_expect_null(g, "%s is frozen but has a gradient", ps[i].name);
            continue;
        }
        cr_assert_not_null(g, "%s has no gradient", ps[i].name);
        n_trainable += tensor_numel(g);
        float e;
        if (word) {
            cr_assert_eq(g->shape[0], NEW_VOCAB);
            const float *d = g->data;
            int64_t nonzero = 0;
            for (int64_t j = 0; j < (int64_t)OLD_VOCAB * m.cfg.dim; j++) nonzero += d[j] != 0.0f;
            cr_expect_eq(nonzero, 0, "%lld gradient entries of old word rows are not 0", (long long)nonzero);
            e = enc_check_close(&gd.g, "grad.word_new", d + (int64_t)OLD_VOCAB * m.cfg.dim,
                                (int64_t)(NEW_VOCAB - OLD_VOCAB) * m.cfg.dim, 1e-4f);
        } else if (strstr(ps[i].name, "attention.self.key.bias")) {
            // 0 in exact arithmetic (a softmax does not see a shift common to a query's scores): both sides
            // are rounding noise, measured against the key weights' gradient
            const SafeTensor *r = tu_tensor(&gd.g, "grad.encoder.layer.1.attention.self.key.bias", DT_F32);
            float scale = tu_max_abs((const float *)tu_tensor(&gd.g, "grad.encoder.layer.1.attention.self.key.weight", DT_F32)->data,
                                     (size_t)m.cfg.dim * (size_t)m.cfg.dim);
            float d = tu_max_abs_diff((const float *)r->data, g->data, (size_t)m.cfg.dim);
            cr_expect(d <= 1e-5f * scale, "%s: max |diff| %g vs the key weights' gradient scale %g", ps[i].name, d,
                      scale);
            e = d / scale;
        } else {
            char key[128];
            snprintf(key, sizeof key, "grad.%s", ps[i].name);
            e = enc_check_close(&gd.g, key, g->data, tensor_numel(g), 1e-4f);
        }
        checked++;
        if (e > worst) worst = e;
    }
    cr_expect_eq(checked, 1 + 16 + 2 + 2, "word rows, layer 1, pooler, classifier");
    cr_expect_eq(encoder_train_grads(t)->shape[0], n_trainable);
    cr_log_info("decision head: loss %.7f (torch %.7f), worst gradient rel err %.2e over %d tensors", loss, ref, worst,
                checked);

    // sequence 0 not counted at all: counted 2, its two cross-entropies gone
    int32_t y[3 * N_GROUPS];
    memcpy(y, gd.targets, sizeof y);
    y[0] = y[1] = -100;
    cr_assert_eq(encoder_train_eval(t, &gd.b, y, &ev, &counted), ST_OK, "%s", status_message());
    cr_expect_eq(counted, 2);
    double want = ref - golden_f32(&gd, "ce", 0) - golden_f32(&gd, "ce", 1);
    cr_expect(fabs(ev - want) <= 1e-5 * fabs(ref), "loss without sequence 0 %.7f vs %.7f", ev, want);
    // only the prompt group of sequence 1
    memcpy(y, gd.targets, sizeof y);
    y[0] = y[1] = y[4] = y[5] = -100;
    y[3] = -100;
    cr_assert_eq(encoder_train_eval(t, &gd.b, y, &ev, &counted), ST_OK, "%s", status_message());
    cr_expect_eq(counted, 1);
    want = golden_f32(&gd, "ce", 2);
    cr_expect(fabs(ev - want) <= 1e-5 * fabs(ref), "loss of one target %.7f vs %.7f", ev, want);
    free(ps);
    encoder_train_free(t);
    safetensors_close(&gd.g);
    encoder_free(&m);
}

// Central differences of the eval loss on single elements of new word rows vs the backward.
Test(decision_head, finite_differences_new_rows) {
    Encoder m;
    enc_load(&m, NAME);
    Golden gd;
    golden_open(&gd, NAME);
    EncoderTrain *t;
    cr_assert_eq(encoder_train_new(&t, &m, &DECISION_OPT, 64), ST_OK, "%s", status_message());
    encoder_train_zero_grads(t);
    cr_assert_eq(encoder_train_step(t, &gd.b, gd.targets, 1.0f, 0, NULL, NULL), ST_OK, "%s", status_message());
    int n = encoder_params(&m, NULL), wi = -1;
    EncoderParam *ps = malloc((size_t)n * sizeof *ps);
    encoder_params(&m, ps);
    for (int i = 0; i < n; i++)
        if (ps[i].t == &m.word_embd) wi = i;
    cr_assert_geq(wi, 0);
    const float *g = encoder_train_grad(t, wi)->data;
    // rows of new ids in the batch (ids[1] and ids[2] of sequence 0 and ids[1] of sequence 2), one absent
    // from it (its gradient is 0) and an old row (frozen: the backward gives 0, the loss does move)
    int32_t rows[] = {gd.b.ids[1], gd.b.ids[2], gd.b.ids[gd.b.cu[2] + 1], 70, gd.b.ids[0]};
    int cols[] = {3, 17, 30, 9, 4};
    for (size_t k = 0; k < sizeof rows / sizeof *rows; k++) {
        int64_t j = (int64_t)rows[k] * m.cfg.dim + cols[k];
        float *w = (float *)m.word_embd.data + j;
        float w0 = *w, eps = 1e-2f;
        double lp, lm;
        *w = w0 + eps;
        cr_assert_eq(encoder_train_eval(t, &gd.b, gd.targets, &lp, NULL), ST_OK);
        *w = w0 - eps;
        cr_assert_eq(encoder_train_eval(t, &gd.b, gd.targets, &lm, NULL), ST_OK);
        *w = w0;
        double fd = (lp - lm) / (2 * eps), an = g[j];
        cr_log_info("decision head word row %d [%d]: finite difference %.6f, backward %.6f", rows[k], cols[k], fd, an);
        if (rows[k] < OLD_VOCAB) {
            cr_expect_eq(an, 0.0, "old row %d has gradient %g", rows[k], an);
            cr_expect(fabs(fd) > 1e-3, "old row %d: the case should move the loss (fd %g)", rows[k], fd);
            continue;
        }
        cr_expect(fabs(fd - an) <= 2e-2 * fabs(an) + 2e-3, "row %d [%d]: finite difference %.6f vs %.6f", rows[k],
                  cols[k], fd, an);
    }
    cr_expect_eq(g[70 * m.cfg.dim + 9], 0.0f, "row 70 is not in the batch");
    free(ps);
    encoder_train_free(t);
    safetensors_close(&gd.g);
    encoder_free(&m);
}

Test(decision_head, targets_outside_their_group) {
    Encoder m;
    enc_load(&m, NAME);
    Golden gd;
    golden_open(&gd, NAME);
    EncoderTrain *t;
    cr_assert_eq(encoder_train_new(&t, &m, &DECISION_OPT, 64), ST_OK, "%s", status_message());
    int32_t y[3 * N_GROUPS];
    memcpy(y, gd.targets, sizeof y);
    y[3] = 9; // sequence 1, model group (9 classes)
    tu_expect_err(encoder_train_step(t, &gd.b, y, 1.0f, 0, NULL, NULL), ST_USAGE, "target 9 of row 1", "group 1",
                  "[0, 9)");
    tu_expect_err(encoder_train_eval(t, &gd.b, y, NULL, NULL), ST_USAGE, "group 1", NULL, NULL);
    memcpy(y, gd.targets, sizeof y);
    y[4] = 10; // sequence 2, prompt group (10 classes)
    tu_expect_err(encoder_train_step(t, &gd.b, y, 1.0f, 0, NULL, NULL), ST_USAGE, "target 10 of row 2", "group 0",
                  "[0, 10)");
    // the largest label of each group is fine
    y[4] = 9;
    y[1] = 8;
    double l;
    cr_expect_eq(encoder_train_eval(t, &gd.b, y, &l, NULL), ST_OK, "%s", status_message());
    encoder_train_free(t);
    safetensors_close(&gd.g);
    encoder_free(&m);
}

Test(decision_head, bad_group_configs) {
    char dir[256], cfg[300];
    Encoder m;
    struct { const char *to, *n1, *n2; } cases[] = {
        {"\"elastilm_label_groups\": [\n    10,\n    8\n  ]", "the label groups hold 18 labels", "the head has 19"},
        {"\"elastilm_label_groups\": [\n    19,\n    0\n  ]", "elastilm_label_groups[1]", NULL},
        {"\"elastilm_label_groups\": 19", "elastilm_label_groups", NULL},
        {"\"elastilm_label_groups\": []", "elastilm_label_groups", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tu_copy_dir(ENC_FIXTURES NAME, dir, sizeof dir);
        snprintf(cfg, sizeof cfg, "%s/config.json", dir);
        tu_replace_in_file(cfg, "\"elastilm_label_groups\": [\n    10,\n    9\n  ]", cases[i].to);
        tu_expect_err(encoder_load(&m, dir), ST_FORMAT, "config.json", cases[i].n1, cases[i].n2);
        tu_remove_dir(dir);
    }
}

// Save -> load keeps the groups and the logits (bit for bit).
Test(decision_head, save_round_trip) {
    Encoder m, back;
    enc_load(&m, NAME);
    Golden gd;
    golden_open(&gd, NAME);
    char dir[256], sub[300];
    tu_make_temp_dir(dir, sizeof dir, "decsave");
    snprintf(sub, sizeof sub, "%s/model", dir);
    cr_assert_eq(encoder_save_hf(&m, sub, NULL), ST_OK, "%s", status_message());
    cr_assert_eq(encoder_load(&back, sub), ST_OK, "%s", status_message());
    cr_expect_eq(back.cfg.n_groups, N_GROUPS);
    cr_expect_eq(back.cfg.group_size[0], 10);
    cr_expect_eq(back.cfg.group_size[1], 9);
    cr_expect_eq(back.cfg.vocab_size, NEW_VOCAB);
    float *a = enc_logits_of(&m, &gd.b), *b = enc_logits_of(&back, &gd.b);
    cr_expect_eq(memcmp(a, b, (size_t)gd.b.n_seq * N_LABELS * sizeof *a), 0, "logits differ after saving");
    free(a), free(b);
    encoder_free(&back);
    encoder_free(&m);
    safetensors_close(&gd.g);
    tu_remove_dir(dir);
}

// encoder_resize_vocab: old rows and outputs unchanged, new rows normal(0, 0.02) from the seed.
Test(decision_head, resize_vocab) {
    Encoder m, m2;
    enc_load(&m, NAME);
    enc_load(&m2, NAME);
    Golden gd;
    golden_open(&gd, NAME);
    float *before = enc_logits_of(&m, &gd.b);
    int64_t D = m.cfg.dim, V = NEW_VOCAB + 200;
    float *old = malloc((size_t)NEW_VOCAB * (size_t)D * sizeof *old);
    memcpy(old, m.word_embd.data, (size_t)NEW_VOCAB * (size_t)D * sizeof *old);
    cr_assert_eq(encoder_resize_vocab(&m, (int)V, 5), ST_OK, "%s", status_message());
    cr_assert_eq(encoder_resize_vocab(&m2, (int)V, 5), ST_OK, "%s", status_message());
    cr_expect_eq(m.cfg.vocab_size, V);
    cr_expect_eq(m.word_embd.shape[0], V);
    cr_expect_eq(m.word_embd.shape[1], D);
    const float *w = m.word_embd.data;
    cr_expect_eq(memcmp(w, old, (size_t)NEW_VOCAB * (size_t)D * sizeof *old), 0, "old rows changed");
    cr_expect_eq(memcmp(w, m2.word_embd.data, (size_t)V * (size_t)D * sizeof *w), 0, "the same seed, other rows");
    double s = 0, s2 = 0;
    int64_t k = (V - NEW_VOCAB) * D;
    for (int64_t j = NEW_VOCAB * D; j < V * D; j++) s += w[j], s2 += (double)w[j] * w[j];
    double mean = s / (double)k, sd = sqrt(s2 / (double)k - mean * mean);
    cr_log_info("resize: %lld new values, mean %.5f, sd %.5f", (long long)k, mean, sd);
    cr_expect(fabs(mean) < 0.002 && fabs(sd - 0.02) < 0.002, "new rows: mean %g, sd %g", mean, sd);
    float *after = enc_logits_of(&m, &gd.b);
    cr_expect_eq(memcmp(before, after, (size_t)gd.b.n_seq * N_LABELS * sizeof *after), 0, "logits changed");
    // a resized model trains: the gradient covers the new rows
    EncoderTrain *t;
    cr_assert_eq(encoder_train_new(&t, &m, &DECISION_OPT, 64), ST_OK, "%s", status_message());
    cr_assert_eq(encoder_train_step(t, &gd.b, gd.targets, 1.0f, 0, NULL, NULL), ST_OK, "%s", status_message());
    encoder_train_free(t);
    tu_expect_err(encoder_resize_vocab(&m, 10, 5), ST_USAGE, "10 rows", NULL, NULL);
    cr_expect_eq(encoder_resize_vocab(&m, (int)V, 5), ST_OK, "the same size is a no-op");
    free(before), free(after), free(old);
    safetensors_close(&gd.g);
    encoder_free(&m2);
    encoder_free(&m);
}

// ---- the SLO tokens added to a WordPiece tokenizer --------------------------------

static json_t *load_token_golden(void) {
    json_error_t err;
    json_t *doc = json_load_file(ENC_FIXTURES NAME "_tokens.json", 0, &err);
    cr_assert_not_null(doc, "%s: %s", ENC_FIXTURES NAME "_tokens.json", err.text);
    return doc;
}

// The golden's tokens as a C array (n of them).
static const char **golden_tokens(json_t *doc, int *n) {
    json_t *tok = json_object_get(doc, "tokens");
    *n = (int)json_array_size(tok);
    const char **out = malloc((size_t)*n * sizeof *out);
    for (int i = 0; i < *n; i++) out[i] = json_string_value(json_array_get(tok, (size_t)i));
    return out;
}

static void expect_ids(const TokenList *l, json_t *want, const char *text, const char *what) {
    cr_expect_eq(l->n, json_array_size(want), "'%s' (%s): %zu ids, HF %zu", text, what, l->n, json_array_size(want));
    for (size_t i = 0; i < l->n && i < json_array_size(want); i++)
        cr_expect_eq(l->ids[i], json_integer_value(json_array_get(want, i)), "'%s' (%s): id %zu is %d, HF %lld", text,
                     what, i, l->ids[i], (long long)json_integer_value(json_array_get(want, i)));
}

Test(decision_head, tokenizer_add_tokens) {
    json_t *doc = load_token_golden();
    int n;
    const char **tokens = golden_tokens(doc, &n);
    cr_assert_eq(n, 14);
    int first_id = (int)json_integer_value(json_object_get(doc, "first_id"));
    char *text, *out;
    size_t len;
    cr_assert_eq(read_file_maybe_gz(json_string_value(json_object_get(doc, "tokenizer")), &text, &len), ST_OK, "%s",
                 status_message());
    Tokenizer *orig;
    cr_assert_eq(tokenizer_load_json_text(&orig, text, len, "minilm"), ST_OK, "%s", status_message());
    cr_expect_eq(tokenizer_vocab_size(orig), first_id, "HF's len(tokenizer)");
    tokenizer_free(orig);
    cr_assert_eq(tokenizer_json_add_tokens(text, len, tokens, n, first_id, "minilm", &out), ST_OK, "%s",
                 status_message());

    // the added_tokens entries, field by field as HF writes them
    json_error_t err;
    json_t *mine = json_loads(out, 0, &err);
    cr_assert_not_null(mine, "the new tokenizer.json: %s", err.text);
    json_t *added = json_object_get(mine, "added_tokens"), *want = json_object_get(doc, "added_tokens");
    cr_assert_eq(json_array_size(want), (size_t)n);
    cr_assert_geq(json_array_size(added), (size_t)n);
    for (int i = 0; i < n; i++) {
        json_t *a = json_array_get(added, json_array_size(added) - (size_t)n + (size_t)i), *w = json_array_get(want, i);
        const char *key;
        json_t *v;
        json_object_foreach(w, key, v) {
            cr_expect(json_equal(v, json_object_get(a, key)), "added token %d: '%s' differs from HF", i, key);
        }
        cr_expect_eq(json_object_size(a), json_object_size(w), "added token %d: other fields than HF's", i);
    }
    json_decref(mine);

    // encodings identical to HF's with the tokens added
    Tokenizer *t;
    cr_assert_eq(tokenizer_load_json_text(&t, out, strlen(out), "minilm+slo"), ST_OK, "%s", status_message());
    cr_expect_eq(tokenizer_vocab_size(t), first_id + n);
    for (int i = 0; i < n; i++) cr_expect_eq(tokenizer_token_id(t, tokens[i]), first_id + i, "%s", tokens[i]);
    json_t *cases = json_object_get(doc, "cases");
    cr_assert_geq(json_array_size(cases), 4);
    for (size_t c = 0; c < json_array_size(cases); c++) {
        json_t *cs = json_array_get(cases, c);
        const char *s = json_string_value(json_object_get(cs, "text"));
        TokenList l = {0};
        cr_assert_eq(tokenizer_encode(t, s, strlen(s), true, &l), ST_OK, "%s", status_message());
        expect_ids(&l, json_object_get(cs, "ids"), s, "with special tokens");
        json_t *offs = json_object_get(cs, "offsets");
        for (size_t i = 0; i < l.n && i < json_array_size(offs); i++) {
            json_t *o = json_array_get(offs, i);
            cr_expect(utf8_char_offset(s, l.starts[i]) == json_integer_value(json_array_get(o, 0)) &&
                          utf8_char_offset(s, l.ends[i]) == json_integer_value(json_array_get(o, 1)),
                      "'%s': token %zu at [%d, %d), HF [%lld, %lld)", s, i, l.starts[i], l.ends[i],
                      (long long)json_integer_value(json_array_get(o, 0)),
                      (long long)json_integer_value(json_array_get(o, 1)));
        }
        token_list_free(&l);
        cr_assert_eq(tokenizer_encode(t, s, strlen(s), false, &l), ST_OK, "%s", status_message());
        expect_ids(&l, json_object_get(cs, "ids_no_special"), s, "no special tokens");
        token_list_free(&l);
    }
    tokenizer_free(t);

    // tokens the vocabulary already has, and ids that overlap it, are refused
    char *again = NULL;
    tu_expect_err(tokenizer_json_add_tokens(out, strlen(out), (const char *[]){"[03]"}, 1, first_id + n, "minilm+slo",
                                            &again),
                  ST_USAGE, "'[03]'", "already in the vocabulary", NULL);
    cr_expect_null(again);
    tu_expect_err(tokenizer_json_add_tokens(text, len, (const char *[]){"<11>", "hello"}, 2, first_id, "minilm", &again),
                  ST_USAGE, "'hello'", "already in the vocabulary", NULL);
    tu_expect_err(tokenizer_json_add_tokens(text, len, (const char *[]){"[CLS]"}, 1, first_id, "minilm", &again),
                  ST_USAGE, "'[CLS]'", NULL, NULL);
    tu_expect_err(tokenizer_json_add_tokens(text, len, tokens, n, first_id - 1, "minilm", &again), ST_USAGE,
                  "overlap", NULL, NULL);
    cr_expect_null(again);
    free(out);
    free(text);
    free(tokens);
    json_decref(doc);
}
