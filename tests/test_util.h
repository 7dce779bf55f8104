// test_util.h: helpers shared by the criterion tests.
#ifndef ELASTILM_TEST_UTIL_H
#define ELASTILM_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "text/tokenizer.h"

// Opens a safetensors file or fails the test with the status message.
void tu_open_safetensors(SafetensorsFile *f, const char *path);
// The named tensor, checked for dtype; fails the test when absent.
const SafeTensor *tu_tensor(const SafetensorsFile *f, const char *name, DType dt);
// max |a - b| over n floats.
float tu_max_abs_diff(const float *a, const float *b, size_t n);
// Writes bytes to a fresh file under /tmp and returns its path (static buffer per call slot).
const char *tu_write_temp(const void *data, size_t len, const char *suffix, char *path_buf, size_t path_len);
// Reads a whole file into a malloc'd buffer.
uint8_t *tu_read_file(const char *path, size_t *len);
// Copies a directory's regular files into a fresh temp directory; returns its path in buf.
void tu_copy_dir(const char *src, char *buf, size_t n);
// Removes a directory made by tu_copy_dir (its files, then itself).
void tu_remove_dir(const char *dir);
// Runs a shell command, capturing stderr+stdout into out; returns the exit status.
int tu_run(const char *cmd, char *out, size_t n);

// Writes a tokenizer.json of a byte-level BPE with no merges whose 256 tokens
// are the bytes (id b = byte b): a tokenizer for the tiny fixtures' vocabulary of 256.
void tu_write_byte_tokenizer(const char *path);

// Encodes every string of tests/fixtures/tokenizers/corpus.jsonl.gz and
// requires what <name>.golden.jsonl.gz holds (HF ids with and without special
// tokens, character offsets, decodes with and without special tokens).
void tu_check_tokenizer(const Tokenizer *t, const char *name);

#endif
