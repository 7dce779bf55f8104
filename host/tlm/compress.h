// compress.h: prompt-compression rules, independent of any model. The caller
// supplies the encoder's tokens and one keep-score per token (a probability or
// the logit of class 1 "keep"); this layer turns them into compressed text.
//
//   1. ElastiLM's system-prompt compression (harness spec §3.3 steps 4-6):
//      tlm_sys_ratio / tlm_keep_count, then either
//        - paper mode (default, tlm_compress_paper): keep the `count`
//          highest-scored encoder tokens, rebuild from their byte spans, or
//        - compat mode (tlm_compress_compat, [AS-CODED]): keep the `count`
//          LOWEST-scored encoder positions and decode the LLM ids at those
//          positions with the ENCODER tokenizer, as the artifact does.
//   2. LLMLingua-2 as llmlingua 0.2.2 runs it (compress_prompt with one
//      context, token-level filter; notes §2.2 steps 1-8): lingua2_compress,
//      with the classifier plugged in as a callback.
#ifndef ELASTILM_TLM_COMPRESS_H
#define ELASTILM_TLM_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/status.h"
#include "text/tokenizer.h"

// ---- ElastiLM (spec §3.3) ---------------------------------------------------

// sys_ratio = max(0, ((S + Q) * p - Q) / S) in double, as Python computes it.
// S: LLM tokens of the system prompt with BOS; Q: max over the choices of the
// LLM tokens of "Question: {q} Answer: {choice}" with BOS; p: prompt ratio.
// S <= 0 gives 0.
double tlm_sys_ratio(long S, long Q, double p);
// int(sys_ratio * S) + 1 (truncation toward zero of the double product).
long tlm_keep_count(double sys_ratio, long S);

// The encoder's view of the system prompt: tokenizer_encode's output (spans are
// byte offsets into text) and one score per token. special[i] (NULL: none) marks
// [CLS]/[SEP]-like tokens.
typedef struct {
    const char *text;
    size_t len;
    const int32_t *starts, *ends; // [n]
    const bool *special;          // [n] or NULL
    const float *scores;          // [n]
    size_t n;
} TlmTokens;

// Paper mode. Selection: among the non-special tokens with a non-empty span,
// the `count` highest scores (ties: the earlier token first); count <= 0 keeps
// none, count >= their number keeps all. Rebuild, in text order:
//   * the output starts at the first kept token and ends with the last one
//     (no leading/trailing whitespace of the prompt is carried);
//   * each kept token's own bytes text[start, end) are copied;
//   * between two kept tokens a and b (a before b):
//       - if no non-empty text token lies between them, the original bytes
//         text[a.end, b.start) are copied exactly ("" inside a word, " ",
//         "\n\n", ...), so keeping everything gives back the trimmed prompt;
//       - otherwise (tokens were dropped between them) the separator is the LAST
//         maximal run of whitespace (' ', \t, \n, \v, \f, \r) in
//         text[a.end, b.start), so a kept token that started a line still does;
//         when that stretch has no whitespace (dropped punctuation or word
//         pieces), a single " ".
// Tokens whose spans overlap an earlier kept token's (several tokens for one
// character) are copied from the end of what was already written.
// *out: malloc'd, NUL-terminated; *out_len (may be NULL) its length.
Status tlm_compress_paper(const TlmTokens *tok, long count, char **out, size_t *out_len);

// Compat mode's selection: positions 0..n-1 sorted by ascending score (stable:
// ties keep position order), the first min(count, n) marked in selected[n].
void tlm_select_lowest(const float *scores, size_t n, long count, bool *selected);

// Compat mode ([AS-CODED], spec §3.3 steps 5-6). scores: [n_enc] the score head
// over the encoder encoding of the system prompt, [CLS]/[SEP] included (the
// positions are encoder positions). llm_ids: [S] the LLM ids of the system
// prompt with BOS. For idx in 0..S-1, llm_ids[idx] is kept when idx < n_enc
// and idx is selected by tlm_select_lowest(scores, n_enc, count); kept ids
// outside [0, encoder vocab size) are dropped; the rest are decoded with
// tokenizer_decode(encoder, ..., skip_special). The artifact uses
// skip_special = false (the text may contain "[CLS]").
Status tlm_compress_compat(const float *scores, size_t n_enc, long count, const int32_t *llm_ids, size_t S,
                           const Tokenizer *encoder, bool skip_special, char **out, size_t *out_len);

