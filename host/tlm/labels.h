// labels.h: keep/drop labels for the TLM's score head.
//
// A label set is a list of texts, each with labelled byte spans (a word, or a
// token): 1 = keep, 0 = drop. The encoder's WordPieces take the label of the
// span they fall in (tlm/score_data.h), so the same file serves any encoder
// vocabulary. Two sources:
//   - pairs of (prompt, compressed prompt), as in MeetingBank-LLMCompressed
//     (the data the paper used): the artifact's greedy in-order token match;
//   - the target LLM itself (when no compressed data exists): each LLM token's
//     self-information -log p(x_t | x_<t), summed per word through character
//     offsets, the top fraction q of each chunk's words labelled keep.
// On disk: JSON lines {"text": "...", "spans": [[start, end, label], ...]}.
#ifndef ELASTILM_LABELS_H
#define ELASTILM_LABELS_H

#include <stdint.h>

#include "models/llama.h"
#include "runtime/log.h"
#include "runtime/status.h"
#include "text/tokenizer.h"

typedef struct {
    int32_t start, end;  // byte span [start, end) of the text
    int32_t label;       // 1 keep, 0 drop
} LabelSpan;

typedef struct {
    char *text;          // NUL-terminated
    int32_t len;         // bytes
    LabelSpan *spans;    // [n_spans], sorted by start, disjoint
    int n_spans;
} LabelledText;

typedef struct {
    LabelledText *items; // [n]
    int n, cap;
} LabelSet;

void labels_free(LabelSet *s);
// Takes ownership of text and spans.
Status labels_push(LabelSet *s, char *text, int32_t len, LabelSpan *spans, int n_spans);
// Reads / writes (atomically) the JSON-lines form. A malformed line, a span
// outside its text, overlapping or unsorted spans, a label other than 0 or 1
// are errors naming the file and line.
Status labels_read(LabelSet *s, const char *path);
Status labels_write(const LabelSet *s, const char *path);

// Words of text as the encoder's pre-tokenizer cuts them: spans of a WordPiece
// and the "##" pieces that continue it (enc must be a WordPiece tokenizer).
// *starts / *ends are malloc'd [*n] byte offsets.
Status labels_words(const Tokenizer *enc, const char *text, int32_t len, int32_t **starts, int32_t **ends, int *n);

// Splits text into chunks of at most max_pieces encoder WordPieces (510 for a
// 512-token encoder), cut after the last "." piece or line break inside the
// window (LLMLingua-2's chunker), else at the window's end. Chunks are byte
// ranges of the text: *starts / *ends malloc'd [*n].
Status labels_chunks(const Tokenizer *enc, const char *text, int32_t len, int max_pieces, int32_t **starts,
                     int32_t **ends, int *n);

// Greedy in-order match (the artifact's train_mobilebert_scorehead.py): walk
// the prompt's WordPieces; a piece is kept when it equals the next unmatched
// piece of the compressed prompt (both advance). At most max_pieces of each
// side are used. Spans are the prompt's pieces.
Status labels_match(const Tokenizer *enc, const char *prompt, const char *compressed, int max_pieces,
                    LabelledText *out);
// JSON lines with "prompt" and "compressed_prompt" strings, or MeetingBank's
// "prompt_list" and "compressed_prompt_list" (one labelled text per pair);
// only the first `limit` records (lines) when limit >= 0.
Status labels_from_pairs(LabelSet *s, const Tokenizer *enc, const char *path, int max_pieces, long limit);

typedef struct {
    double keep_lo, keep_hi; // fraction of a chunk's words labelled keep: drawn per chunk from
                             // {keep_lo, keep_lo + 0.1, ..., keep_hi} (equal: always that fraction)
    uint64_t seed;           // draws of the fraction
    int max_pieces;          // chunk size in encoder WordPieces (510)
    const char *force;       // words always kept (each char a one-character word, e.g. "?"); may be NULL
} SurprisalOptions;

// Self-information of each word of text under the LLM m (f32 CPU weights or
// any device): the text with BOS, -log p of every token, each token's value
// split evenly over the words its byte span overlaps. info [n_words] (malloc'd),
// aligned with labels_words.
Status labels_word_info(const LlamaModel *m, const Tokenizer *llm_tok, const Tokenizer *enc, const char *text,
                        int32_t len, double **info, int32_t **starts, int32_t **ends, int *n_words);

// Labels every chunk of every document (documents: texts separated by blank
// lines in the caller's file) and appends one labelled text per chunk.
Status labels_from_surprisal(LabelSet *s, const LlamaModel *m, const Tokenizer *llm_tok, const Tokenizer *enc,
                             const char *const *docs, const int32_t *doc_lens, int n_docs,
                             const SurprisalOptions *o, Progress *p);

#endif
