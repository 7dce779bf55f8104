// encoder.h: BERT-family encoders (BERT, MobileBERT) with classification heads:
// the TLM's backbone.
//
// Both architectures load from a Hugging Face directory (config.json +
// model.safetensors, with or without the "bert." / "mobilebert." prefix) into
// one structure; weights are PyTorch-layout [out, in] f32 on the CPU. The
// forward is one code path over ops.h for every device, shared by inference
// and training (saved activations, backward). A batch is a set of sequences
// packed back to back (no padding rows); attention is bidirectional within
// each sequence. A padded batch without an attention mask (the artifact's
// score-head training) is the same thing with the pads inside the sequences.
//
// Every weight has its Hugging Face name (without the model prefix):
// encoder_params lists them, and loading, saving, export, gradients and
// freezing all go through that one table.
#ifndef ELASTILM_ENCODER_H
#define ELASTILM_ENCODER_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/ops.h"
#include "runtime/tensor.h"

typedef enum { ENC_BERT = 0, ENC_MOBILEBERT } EncoderArch;

#define ENC_MAX_GROUPS 8 // label groups of a multi-task sequence head

// The classification head a model carries (or is given).
typedef enum {
    HEAD_NONE = 0,
    HEAD_TOKEN,    // *ForTokenClassification: logits [N, num_labels] from each token's hidden state
    HEAD_SEQUENCE, // *ForSequenceClassification: logits [n_seq, num_labels] from the pooled [CLS]
} EncoderHead;

typedef struct {
    EncoderArch arch;
    int vocab_size;        // V
    int dim;               // hidden_size D (MobileBERT: the 512 between blocks)
    int n_layers;          // L
    int n_heads;           // H
    int head_dim;          // BERT: D / H; MobileBERT: inner / H
    int ffn_dim;           // intermediate_size F
    int max_position;      // P
    int type_vocab;        // token types (2)
    float ln_eps;          // layer_norm_eps (BERT 1e-12)
    Activation act;        // hidden_act: gelu (exact) or relu
    int pad_token_id;
    // MobileBERT only (zero / false for BERT)
    int embedding_size;    // E: word-embedding width (128)
    int inner;             // width inside a block: intra_bottleneck_size with use_bottleneck, else D
    int n_ffn;             // num_feedforward_networks (4: three stacked FFNs, then the final one)
    bool trigram;          // trigram_input: [e(t+1); e(t); e(t-1)] -> Linear(3E -> D)
    bool use_bottleneck;
    bool kq_shared_bottleneck;     // one D -> inner projection feeds Q and K
    bool use_bottleneck_attention; // V from the bottlenecked input (else from the D-wide input)
    bool no_norm;          // normalization_type "no_norm": x * w + b instead of LayerNorm
    // Heads
    bool pooler;           // tanh(Linear(D, D)) over [CLS] (BERT, MobileBERT with classifier_activation);
                           // without it the sequence head reads [CLS] directly
    EncoderHead head;
    int num_labels;        // classifier rows (0 with HEAD_NONE)
    int n_groups;          // HEAD_SEQUENCE: the rows split into n_groups independent softmaxes of
                           // group_size[g] labels, in order (the TLM's decision head: 10 prompt ratios
                           // + 9 model ratios, i.e. two linear heads over one pooled output);
                           // 0 = one softmax over all num_labels. config.json: "elastilm_label_groups"
    int group_size[ENC_MAX_GROUPS];
} EncoderConfig;

typedef struct {
    Tensor w;  // [out, in]
    Tensor b;  // [out]
} Linear;

typedef struct {
    Tensor w;  // [D] gamma (LayerNorm) or scale (NoNorm)
    Tensor b;  // [D] beta / shift
} Norm;

typedef struct {
    Linear q, k, v;        // [D, D] each (H * head_dim = D)
    Linear o;              // [D, D]   attention.output.dense
    Norm attn_ln;          // [D]      attention.output.LayerNorm
    Linear inter;          // [F, D]   intermediate.dense
    Linear out;            // [D, F]   output.dense
    Norm out_ln;           // [D]      output.LayerNorm
} BertLayer;

