// test_util.h: helpers shared by the criterion tests.
#ifndef ELASTILM_TEST_UTIL_H
#define ELASTILM_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "models/llama.h"
#include "ops/ops.h"
#include "runtime/rng.h"
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
// A file's bytes as a NUL-terminated string (malloc'd); *len (may be NULL) its size.
char *tu_read_text(const char *path, size_t *len);
// The loss column (the third: step, epoch, loss, ...) of a trainer's train_log.tsv,
// at most cap values; returns how many.
int tu_train_losses(const char *path, double *out, int cap);
// A tiny random BERT token classifier (2 layers, 16 wide, 2 labels, seed 7) with the
// all-MiniLM-L6-v2 WordPiece tokenizer: dir/tok/tokenizer.json and the HF directory
// dir/enc, whose path goes to enc.
void tu_make_tiny_encoder(const char *dir, char *enc, size_t n);
// The same under dir/name with max_position positions and head (an EncoderHead: HEAD_TOKEN, HEAD_SEQUENCE, ...).
void tu_make_tiny_encoder_as(const char *dir, const char *name, int max_position, int head, char *enc, size_t n);
// Runs a shell command, capturing stderr+stdout into out; returns the exit status.
int tu_run(const char *cmd, char *out, size_t n);
// The elastilm binary under test: $ELASTILM_BIN, else ./elastilm.
const char *tu_bin(void);
// Runs the binary under test with the printf-formatted arguments on one thread
// (ELASTILM_THREADS=1), as tu_run.
int tu_run_bin(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

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

// ---- f32 tensors on the CPU (the op tests) ---------------------------------------
// 1-d or 2-d tensors and strided views of them; element i counts row-major over
// the logical shape.

Tensor tu_zeros_1d(int64_t n);
Tensor tu_zeros_2d(int64_t rows, int64_t cols);
// N(0, 1) entries.
Tensor tu_random_2d(Rng *r, int64_t rows, int64_t cols);
// A [n] parameter around mean with spread sd.
Tensor tu_random_1d(Rng *r, int64_t n, float mean, float sd);
int64_t tu_numel(const Tensor *t);
float *tu_elem(const Tensor *t, int64_t i);
// Element (i, j) of a 2-d tensor.
float tu_at(const Tensor *t, int64_t i, int64_t j);
void tu_fill(Tensor *t, float v);
// Element by element; the counts must agree.
void tu_copy_into(Tensor *dst, const Tensor *src);
// A fresh contiguous copy of the same shape.
Tensor tu_copy_of(const Tensor *t);
// sum(r ⊙ y) in double.
double tu_project(const Tensor *r, const Tensor *y);
void tu_free_tensors(Tensor **all, size_t n);
#define TU_FREE_ALL(...)                                            \
    do {                                                            \
        Tensor *tu_all_[] = {__VA_ARGS__};                          \
        tu_free_tensors(tu_all_, sizeof tu_all_ / sizeof *tu_all_); \
    } while (0)

// ---- finite-difference checks of backwards ---------------------------------------
//
// A backward is checked against central finite differences of a scalar
// L = sum(r ⊙ f(inputs)) with a fixed random projection r (so dout = r): for a
// random direction u and for TU_FD_COORDS single coordinates, the analytic
// <grad, delta> against (L(x + delta) - L(x - delta)) / 2, where delta is the
// perturbation eps * u as actually stored in fp32 (so the rounding of x + eps u
// does not count as error). L is accumulated in double; f runs in fp32.
// Tolerance: |analytic - numeric| <= TU_FD_REL * max(|analytic|, |numeric|, TU_FD_FLOOR),
// TU_FD_REL = 1e-2 (fp32 forward, eps = 1e-3: the numeric side carries about
// 1e-7 * sqrt(#outputs) / eps of rounding noise, observed below 1e-5 absolute
// in the op tests) and TU_FD_FLOOR = 1e-2, the gradient size below which that
// absolute noise is what is compared. Gradients of the op tests' cases are O(1),
// so a wrong term fails by orders of magnitude (observed errors are ~1e-5 relative).

#define TU_FD_EPS 1e-3f
#define TU_FD_REL 1e-2
#define TU_FD_FLOOR 1e-2
#define TU_FD_COORDS 6 // single coordinates checked per input, besides the random direction

typedef double (*TuLossFn)(void *ctx); // L(current inputs), in double

// Checks grad (same shape as x, the view the op reads) against finite
// differences of loss along a random direction and TU_FD_COORDS coordinates
// (x is perturbed in place and restored); returns the largest relative error seen.
double tu_fd_check(const char *what, TuLossFn loss, void *ctx, Tensor *x, const Tensor *grad, Rng *rng);

// twice = 2 once element by element (a backward called twice accumulates), once
// not trivially zero.
void tu_expect_doubled(const char *what, const Tensor *once, const Tensor *twice);

// out = embedding(table, ids), L = sum(r ⊙ out).
typedef struct {
    Tensor table, out, r; // [V, D], [N, D], [N, D]
    const int32_t *ids;   // [N]
} TuEmbeddingCase;
double tu_embedding_loss(void *ctx);

// Packed varlen attention: q, k, v as column-prefix views of wider buffers (a
// prefix of heads), with out, lse, r and zeroed gradients.
typedef struct {
    VarlenShape s;
    int32_t cu[8];
    Tensor qb, kb, vb;  // the wider buffers
    Tensor q, k, v;     // [N, H*hd], [N, KV*hd] views of them
    Tensor out, lse, r; // [N, H*hd], [H, N], [N, H*hd]
    Tensor dq, dk, dv;  // zeroed gradients
} TuAttnCase;

// n_seq <= 7 sequences of lens[b] tokens; causal or bidirectional.
void tu_attn_case_init(TuAttnCase *c, Rng *rng, const int *lens, int n_seq, int H, int KV, int hd, bool bidir);
void tu_attn_case_free(TuAttnCase *c);
// The forward (out, lse) and the backward into dq, dk, dv.
void tu_attn_backward(TuAttnCase *c);
// A case of head_dim 8 from an Rng seeded with seed (tu_attn_case_init), then
// tu_attn_backward and FD checks of dq, dk and dv ("<name> dq", ...); the
// caller frees c.
void tu_attn_fd_case(TuAttnCase *c, const char *name, const int *lens, int n_seq, int H, int KV, uint64_t seed,
                     bool bidir);
// tu_attn_backward again doubles dq, dk and dv (the += contract; "<name> dq", ...).
void tu_attn_expect_accumulates(const char *name, TuAttnCase *c);

// A .tiktoken file (written to a temp path) with the 256 single bytes (ranks
// 0..255, minus skip_byte if >= 0), "aa" 256, "aaa" 257, then the lines extra.
const char *tu_tiny_tiktoken(int skip_byte, const char *extra, char *path, size_t n);

// The tiny Llama-3 fixture (vocabulary 256) with a byte tokenizer.json in dir/name (created); its path into out.
void tu_make_byte_llm(const char *dir, const char *name, char *out, size_t n);
// The same LLM in dir/llm (its path into llm) and an artifact of it in dir/art.h5 (into art):
// elasticize with no anchors (all nine levels differ) on 4 x 16 tokens of tests/fixtures/train/text.txt.
void tu_make_byte_llm_artifact(const char *dir, char *llm, size_t nl, char *art, size_t na);
// The "scores" of every line of an eval predictions file, in order, into out (at most cap); returns how many.
int tu_pred_scores(const char *path, double *out, int cap);

#endif
