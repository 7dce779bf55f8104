// tlm_store.h: the TLM in the elastic artifact, and opening a TLM from either
// an artifact or a Hugging Face directory.
//
// Layout (docs/hdf5.md): group tlm/score with attributes "config" (the
// encoder's config.json text, as encoder_save_hf writes it), "tokenizer" (its
// tokenizer.json text) and "info" (how it was trained), and one f32 dataset
// per weight named by its Hugging Face name without the model prefix
// ("encoder.layer.3.output.dense.weight"). The artifact holds everything:
// compression needs no file beside it.
#ifndef ELASTILM_TLM_STORE_H
#define ELASTILM_TLM_STORE_H

#include "models/encoder.h"
#include "text/tokenizer.h"

#define TLM_SCORE_GROUP "tlm/score"
#define TLM_DECISION_GROUP "tlm/decision" // the decision head: the same layout, its own encoder and tokenizer

// Writes m and the tokenizer.json of tok_dir into group of the artifact
// (created when absent; the group is replaced), atomically.
Status tlm_store_save(const char *artifact, const char *group, Encoder *m, const char *tok_dir, const char *info);
// The same with the tokenizer.json text given (a tokenizer with added tokens).
Status tlm_store_save_text(const char *artifact, const char *group, Encoder *m, const char *tok_json, const char *info);
// Reads group of the artifact into *m (CPU, f32) and its tokenizer.
Status tlm_store_load(const char *artifact, const char *group, Encoder *m, Tokenizer **tok);
// The tokenizer's ids must index the encoder's embedding: an error naming what
// when the tokenizer has more tokens than the model's vocabulary.
Status tlm_check_vocab(const Encoder *m, const Tokenizer *tok, const char *what);
// path: an artifact (.h5, group tlm/score) or an HF directory of an encoder
// with a token-classification head (config.json, model.safetensors, tokenizer.json).
Status tlm_open(const char *path, Encoder *m, Tokenizer **tok);

#endif