// MobileBERT layer, I = inner (128), D = 512, F = 512 (transformers' module names).
typedef struct {
    Linear bn_input;       // [I, D]  bottleneck.input.dense       (+ Norm bn_input_ln [I])
    Norm bn_input_ln;
    Linear bn_attention;   // [I, D]  bottleneck.attention.dense   (only with kq_shared_bottleneck)
    Norm bn_attention_ln;
    Linear q, k;           // [I, I]  attention.self.query / key
    Linear v;              // [I, D or I] attention.self.value (D-wide input unless use_bottleneck_attention)
    Linear o;              // [I, I]  attention.output.dense
    Norm attn_ln;          // [I]     attention.output.LayerNorm
    Linear *ffn_inter;     // [n_ffn - 1] [F, I]  ffn.j.intermediate.dense
    Linear *ffn_out;       // [n_ffn - 1] [I, F]  ffn.j.output.dense
    Norm *ffn_ln;          // [n_ffn - 1] [I]     ffn.j.output.LayerNorm
    Linear inter;          // [F, I]  intermediate.dense
    Linear out;            // [I, F]  output.dense
    Norm out_ln;           // [I]     output.LayerNorm
    Linear out_bn;         // [D, I]  output.bottleneck.dense
    Norm out_bn_ln;        // [D]     output.bottleneck.LayerNorm
} MobileBertLayer;

typedef struct EncoderStorage EncoderStorage; // mapped files and owned buffers

typedef struct {
    EncoderConfig cfg;
    Tensor word_embd;      // [V, E or D] embeddings.word_embeddings
    Tensor pos_embd;       // [P, D]
    Tensor type_embd;      // [types, D]
    Linear embd_proj;      // MobileBERT: [D, 3E or E] embeddings.embedding_transformation
    Norm embd_ln;          // [D] embeddings.LayerNorm
    BertLayer *layers;     // [L] (ENC_BERT)
    MobileBertLayer *mlayers; // [L] (ENC_MOBILEBERT)
    Linear pooler;         // [D, D] pooler.dense (cfg.pooler)
    Linear classifier;     // [num_labels, D] (cfg.head != HEAD_NONE)
    EncoderStorage *storage;
    Device dev;
} Encoder;

// One weight: its Hugging Face name without the model prefix
// ("embeddings.word_embeddings.weight", "encoder.layer.3.output.dense.bias",
// "classifier.weight"), where it is, and which part of the model it belongs to.
typedef struct {
    char name[96];
    Tensor *t;
    int layer;             // 0..L-1 for encoder layers, -1 embeddings, L pooler and classifier
} EncoderParam;

// Lists the model's weights in a fixed order (embeddings, layers 0..L-1,
// pooler, classifier; only those the config has) into out (may be NULL to
// count); returns the count.
int encoder_params(Encoder *m, EncoderParam *out);

// Loads a Hugging Face directory (config.json "model_type" bert or mobilebert;
// model.safetensors). Names with and without the "bert."/"mobilebert."
// prefix are accepted; pretraining extras (cls.*, position_ids) are skipped.
// The head is taken from config.json's architectures (…ForTokenClassification,
// …ForSequenceClassification) and num_labels / id2label. On failure nothing is
// left allocated and the message names the file and the tensor or key at fault.
Status encoder_load(Encoder *m, const char *dir);
// A model of config c with every weight allocated (zero) in one owned buffer.
Status encoder_alloc(Encoder *m, const EncoderConfig *c);
// Random weights as transformers initialises them (normal(0, std), zero
// biases, unit norms), from seed (tests, a new head).
void encoder_init_random(Encoder *m, float std, uint64_t seed);
// Gives the model a fresh head (weights normal(0, 0.02), zero bias, seeded),
// replacing any it had: e.g. a token-classification head of 2 labels on a
// sentence encoder. As transformers' classes: a token head drops the pooler;
// a BERT sequence head gets a fresh one when the model has none.
Status encoder_set_head(Encoder *m, EncoderHead head, int num_labels, uint64_t seed);
// Splits a sequence head's labels into groups (sizes summing to num_labels),
// each its own softmax in training; n = 0 undoes it.
Status encoder_set_label_groups(Encoder *m, const int *sizes, int n);
// Grows the word embeddings to new_vocab rows (transformers'
// resize_token_embeddings): old rows kept, new rows normal(0, 0.02) from seed.
// The old table stays allocated with the model until encoder_free.
Status encoder_resize_vocab(Encoder *m, int new_vocab, uint64_t seed);
void encoder_free(Encoder *m);
// Writes the model as a Hugging Face directory (config.json with the
// architecture of its head, model.safetensors with the prefixed names, and
// the tokenizer files copied from tok_dir when not NULL), atomically.
Status encoder_save_hf(const Encoder *m, const char *dir, const char *tok_dir);
// The model's config.json text (what encoder_save_hf writes; *out malloc'd).
// Besides transformers' keys it holds "elastilm_pooler" (whether the weights
// include pooler.dense), so that the text alone fixes the parameter table.
Status encoder_config_json(const Encoder *m, char **out);
// Parses config.json text into c (as encoder_load does); `what` names the
// source in messages. Without "elastilm_pooler", a BERT has a pooler unless
// its head is a token head (transformers' classes); encoder_load then follows
// the weights file.
Status encoder_config_parse(EncoderConfig *c, const char *text, const char *what);
// Moves the weights to dev (f32). A no-op for the CPU.
Status encoder_to_device(Encoder *m, Device dev);
size_t encoder_n_params(const Encoder *m);

