// A tokenizer from an OpenAI tiktoken BPE file (cl100k_base.tiktoken): one
// line per token, "base64(token bytes) rank". It runs on the byte-level BPE
// machinery of bpe.c, configured the way tiktoken encodes:
//
//   * pre-tokenizer: cl100k's regex (PCRE2), then a ByteLevel mapping (no regex)
//     so that vocabulary keys are GPT-2 byte-level strings, as in every other
//     byte-level BPE here;
//   * model: ids = ranks; the merge of two adjacent parts A, B is allowed iff
//     the bytes A+B are a token, with priority rank(A+B) (lowest first,
//     leftmost among equals): exactly tiktoken's byte_pair_merge. The merge
//     table holds every split (A, B) of every token with both halves tokens.
//     A piece that is itself a token is that token (tiktoken looks the whole
//     piece up first: ignore_merges);
//   * cl100k's five special tokens as special added tokens, matched in the
//     text (tiktoken's encode(text, allowed_special="all"));
//   * no post-processor (no BOS), ByteLevel decoder.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/mapped_file.h"
#include "tokenizer_internal.h"

// tiktoken_ext/openai_public.py, cl100k_base.
static const char *CL100K_PATTERN =
    "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}+| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*+"
    "|\\s++$|\\s*[\\r\\n]|\\s+(?!\\S)|\\s";

static const struct {
    const char *text;
    int32_t id;
} CL100K_SPECIAL[] = {
    {"<|endoftext|>", 100257}, {"<|fim_prefix|>", 100258}, {"<|fim_middle|>", 100259},
    {"<|fim_suffix|>", 100260}, {"<|endofprompt|>", 100276},
};
enum { N_SPECIAL = sizeof CL100K_SPECIAL / sizeof CL100K_SPECIAL[0], MAX_RANK = 1 << 24 };

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

// Strict standard base64 (length a multiple of 4, '=' padding only at the
// end). out needs 3 * n / 4 bytes. Returns the decoded length, or -1.
static long b64_decode(const char *s, size_t n, unsigned char *out) {
    if (n == 0 || n % 4 != 0) return -1;
    size_t pad = s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    long o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int k = 0; k < 4; k++) {
            bool padded = i + 4 == n && (size_t)k >= 4 - pad;
            v[k] = padded ? (s[i + (size_t)k] == '=' ? 0 : -1) : b64_value((unsigned char)s[i + (size_t)k]);
            if (v[k] < 0) return -1;
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        size_t take = i + 4 == n ? 3 - pad : 3;
        for (size_t k = 0; k < take; k++) out[o++] = (unsigned char)(w >> (16 - 8 * k));
        // The bits the padding drops must be zero (canonical encoding).
        if (i + 4 == n && pad && (w & ((1u << (8 * pad)) - 1)) != 0) return -1;
    }
    return o;
}

