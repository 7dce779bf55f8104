// test_encoder_common.h: what the BERT and MobileBERT suites share: the golden
// files of tests/reference/make_encoder_goldens.py and make_mobilebert_goldens.py
// (a packed batch, its targets, the reference outputs), fixture loading, the
// closeness check, head logits and the seeded-dropout check.
#ifndef ELASTILM_TEST_ENCODER_COMMON_H
#define ELASTILM_TEST_ENCODER_COMMON_H

#include "io/safetensors.h"
#include "models/encoder.h"

#define ENC_FIXTURES "tests/fixtures/encoders/"

typedef struct {
    SafetensorsFile g;
    EncoderBatch b;
    const int32_t *targets; // NULL for a model without a head
    int counted;            // targets >= 0
} Golden;

// ENC_FIXTURES<name>_golden.safetensors
void golden_open(Golden *gd, const char *name);
// The fixture directory ENC_FIXTURES<name> (fails the test on error).
void enc_load(Encoder *m, const char *name);
// max |ours - ref| <= rel * max |ref| (+ a 1e-7 absolute floor); returns the relative error.
float enc_check_close(const SafetensorsFile *g, const char *name, const float *ours, int64_t n, float rel);
// The head's logits of a batch (host array, malloc'd).
float *enc_logits_of(const Encoder *m, const EncoderBatch *b);
// With dropout a seed gives the same step (loss and gradients) twice and another
// seed another one; eval has no dropout and gives the golden loss.
void enc_check_dropout_seeded(const char *name);

#endif