// ---- LLMLingua-2 (llmlingua 0.2.2) -------------------------------------------

// What the token classifier gives for one chunk: the unpadded tokens exactly as
// llmlingua's TokenClfDataset builds them, ([CLS] + tokenize(chunk) + [SEP]) cut
// to 512, with their token strings (WordPiece strings, "##" continuations,
// "[NEWi]" force tokens), and probs[i] = softmax(logits)[i][1] in float32.
// The callback fills tokens/probs with malloc'd memory; the library frees them
// with lingua2_scores_free.
typedef struct {
    char **tokens;
    float *probs;
    size_t n;
} Lingua2Scores;
void lingua2_scores_free(Lingua2Scores *s);

typedef Status (*Lingua2ScoreFn)(void *ctx, const char *chunk, size_t len, Lingua2Scores *out);

typedef struct {
    const Tokenizer *encoder;         // the classifier's WordPiece tokenizer ("##" prefix)
    const Tokenizer *cl100k;          // tokenizer_load_tiktoken(cl100k_base): word weights
    Lingua2ScoreFn score;             // the classifier (called once per chunk when rate < 1)
    void *ctx;
    const char *const *force_tokens;  // [n_force], e.g. {"\n", "?"}; at most 100
    int n_force;
} Lingua2;

// compress_prompt(text, rate, force_tokens)["compressed_prompt"], byte for byte:
//  1. force token i that does not tokenize to exactly one encoder token is
//     mapped to "[NEWi]" (the text gets str.replace(t, "[NEWi]")); the mapped
//     forms of "." and "\n" join the chunk end tokens {".", "\n"};
//  2. chunks of <= 510 encoder tokens, cut after the last end token within
//     tokens[st+1 .. st+510] (else at st+510), each a STRING: the WordPiece
//     decoder (cleanup) applied to its tokens; "[NEW0]".."[NEW99]" are tokens;
//  3. rate >= 1: the chunk strings joined with "", "[NEWi]" replaced back;
//  4. else per chunk: score() -> tokens, probs; [CLS] [SEP] [UNK] [MASK] [PAD]
//     skipped; a token starts a word if its form without leading '#'s is a force
//     token or a mapped "[NEWi]" (prob := 1.0; "[NEWi]" written back as its
//     force token) or if it does not start with "##"; otherwise that form is
//     appended to the previous word. Word prob = float32 mean of its token
//     probs (sequential float32 sum);
//  5. thr = numpy.percentile(word probs each repeated by its cl100k token
//     count, int(100 * max(0, 1 - rate) + 1)) with linear interpolation, in
//     float32 (or float64 when a word is a lone forced token: numpy then builds
//     a float64 array); keep words with p > thr, or p == 1 when thr == 1;
//  6. kept words joined by the WordPiece decoder (cleanup), chunks joined with "".
Status lingua2_compress(const Lingua2 *c, const char *text, size_t len, double rate, char **out, size_t *out_len);

// ---- pieces of lingua2_compress, exposed for tests --------------------------

// int(100 * max(0, 1 - rate) + 1) in double (rate 0.8 -> 20, 0.6 -> 41, 0.4 -> 61, 0.2 -> 81).
int lingua2_percent(double rate);
// numpy.percentile(values[n], q) with the default linear method, computed as
// numpy does for a float32 array (f64 = false) or a float64 one (f64 = true).
// values must be float32-representable. n == 0 gives NaN.
double lingua2_percentile(const double *values, size_t n, int q, bool f64);
// tokenizers' WordPiece decoder (prefix "##", cleanup = true) over strings:
// tokens after the first lose a leading "##" or get a " " in front, then each
// is cleaned (" ." -> ".", " ?" -> "?", " !", " ,", " ' " -> "'", " n't",
// " 'm", " do not" -> " don't", " 's", " 've", " 're"). malloc'd.
char *lingua2_wordpiece_join(const char *const *tokens, size_t n);
// The chunk strings of step 2 for a text in which force tokens are already
// replaced by their "[NEWi]" forms (end: the chunk end tokens, n_end of them).
Status lingua2_chunks(const Tokenizer *encoder, const char *text, size_t len, const char *const *end, int n_end,
                      char ***chunks, size_t *n_chunks);

#endif
