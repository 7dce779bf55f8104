// test_util.h: helpers shared by the criterion tests.
#ifndef ELASTILM_TEST_UTIL_H
#define ELASTILM_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "models/llama.h"
#include "runtime/status.h"
#include "text/tokenizer.h"

// Opens a safetensors file or fails the test with the status message.
void tu_open_safetensors(SafetensorsFile *f, const char *path);
// The named tensor, checked for dtype; fails the test when absent.
const SafeTensor *tu_tensor(const SafetensorsFile *f, const char *name, DType dt);
// max |a - b| over n floats.
float tu_max_abs_diff(const float *a, const float *b, size_t n);
// max |a| over n floats (NaNs are passed over): the scale for relative tolerances.
float tu_max_abs(const float *a, size_t n);
// A failed call: requires st == code, then expects each non-NULL needle in
// status_message() and the message to be one line.
void tu_expect_err(Status st, Status code, const char *n1, const char *n2, const char *n3);
// Writes bytes to a fresh file under /tmp and returns its path (static buffer per call slot).
const char *tu_write_temp(const void *data, size_t len, const char *suffix, char *path_buf, size_t path_len);
// Reads a whole file into a malloc'd buffer.
uint8_t *tu_read_file(const char *path, size_t *len);
// Replaces the first occurrence of from in a text file with to; fails the test when from is absent.
void tu_replace_in_file(const char *path, const char *from, const char *to);
// Makes a fresh directory /tmp/elastilm-<prefix>-XXXXXX (mkdtemp); its path goes into buf.
// Fails the test when the path does not fit or the directory cannot be made.
void tu_make_temp_dir(char *buf, size_t n, const char *prefix);
// Copies a directory's regular files into a fresh temp directory; returns its path in buf.
void tu_copy_dir(const char *src, char *buf, size_t n);
// Removes a directory made by tu_make_temp_dir or tu_copy_dir, with everything under it
// (it must lie under /tmp/elastilm-); true when it existed and is gone.
bool tu_remove_dir(const char *dir);
// Writes text to dir/rel, making rel's parent folders; fails the test if it cannot.
void tu_write_file_in(const char *dir, const char *rel, const char *text);
// Runs a shell command, capturing stderr+stdout into out; returns the exit status.
int tu_run(const char *cmd, char *out, size_t n);
// The elastilm binary under test: $ELASTILM_BIN, else ./elastilm.
const char *tu_bin(void);

// Runs ids (n_seq sequences of T tokens) through a fresh CPU session of m with view
// (NULL: the full model) and puts every position's logits into out, a new F32
// tensor [n_seq * T, vocab] the caller frees.
void tu_logits(const LlamaModel *m, const LlamaView *view, const int32_t *ids, int n_seq, int T, Tensor *out);

// Writes a tokenizer.json of a byte-level BPE with no merges whose 256 tokens
// are the bytes (id b = byte b): a tokenizer for the tiny fixtures' vocabulary of 256.
void tu_write_byte_tokenizer(const char *path);

// Encodes every string of tests/fixtures/tokenizers/corpus.jsonl.gz and
// requires what <name>.golden.jsonl.gz holds (HF ids with and without special
// tokens, character offsets, decodes with and without special tokens).
void tu_check_tokenizer(const Tokenizer *t, const char *name);

#endif
