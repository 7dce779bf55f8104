// tokenizer.h: Hugging Face-compatible tokenizers (byte-level BPE,
// SentencePiece-style BPE, WordPiece), built from a tokenizer.json or from a
// GGUF file's tokenizer.ggml.* metadata.
#ifndef ELASTILM_TOKENIZER_H
#define ELASTILM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/gguf.h"
#include "runtime/status.h"

typedef struct Tokenizer Tokenizer;

typedef struct {
    int32_t *ids;     // [n]
    int32_t *starts;  // [n] input byte offset where the token's text starts
    int32_t *ends;    // [n] input byte offset where it ends (exclusive)
    bool *special;    // [n] added by the post-processor or a special added token
    size_t n, cap;
} TokenList;

void token_list_free(TokenList *l);
Status token_list_push(TokenList *l, int32_t id, int32_t start, int32_t end, bool special);

// path: a tokenizer.json (or tokenizer.json.gz).
Status tokenizer_load_json(Tokenizer **out, const char *path);
// The same from the JSON text in memory; what names it in messages.
Status tokenizer_load_json_text(Tokenizer **out, const char *json, size_t len, const char *what);
// The tokenizer a GGUF file carries (tokenizer.ggml.model gpt2 or llama).
Status tokenizer_load_gguf(Tokenizer **out, const GgufFile *g);
// Writes the tokenizer a GGUF file carries as a Hugging Face tokenizer.json at
// path (atomically): the gpt2 (byte-level BPE) vocabulary as transformers
// converts it (BPE with the GGUF's vocabulary and merges; CONTROL and
// USER_DEFINED tokens as added tokens, CONTROL ones special; ByteLevel
// pre-tokenizer without prefix space, GPT-2's regex; ByteLevel decoder), which
// tokenizer_load_json reads back into the tokenizer tokenizer_load_gguf builds.
// Other vocabularies (llama, bert, ...) are ST_UNSUPPORTED, named.
Status tokenizer_export_gguf_json(const GgufFile *g, const char *path);
// tokenizer.json text with tokens appended to its added_tokens as
// transformers' tokenizer.add_tokens(tokens) adds them (not special,
// normalized, no strip, not single-word), with ids first_id, first_id + 1, ...;
// a token the vocabulary already has is an error. *out: the new text (malloc'd).
Status tokenizer_json_add_tokens(const char *json, size_t len, const char *const *tokens, int n, int first_id,
                                 const char *what, char **out);
// An OpenAI tiktoken BPE file (path: e.g. cl100k_base.tiktoken, or .gz): one
// line per token, "base64(bytes) rank"; ids are the ranks. Encodes as tiktoken's
// cl100k_base does (its pre-tokenizer regex; merges by lowest rank of the
// merged bytes) with cl100k's special tokens (<|endoftext|> 100257,
// <|fim_prefix|> 100258, <|fim_middle|> 100259, <|fim_suffix|> 100260,
// <|endofprompt|> 100276) matched in the text, like
// encode(text, allowed_special="all"). No BOS. Format errors name file:line.
Status tokenizer_load_tiktoken(Tokenizer **out, const char *path);
// The tokenizer of a model path: <dir>/tokenizer.json or the .gguf's metadata.
Status tokenizer_load_for_model(Tokenizer **out, const char *model_path);
void tokenizer_free(Tokenizer *t);

// Encodes UTF-8 text (invalid UTF-8 is an error naming the byte offset).
// add_special: apply the post-processor (BOS, [CLS]/[SEP]) as HF's
// add_special_tokens=True does. Offsets are input byte offsets.
Status tokenizer_encode(const Tokenizer *t, const char *text, size_t len, bool add_special, TokenList *out);

// Decodes ids to a malloc'd NUL-terminated string (HF decode; skip_special
// drops special tokens as skip_special_tokens=True does). *len (if not NULL)
// gets its length in bytes: the text itself may contain NUL bytes.
Status tokenizer_decode(const Tokenizer *t, const int32_t *ids, size_t n, bool skip_special, char **out, size_t *len);

// The character (code point) index of byte offset `byte` in UTF-8 text: token
// offsets are bytes, Hugging Face reports characters.
long utf8_char_offset(const char *text, long byte);

int tokenizer_vocab_size(const Tokenizer *t);
const char *tokenizer_kind(const Tokenizer *t); // "byte-level BPE", "SentencePiece-style BPE", "WordPiece"
// The id of a token string, or -1.
int32_t tokenizer_token_id(const Tokenizer *t, const char *token);
// The model's string for an id (WordPiece "##x", byte-level "Ġx", added
// tokens' content), or NULL when the id has none. Owned by the tokenizer.
const char *tokenizer_id_to_token(const Tokenizer *t, int32_t id);

#endif