// token bytes -> GPT-2 byte-level string (malloc'd) and, if offs is given, the
// byte offset in it of each input byte (offs[len] = total).
static char *bytelevel_string(const unsigned char *b, size_t len, size_t *offs, size_t *out_len) {
    char *s = malloc(2 * len + 1);
    if (!s) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (offs) offs[i] = o;
        uint32_t cp = bytelevel_char(b[i]); // < 0x800: one or two UTF-8 bytes
        if (cp < 0x80) s[o++] = (char)cp;
        else {
            s[o++] = (char)(0xc0 | (cp >> 6));
            s[o++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    if (offs) offs[len] = o;
    s[o] = '\0';
    *out_len = o;
    return s;
}

static Status parse_lines(Tokenizer *t, const char *path, const char *text, size_t len) {
    Model *m = &t->model;
    // First pass: the highest rank, to size the tables.
    size_t n_lines = 0;
    for (size_t i = 0; i < len; i++) n_lines += text[i] == '\n';
    n_lines++;
    int32_t vocab = CL100K_SPECIAL[N_SPECIAL - 1].id + 1;
    typedef struct {
        int32_t rank;
        int32_t line;
        size_t b64_at, b64_len;
    } Entry;
    Entry *e = malloc(n_lines * sizeof *e);
    if (!e) return status_fail(ST_OOM, "out of memory");
    size_t n = 0;
    long line = 0;
    Status st = ST_OK;
    for (size_t at = 0; at < len && st == ST_OK;) {
        const char *nl = memchr(text + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - text) : len, next = nl ? end + 1 : len;
        line++;
        size_t ls = at, le = end;
        if (le > ls && text[le - 1] == '\r') le--;
        at = next;
        if (le == ls) continue; // blank lines are skipped, as tiktoken does
        // Two fields separated by one run of spaces/tabs.
        size_t a = ls;
        while (a < le && text[a] != ' ' && text[a] != '\t') a++;
        size_t b = a;
        while (b < le && (text[b] == ' ' || text[b] == '\t')) b++;
        size_t c = b;
        while (c < le && text[c] != ' ' && text[c] != '\t') c++;
        size_t d = c;
        while (d < le && (text[d] == ' ' || text[d] == '\t')) d++;
        if (a == ls || b == le || d != le) {
            st = status_fail(ST_FORMAT, "%s:%ld: expected \"<base64 token> <rank>\", got \"%.*s\"", path, line,
                             (int)(le - ls > 40 ? 40 : le - ls), text + ls);
            break;
        }
        long rank = 0;
        for (size_t k = b; k < c && st == ST_OK; k++) {
            if (text[k] < '0' || text[k] > '9' || rank > MAX_RANK)
                st = status_fail(ST_FORMAT, "%s:%ld: rank \"%.*s\" is not an integer in 0..%d", path, line,
                                 (int)(c - b > 20 ? 20 : c - b), text + b, MAX_RANK);
            else rank = rank * 10 + (text[k] - '0');
        }
        if (st == ST_OK && rank > MAX_RANK)
            st = status_fail(ST_FORMAT, "%s:%ld: rank %ld is above %d", path, line, rank, MAX_RANK);
        if (st != ST_OK) break;
        for (int s = 0; s < N_SPECIAL; s++)
            if (rank == CL100K_SPECIAL[s].id) {
                st = status_fail(ST_FORMAT, "%s:%ld: rank %ld is the id of the special token %s", path, line, rank,
                                 CL100K_SPECIAL[s].text);
                break;
            }
        if (st != ST_OK) break;
        e[n++] = (Entry){(int32_t)rank, (int32_t)line, ls, a - ls};
        if (rank + 1 > vocab) vocab = (int32_t)rank + 1;
    }
    if (st == ST_OK && n == 0) st = status_fail(ST_FORMAT, "%s: no tokens", path);
    if (st != ST_OK) {
        free(e);
        return st;
    }

    m->vocab_size = vocab;
    m->id_to_token = calloc((size_t)vocab, sizeof *m->id_to_token);
    int32_t *line_of = calloc((size_t)vocab, sizeof *line_of);
    size_t **offs_of = calloc((size_t)vocab, sizeof *offs_of); // per rank: byte-level offsets, for the merges
    unsigned char *buf = malloc(len + 4);
    if (!m->id_to_token || !line_of || !offs_of || !buf) st = status_fail(ST_OOM, "out of memory");
    if (st == ST_OK) st = strmap_init(&m->vocab, n + N_SPECIAL);
    for (size_t i = 0; i < n && st == ST_OK; i++) {
        const char *s = text + e[i].b64_at;
        long bl = b64_decode(s, e[i].b64_len, buf);
        if (bl <= 0) {
            st = status_fail(ST_FORMAT, "%s:%d: \"%.*s\" is not a base64 token", path, e[i].line,
                             (int)(e[i].b64_len > 40 ? 40 : e[i].b64_len), s);
            break;
        }
        int32_t r = e[i].rank;
        if (line_of[r]) {
            st = status_fail(ST_FORMAT, "%s:%d: rank %d repeats line %d", path, e[i].line, r, line_of[r]);
            break;
        }
        line_of[r] = e[i].line;
        size_t sl;
        offs_of[r] = malloc(((size_t)bl + 1) * sizeof **offs_of);
        char *str = offs_of[r] ? bytelevel_string(buf, (size_t)bl, offs_of[r], &sl) : NULL;
        if (!str) {
            st = status_fail(ST_OOM, "out of memory");
            break;
        }
        m->id_to_token[r] = str;
        int32_t prev = strmap_get(&m->vocab, str, sl);
        if (prev >= 0) {
            st = status_fail(ST_FORMAT, "%s:%d: token \"%.*s\" (rank %d) repeats line %d", path, e[i].line,
                             (int)(e[i].b64_len > 40 ? 40 : e[i].b64_len), s, r, line_of[prev]);
            break;
        }
        st = strmap_put(&m->vocab, str, sl, r);
    }
    // Every single byte must be a token: tiktoken starts from the bytes.
    for (int byte = 0; byte < 256 && st == ST_OK; byte++) {
        unsigned char b1 = (unsigned char)byte;
        size_t sl;
        char *s1 = bytelevel_string(&b1, 1, NULL, &sl);
        if (!s1) st = status_fail(ST_OOM, "out of memory");
        else if (strmap_get(&m->vocab, s1, sl) < 0)
            st = status_fail(ST_FORMAT, "%s: the single byte 0x%02x is not a token", path, byte);
        free(s1);
    }
    // Merges: every split of every token into two tokens.
    if (st == ST_OK) st = mergemap_init(&m->merges, 2 * n);
    for (int32_t r = 0; r < vocab && st == ST_OK; r++) {
        const char *s = m->id_to_token[r];
        if (!s || !offs_of[r]) continue;
        size_t sl = strlen(s);
        for (size_t k = 1; offs_of[r][k] < sl && st == ST_OK; k++) {
            size_t cut = offs_of[r][k];
            int32_t left = strmap_get(&m->vocab, s, cut), right = strmap_get(&m->vocab, s + cut, sl - cut);
            if (left >= 0 && right >= 0) st = mergemap_put(&m->merges, left, right, r, r);
        }
    }
    for (int32_t r = 0; offs_of && r < vocab; r++) free(offs_of[r]);
    free(offs_of);
    free(line_of);
    free(buf);
    free(e);
    return st;
}

static Status add_specials(Tokenizer *t) {
    Model *m = &t->model;
    t->added = calloc(N_SPECIAL, sizeof *t->added);
    if (!t->added) return status_fail(ST_OOM, "out of memory");
    for (int s = 0; s < N_SPECIAL; s++) {
        int32_t id = CL100K_SPECIAL[s].id;
        m->id_to_token[id] = strdup(CL100K_SPECIAL[s].text);
        t->added[s].content = strdup(CL100K_SPECIAL[s].text);
        if (!m->id_to_token[id] || !t->added[s].content) return status_fail(ST_OOM, "out of memory");
        TRY(strmap_put(&m->vocab, CL100K_SPECIAL[s].text, strlen(CL100K_SPECIAL[s].text), id));
        t->added[s].id = id;
        t->added[s].special = true;
        t->added[s].normalized = false;
        t->n_added++;
    }
    added_tokens_prepare(t);
    return ST_OK;
}

static Status configure(Tokenizer *t, const char *path) {
    PreTokenizer *seq = calloc(1, sizeof *seq);
    t->pretokenizer = seq;
    t->decoder = calloc(1, sizeof *t->decoder);
    if (!seq || !t->decoder) return status_fail(ST_OOM, "out of memory");
    seq->type = PRE_SEQUENCE;
    seq->children = calloc(2, sizeof *seq->children);
    if (!seq->children) return status_fail(ST_OOM, "out of memory");
    seq->n_children = 2;
    PreTokenizer *split = &seq->children[0], *bl = &seq->children[1];
    split->type = PRE_SPLIT;
    split->behavior = SPLIT_ISOLATED;
    int err;
    PCRE2_SIZE at;
    // DOLLAR_ENDONLY: `$` is the end of the text only, as in tiktoken's
    // (Rust) regex, not also before a final newline.
    split->regex = pcre2_compile((PCRE2_SPTR)CL100K_PATTERN, PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &at, NULL);
    if (!split->regex) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return status_fail(ST_FORMAT, "%s: the cl100k regex does not compile at offset %zu: %s", path, (size_t)at,
                           (char *)msg);
    }
    pcre2_jit_compile(split->regex, PCRE2_JIT_COMPLETE);
    bl->type = PRE_BYTELEVEL; // no regex, no prefix space: maps bytes only
    t->decoder->type = DEC_BYTELEVEL;
    return ST_OK;
}

Status tokenizer_load_tiktoken(Tokenizer **out, const char *path) {
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    TRY(read_file_maybe_gz(path, &text, &len));
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        free(text);
        return status_fail(ST_OOM, "out of memory");
    }
    t->model.type = MODEL_BPE;
    t->model.unk_id = -1;
    t->model.ignore_merges = true;
    for (int b = 0; b < 256; b++) t->model.byte_ids[b] = -1;
    snprintf(t->kind, sizeof t->kind, "byte-level BPE");
    Status st = parse_lines(t, path, text, len);
    free(text);
    if (st == ST_OK) st = add_specials(t);
    if (st == ST_OK) st = configure(t, path);
    if (st != ST_OK) {
        tokenizer_free(t);
        return st;
    }
    *out = t;
    return ST_OK;
}