// ---- running ---------------------------------------------------------------

typedef struct {
    const int32_t *ids;    // [N] token ids, sequences back to back
    const int32_t *types;  // [N] token type ids, NULL = all 0
    const int32_t *cu;     // [n_seq + 1] sequence starts, cu[0] = 0, cu[n_seq] = N
    int n_seq;
    int n_tokens;          // N
} EncoderBatch;

// Checks ids, types, lengths (each sequence 1..max_position tokens) against the model.
Status encoder_check_batch(const Encoder *m, const EncoderBatch *b, int max_tokens);

typedef struct EncoderSession EncoderSession;

// Scratch for batches of up to max_tokens tokens on the model's device.
Status encoder_session_new(EncoderSession **s, const Encoder *m, int max_tokens);
void encoder_session_free(EncoderSession *s);
// Last hidden states, hidden [N, D] (on the model's device).
Status encoder_hidden(EncoderSession *s, const EncoderBatch *b, Tensor *hidden);
// The head's logits: [N, num_labels] (HEAD_TOKEN) or [n_seq, num_labels]
// (HEAD_SEQUENCE), copied to host memory `logits`.
Status encoder_logits(EncoderSession *s, const EncoderBatch *b, float *logits);

// ---- training --------------------------------------------------------------

// Gradients of every weight, in an Encoder-shaped structure (the same names
// and shapes, zero-initialised, one owned buffer).
typedef struct EncoderTrain EncoderTrain;

typedef struct {
    int freeze_below;      // encoder layers < freeze_below get no gradient (the artifact: L / 2)
    bool freeze_embeddings;
    int train_word_rows_from; // with freeze_embeddings: word-embedding rows >= this still train (tokens
                           // added to a frozen vocabulary, e.g. the decision head's SLO tokens); 0 = none.
                           // The rows below get a zero gradient, so AdamW without weight decay keeps them
    float dropout;         // hidden dropout (embeddings, attention and FFN outputs, classifier input), seeded
                           // from dropout_seed; attention-probability dropout is not applied. 0 = none
} EncoderTrainOptions;

Status encoder_train_new(EncoderTrain **t, Encoder *m, const EncoderTrainOptions *opt, int max_tokens);
void encoder_train_free(EncoderTrain *t);
// The trainable weights move into one flat buffer (the model's tensors become
// views of it, values unchanged) and their gradients live in another: what the
// optimizer and the all-reduce see. Frozen weights get no gradient.
Tensor *encoder_train_params(EncoderTrain *t);   // [n_trainable] f32
Tensor *encoder_train_grads(EncoderTrain *t);    // [n_trainable] f32
// The gradient of parameter i of encoder_params(m), a view into the flat
// gradients (NULL when frozen).
Tensor *encoder_train_grad(EncoderTrain *t, int i);
void encoder_train_zero_grads(EncoderTrain *t);
// Forward + backward of loss_scale * sum of the cross-entropies of the counted
// targets, ACCUMULATING the gradients. targets: [N] per token (HEAD_TOKEN) or
// [n_seq] (HEAD_SEQUENCE); with label groups [n_seq * n_groups], row-major,
// each target an index within its group (the loss sums the groups'
// cross-entropies). Negative = not counted (-100). *loss_sum receives the
// unscaled sum and *counted the number counted (either may be NULL); with
// label groups the sequences with any target counted.
Status encoder_train_step(EncoderTrain *t, const EncoderBatch *b, const int32_t *targets, float loss_scale,
                          uint64_t dropout_seed, double *loss_sum, int64_t *counted);
// Forward only, without dropout.
Status encoder_train_eval(EncoderTrain *t, const EncoderBatch *b, const int32_t *targets, double *loss_sum,
                          int64_t *counted);

#endif
