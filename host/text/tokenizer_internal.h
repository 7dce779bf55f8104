// tokenizer_internal.h: the components of a tokenizer, mirroring the
// sections of a Hugging Face tokenizer.json: normalizer, pre-tokenizer,
// model, post-processor, decoder. Each is data read from the JSON and
// interpreted by its own file.
#ifndef ELASTILM_TOKENIZER_INTERNAL_H
#define ELASTILM_TOKENIZER_INTERNAL_H

#include <jansson.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "pieces.h"
#include "strmap.h"
#include "tokenizer.h"

// ---- normalizers (normalizers.c) -------------------------------------------
typedef enum {
    NORM_SEQUENCE, NORM_PREPEND, NORM_REPLACE, NORM_NFC, NORM_NFD, NORM_NFKC, NORM_NFKD,
    NORM_LOWERCASE, NORM_STRIP_ACCENTS, NORM_STRIP, NORM_BERT,
} NormType;

typedef struct Normalizer {
    NormType type;
    char *a;                      // PREPEND: prepend; REPLACE: pattern (a plain string)
    char *b;                      // REPLACE: content
    bool strip_left, strip_right; // STRIP
    bool clean_text, handle_chinese_chars, lowercase; // BERT
    int strip_accents;            // BERT: 1, 0, or -1 = follow lowercase
    struct Normalizer *children;  // SEQUENCE: [n_children]
    int n_children;
} Normalizer;

Status normalizer_from_json(Normalizer *n, json_t *j, const char *path);
Status normalizer_apply(const Normalizer *n, Piece *p);
void normalizer_free(Normalizer *n);

// ---- pre-tokenizers (pretokenizers.c; BERT-family ones in pretok_bert.c) ---
typedef enum {
    PRE_SEQUENCE, PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE, PRE_DIGITS, PRE_BERT,
    PRE_WHITESPACE, PRE_WHITESPACE_SPLIT, PRE_PUNCTUATION,
} PreType;

typedef enum { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREVIOUS, SPLIT_MERGED_NEXT, SPLIT_CONTIGUOUS } SplitBehavior;
typedef enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER } PrependScheme;

typedef struct PreTokenizer {
    PreType type;
    pcre2_code *regex;            // SPLIT (or a plain string, escaped), BYTELEVEL with use_regex
    SplitBehavior behavior;       // SPLIT, PUNCTUATION
    bool invert;                  // SPLIT
    bool add_prefix_space;        // BYTELEVEL
    bool individual_digits;       // DIGITS
    char replacement[8];          // METASPACE (UTF-8, usually U+2581)
    PrependScheme prepend_scheme; // METASPACE
    bool split;                   // METASPACE
    struct PreTokenizer *children;// SEQUENCE
    int n_children;
} PreTokenizer;

Status pretokenizer_from_json(PreTokenizer *p, json_t *j, const char *path);
// Splits/rewrites every piece of l that is not an already-matched token.
Status pretokenizer_apply(const PreTokenizer *p, PieceList *l, bool first_piece_is_start);
void pretokenizer_free(PreTokenizer *p);

// pretok_bert.c: each replaces l's un-matched pieces by their split.
// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves; the
// other 68 (0-32, 127-160, 173) map to U+0100 + their rank among them.
uint32_t bytelevel_char(unsigned char byte);
// The inverse: the byte a code point stands for, or -1.
int bytelevel_byte(uint32_t cp);
// Maps every byte of p to its GPT-2 byte-level character (spans kept).
Status bytelevel_map_piece(Piece *p);

Status pretok_bert(PieceList *l);
Status pretok_whitespace(PieceList *l);        // \w+|[^\w\s]+
Status pretok_whitespace_split(PieceList *l);  // split on whitespace, removed
Status pretok_punctuation(PieceList *l, SplitBehavior behavior);
Status pretok_digits(PieceList *l, bool individual_digits);

// ---- models ----------------------------------------------------------------
typedef enum { MODEL_BPE, MODEL_WORDPIECE } ModelType;

typedef struct {
    ModelType type;
    StrMap vocab;             // token string -> id
    char **id_to_token;       // [vocab_size] (NULL for ids without a token)
    int vocab_size;
    int32_t unk_id;           // -1: none
    // BPE
    MergeMap merges;          // (left id, right id) -> rank and merged id
    bool byte_fallback, ignore_merges, fuse_unk;
    char *continuing_subword_prefix, *end_of_word_suffix; // NULL: none
    int32_t byte_ids[256];    // byte fallback: id of "<0xXX>", -1 if absent
    // WordPiece
    char *wp_prefix;          // "##"
    int max_input_chars_per_word;
} Model;

// bpe.c
Status bpe_encode_piece(const Model *m, const Piece *p, TokenList *out);
// wordpiece.c
Status wordpiece_encode_piece(const Model *m, const Piece *p, TokenList *out);

// ---- added tokens ----------------------------------------------------------
typedef struct {
    char *content;
    size_t len;          // bytes of content
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
} AddedToken;

// ---- post-processor --------------------------------------------------------
typedef struct {
    int32_t *prefix;  // ids before the sequence
    int n_prefix;
    int32_t *suffix;  // ids after it
    int n_suffix;
} PostProcessor;

// ---- decoders (decoders.c) -------------------------------------------------
typedef enum {
    DEC_SEQUENCE, DEC_BYTELEVEL, DEC_METASPACE, DEC_BYTE_FALLBACK, DEC_FUSE, DEC_STRIP, DEC_REPLACE, DEC_WORDPIECE,
} DecType;

typedef struct Decoder {
    DecType type;
    char *a, *b;              // REPLACE: pattern, content; WORDPIECE: prefix; METASPACE: replacement
    int strip_start, strip_stop; // STRIP (content is a)
    bool cleanup;             // WORDPIECE
    PrependScheme prepend_scheme; // METASPACE
    struct Decoder *children;
    int n_children;
} Decoder;

Status decoder_from_json(Decoder *d, json_t *j, const char *path);
// A decoded piece of text: bytes that may contain NUL (byte fallback <0x00>).
typedef struct {
    char *s;    // malloc'd, NUL-terminated for convenience
    size_t len; // bytes, not counting the terminator
} DStr;

// tokens: [n] token strings, rewritten in place (HF's decoders work on the
// list of token strings); on return *n may be smaller and the slots past it
// are empty ({NULL, 0}). The caller joins what is left.
Status decoder_apply(const Decoder *d, DStr *tokens, size_t *n);
void decoder_free(Decoder *d);

// Sorts added tokens longest first and indexes their first bytes (encode.c).
void added_tokens_prepare(Tokenizer *t);

// ---- the whole tokenizer ---------------------------------------------------
struct Tokenizer {
    char kind[32];
    Normalizer *normalizer;     // NULL: none
    PreTokenizer *pretokenizer; // NULL: none
    Model model;
    AddedToken *added;          // [n_added], longest content first for matching
    int n_added;
    bool added_first[2][256];   // [normalized][byte]: some added token starts with this byte
    PostProcessor post;
    Decoder *decoder;           // NULL: none
    bool bytelevel_post_trim;   // ByteLevel post-processor with trim_offsets
};

#endif
