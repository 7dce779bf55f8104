// Helpers of the encoder suites (test_encoder.c, test_encoder_mobilebert.c).
#include "test_encoder_common.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

void golden_open(Golden *gd, const char *name) {
    char path[256];
    snprintf(path, sizeof path, ENC_FIXTURES "%s_golden.safetensors", name);
    tu_open_safetensors(&gd->g, path);
    const SafeTensor *ids = tu_tensor(&gd->g, "ids", DT_I32), *cu = tu_tensor(&gd->g, "cu", DT_I32);
    gd->b = (EncoderBatch){.ids = (const int32_t *)ids->data,
                           .types = (const int32_t *)tu_tensor(&gd->g, "types", DT_I32)->data,
                           .cu = (const int32_t *)cu->data,
                           .n_seq = (int)cu->shape[0] - 1,
                           .n_tokens = (int)ids->shape[0]};
    const SafeTensor *t = safetensors_find(&gd->g, "targets");
    gd->targets = t ? (const int32_t *)t->data : NULL;
    gd->counted = 0;
    for (int64_t i = 0; t && i < t->shape[0]; i++) gd->counted += gd->targets[i] >= 0;
}

void enc_load(Encoder *m, const char *name) {
    char path[256];
    snprintf(path, sizeof path, ENC_FIXTURES "%s", name);
    cr_assert_eq(encoder_load(m, path), ST_OK, "%s", status_message());
}

float enc_check_close(const SafetensorsFile *g, const char *name, const float *ours, int64_t n, float rel) {
    const SafeTensor *ref = tu_tensor(g, name, DT_F32);
    int64_t rn = 1;
    for (int i = 0; i < ref->ndim; i++) rn *= ref->shape[i];
    cr_assert_eq(rn, n, "%s: %lld elements, ours %lld", name, (long long)rn, (long long)n);
    const float *r = (const float *)ref->data;
    float scale = tu_max_abs(r, (size_t)n), err = tu_max_abs_diff(r, ours, (size_t)n);
    cr_assert(err <= rel * scale + 1e-7f, "%s: max |diff| %g vs max |ref| %g", name, err, scale);
    return scale > 1e-6f ? err / scale : 0.0f; // (some gradients are 0 up to rounding, e.g. key biases')
}

float *enc_logits_of(const Encoder *m, const EncoderBatch *b) {
    EncoderSession *s;
    cr_assert_eq(encoder_session_new(&s, m, 64), ST_OK, "%s", status_message());
    int rows = m->cfg.head == HEAD_TOKEN ? b->n_tokens : b->n_seq;
    float *lg = malloc((size_t)rows * (size_t)m->cfg.num_labels * sizeof *lg);
    cr_assert_eq(encoder_logits(s, b, lg), ST_OK, "%s", status_message());
    encoder_session_free(s);
    return lg;
}

void enc_check_dropout_seeded(const char *name) {
    Encoder m;
    enc_load(&m, name);
    Golden gd;
    golden_open(&gd, name);
    EncoderTrain *t;
    cr_assert_eq(encoder_train_new(&t, &m, &(EncoderTrainOptions){.dropout = 0.1f}, 64), ST_OK);
    double l1, l2, l3, l0;
    int64_t n = encoder_train_grads(t)->shape[0];
    float *g1 = malloc((size_t)n * sizeof *g1);
    encoder_train_zero_grads(t);
    cr_assert_eq(encoder_train_step(t, &gd.b, gd.targets, 1.0f, 42, &l1, NULL), ST_OK);
    memcpy(g1, encoder_train_grads(t)->data, (size_t)n * sizeof *g1);
    encoder_train_zero_grads(t);
    cr_assert_eq(encoder_train_step(t, &gd.b, gd.targets, 1.0f, 42, &l2, NULL), ST_OK);
    cr_expect_eq(l1, l2, "%s", name);
    cr_expect_eq(memcmp(g1, encoder_train_grads(t)->data, (size_t)n * sizeof *g1), 0, "%s", name);
    cr_assert_eq(encoder_train_step(t, &gd.b, gd.targets, 1.0f, 43, &l3, NULL), ST_OK);
    cr_expect_neq(l1, l3, "%s", name);
    cr_assert_eq(encoder_train_eval(t, &gd.b, gd.targets, &l0, NULL), ST_OK);
    float ref = ((const float *)tu_tensor(&gd.g, "loss", DT_F32)->data)[0];
    cr_expect(fabs(l0 / gd.counted - ref) <= 1e-5 * fabs(ref), "%s: eval loss %.7f vs %.7f", name, l0 / gd.counted,
              ref);
    free(g1);
    encoder_train_free(t);
    safetensors_close(&gd.g);
    encoder_free(&m);
}
