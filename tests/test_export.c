// `elastilm export`: standalone Hugging Face models of a layer subset.
//  - the tokenizer.json written from a GGUF vocabulary (SmolLM2's, put into a
//    GGUF here from the committed transformers conversion) is that conversion,
//    and encodes, offsets and decodes as the GGUF tokenizer does over the
//    parity corpus, special tokens included; user-defined tokens too; other
//    vocabularies and repeated tokens are refused by name;
//  - --layers on the tiny fixture: the exported model has the kept layers and
//    gives the logits of the original under a view that drops the others; the
//    tokenizer files are copied byte for byte; a GGUF rope that a config
//    cannot express is refused;
//  - --artifact/--mode/--ratio: the layers LayerReduction and ShortGPT keep at
//    s (both --compat variants, s on and off the SLO grid), as their views;
//  - bad input: one-line messages and exit codes.
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "runtime/mapped_file.h"
#include "test_util.h"

#define TINY_GGUF "tests/fixtures/tiny-llama3-gqa.gguf"
#define ELASTIC "tests/fixtures/tiny-elastic-gqa"
#define TOKENIZER "--tokenizer tests/fixtures/train/byte-tokenizer.json "
#define TEXT "tests/fixtures/train/text.txt"
#define SMOLLM2_JSON "tests/fixtures/tokenizers/smollm2-tokenizer.json.gz"
#define CORPUS "tests/fixtures/tokenizers/corpus.jsonl.gz"

static char g_dir[256];

static void setup(void) { tu_make_temp_dir(g_dir, sizeof g_dir, "export"); }
static void teardown(void) { tu_remove_dir(g_dir); }

TestSuite(export, .init = setup, .fini = teardown, .timeout = 300);

static const char *in_dir(const char *name) {
    static char buf[8][700];
    static int slot;
    char *p = buf[slot++ % 8];
    snprintf(p, 700, "%s/%s", g_dir, name);
    return p;
}

// ---- a GGUF that carries a tokenizer ------------------------------------------------

typedef struct {
    uint8_t *b;
    size_t n, cap;
} Buf;

static void put(Buf *w, const void *p, size_t n) {
    if (w->n + n > w->cap) {
        w->cap = 2 * (w->n + n);
        w->b = realloc(w->b, w->cap);
        cr_assert_not_null(w->b);
    }
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void put_u32(Buf *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(Buf *w, uint64_t v) { put(w, &v, 8); }
static void put_str(Buf *w, const char *s) {
    put_u64(w, strlen(s));
    put(w, s, strlen(s));
}
static void put_key(Buf *w, const char *key, GgufValueType type) {
    put_str(w, key);
    put_u32(w, type);
}

// What goes into the GGUF besides SmolLM2's vocabulary and merges.
typedef struct {
    const char *model;    // tokenizer.ggml.model
    int user_defined;     // a token id made USER_DEFINED (-1: none)
    int duplicate;        // a token id whose string is replaced by the one before it (-1: none)
} GgufEdits;

// tests/fixtures/tokenizers/smollm2-tokenizer.json (transformers' conversion of
// SmolLM2's GGUF, whose vocabulary and merges it equals entry for entry) put
// back into a GGUF: tokens, token types (the added tokens CONTROL), merges "a b".
static void write_tokenizer_gguf(const char *path, const GgufEdits *e) {
    char *text;
    size_t len;
    cr_assert_eq(read_file_maybe_gz(SMOLLM2_JSON, &text, &len), ST_OK, "%s", status_message());
    json_error_t err;
    json_t *root = json_loadb(text, len, 0, &err);
    free(text);
    cr_assert_not_null(root, "%s", err.text);
    json_t *model = json_object_get(root, "model"), *vocab = json_object_get(model, "vocab");
    json_t *merges = json_object_get(model, "merges"), *added = json_object_get(root, "added_tokens");
    size_t V = json_object_size(vocab);
    const char **tokens = calloc(V, sizeof *tokens);
    int32_t *types = malloc(V * sizeof *types);
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        json_int_t id = json_integer_value(v);
        cr_assert(id >= 0 && (size_t)id < V && !tokens[id]);
        tokens[id] = key;
    }
    for (size_t i = 0; i < V; i++) types[i] = 1; // NORMAL
    size_t i;
    json_array_foreach(added, i, v) types[json_integer_value(json_object_get(v, "id"))] = 3; // CONTROL
    if (e->user_defined >= 0) types[e->user_defined] = 4;
    if (e->duplicate > 0) tokens[e->duplicate] = tokens[e->duplicate - 1];
    Buf w = {0};
    put(&w, "GGUF", 4);
    put_u32(&w, 3);
    put_u64(&w, 0); // tensors
    put_u64(&w, 4); // key-value pairs
    put_key(&w, "tokenizer.ggml.model", GGUF_T_STRING);
    put_str(&w, e->model);
    put_key(&w, "tokenizer.ggml.tokens", GGUF_T_ARRAY);
    put_u32(&w, GGUF_T_STRING);
    put_u64(&w, V);
    for (size_t k = 0; k < V; k++) put_str(&w, tokens[k]);
    put_key(&w, "tokenizer.ggml.token_type", GGUF_T_ARRAY);
    put_u32(&w, GGUF_T_INT32);
    put_u64(&w, V);
    put(&w, types, V * 4);
    put_key(&w, "tokenizer.ggml.merges", GGUF_T_ARRAY);
    put_u32(&w, GGUF_T_STRING);
    put_u64(&w, json_array_size(merges));
    json_array_foreach(merges, i, v) {
        char m[1024];
        snprintf(m, sizeof m, "%s %s", json_string_value(json_array_get(v, 0)),
                 json_string_value(json_array_get(v, 1)));
        put_str(&w, m);
    }
    cr_assert_eq(write_file_atomic(path, w.b, w.n), ST_OK, "%s", status_message());
    free(w.b), free(tokens), free(types);
    json_decref(root);
}

// a and b encode every corpus string (with and without special tokens) to the
// same ids and offsets and decode them (with and without special tokens) alike.
static void expect_same_tokenizer(const Tokenizer *a, const Tokenizer *b) {
    char *text;
    size_t len;
    cr_assert_eq(read_file_maybe_gz(CORPUS, &text, &len), ST_OK, "%s", status_message());
    size_t lines = 0, bad = 0;
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        cr_assert_not_null(nl);
        json_t *s = json_loadb(line, (size_t)(nl - line), JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        cr_assert(json_is_string(s), "corpus line %zu", lines);
        const char *str = json_string_value(s);
        size_t n = json_string_length(s);
        for (int special = 0; special < 2; special++) {
            TokenList x, y;
            cr_assert_eq(tokenizer_encode(a, str, n, special, &x), ST_OK, "%s", status_message());
            cr_assert_eq(tokenizer_encode(b, str, n, special, &y), ST_OK, "%s", status_message());
            bool same = x.n == y.n;
            for (size_t t = 0; same && t < x.n; t++)
                same = x.ids[t] == y.ids[t] && x.starts[t] == y.starts[t] && x.ends[t] == y.ends[t] &&
                       x.special[t] == y.special[t];
            for (int skip = 0; same && skip < 2; skip++) {
                char *dx, *dy;
                size_t lx, ly;
                cr_assert_eq(tokenizer_decode(a, x.ids, x.n, skip, &dx, &lx), ST_OK);
                cr_assert_eq(tokenizer_decode(b, x.ids, x.n, skip, &dy, &ly), ST_OK);
                same = lx == ly && !memcmp(dx, dy, lx);
                free(dx), free(dy);
            }
            if (!same && bad++ < 5)
                fprintf(stderr, "corpus line %zu (special %d) differs: %.60s\n", lines, special, str);
            token_list_free(&x), token_list_free(&y);
        }
        json_decref(s);
        lines++;
    }
    free(text);
    cr_expect_gt(lines, 3000);
    cr_expect_eq(bad, 0, "%zu of %zu corpus encodings differ", bad, 2 * lines);
}

// The GGUF tokenizer and the tokenizer.json written from it.
static void load_both(const char *gguf, const char *json, Tokenizer **from_gguf, Tokenizer **from_json) {
    GgufFile g;
    cr_assert_eq(gguf_open(&g, gguf), ST_OK, "%s", status_message());
    cr_assert_eq(tokenizer_load_gguf(from_gguf, &g), ST_OK, "%s", status_message());
    cr_assert_eq(tokenizer_export_gguf_json(&g, json), ST_OK, "%s", status_message());
    gguf_close(&g);
    cr_assert_eq(tokenizer_load_json(from_json, json), ST_OK, "%s", status_message());
}

Test(export, gguf_tokenizer_json_is_transformers_conversion) {
    GgufEdits e = {.model = "gpt2", .user_defined = -1, .duplicate = -1};
    write_tokenizer_gguf(in_dir("smollm2.gguf"), &e);
    Tokenizer *a, *b;
    load_both(in_dir("smollm2.gguf"), in_dir("tokenizer.json"), &a, &b);
    // the file is what transformers builds from the GGUF
    json_error_t err;
    json_t *got = json_load_file(in_dir("tokenizer.json"), 0, &err);
    cr_assert_not_null(got, "%s", err.text);
    char *text;
    size_t len;
    cr_assert_eq(read_file_maybe_gz(SMOLLM2_JSON, &text, &len), ST_OK);
    json_t *want = json_loadb(text, len, 0, &err);
    free(text);
    cr_expect(json_equal(got, want), "the written tokenizer.json differs from transformers' conversion");
    json_decref(got), json_decref(want);
    // and it tokenizes as the GGUF tokenizer does, and as HF does
    cr_expect_eq(tokenizer_vocab_size(a), tokenizer_vocab_size(b));
    cr_expect_str_eq(tokenizer_kind(b), "byte-level BPE");
    expect_same_tokenizer(a, b);
    tu_check_tokenizer(b, "smollm2");
    // special tokens: matched in the text, dropped by a skipping decode
    TokenList l;
    const char *chat = "<|im_start|>user\nHi<|im_end|>";
    cr_assert_eq(tokenizer_encode(b, chat, strlen(chat), false, &l), ST_OK);
    cr_expect(l.n > 2 && l.ids[0] == 1 && l.ids[l.n - 1] == 2 && l.special[0], "%zu tokens", l.n);
    char *dec;
    cr_assert_eq(tokenizer_decode(b, l.ids, l.n, true, &dec, NULL), ST_OK);
    cr_expect_str_eq(dec, "user\nHi");
    free(dec);
    token_list_free(&l);
    tokenizer_free(a), tokenizer_free(b);
}

// A USER_DEFINED token is an added token that is not special (matched in the
// text before BPE, kept by a skipping decode), in both tokenizers alike.
Test(export, gguf_user_defined_tokens) {
    Tokenizer *probe;
    cr_assert_eq(tokenizer_load_json(&probe, SMOLLM2_JSON), ST_OK);
    int32_t ing = tokenizer_token_id(probe, "ing");
    tokenizer_free(probe);
    cr_assert_gt(ing, 16);
    GgufEdits e = {.model = "gpt2", .user_defined = ing, .duplicate = -1};
    write_tokenizer_gguf(in_dir("user.gguf"), &e);
    Tokenizer *a, *b;
    load_both(in_dir("user.gguf"), in_dir("user.json"), &a, &b);
    json_t *j = json_load_file(in_dir("user.json"), 0, NULL);
    json_t *added = json_object_get(j, "added_tokens"), *last = json_array_get(added, json_array_size(added) - 1);
    cr_expect_eq(json_array_size(added), 18);
    cr_expect_eq(json_integer_value(json_object_get(last, "id")), ing);
    cr_expect(json_is_false(json_object_get(last, "special")) && json_is_false(json_object_get(last, "normalized")));
    json_decref(j);
    expect_same_tokenizer(a, b);
    TokenList l;
    cr_assert_eq(tokenizer_encode(b, "singing", 7, false, &l), ST_OK);
    cr_expect(l.n >= 2 && l.ids[l.n - 1] == ing && !l.special[l.n - 1]);
    char *dec;
    cr_assert_eq(tokenizer_decode(b, l.ids, l.n, true, &dec, NULL), ST_OK);
    cr_expect_str_eq(dec, "singing");
    free(dec);
    token_list_free(&l);
    tokenizer_free(a), tokenizer_free(b);
}

Test(export, gguf_tokenizers_it_cannot_write_are_named) {
    struct {
        GgufEdits e;
        Status code;
        const char *says;
    } cases[] = {{{"llama", -1, -1}, ST_UNSUPPORTED, "'llama'"},
                 {{"gpt2", -1, 16}, ST_UNSUPPORTED, "repeats token 15"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_tokenizer_gguf(in_dir("bad.gguf"), &cases[i].e);
        GgufFile g;
        cr_assert_eq(gguf_open(&g, in_dir("bad.gguf")), ST_OK, "%s", status_message());
        tu_expect_err(tokenizer_export_gguf_json(&g, in_dir("bad.json")), cases[i].code, "bad.gguf", cases[i].says,
                      NULL);
        gguf_close(&g);
        FILE *fp = fopen(in_dir("bad.json"), "rb");
        cr_expect_null(fp, "case %zu: a tokenizer.json was written", i);
        if (fp) fclose(fp);
    }
}

// ---- --layers -------------------------------------------------------------------------

// The exported model in dir has n layers and gives m's logits under blocks.
static void expect_exported_view(const LlamaModel *m, const uint8_t *blocks, const char *dir, int n) {
    LlamaModel e;
    cr_assert_eq(llama_load(&e, dir), ST_OK, "%s", status_message());
    cr_assert_eq(e.cfg.n_layers, n);
    cr_expect_eq(e.cfg.tie_embeddings, m->cfg.tie_embeddings);
    int32_t ids[24];
    for (int i = 0; i < 24; i++) ids[i] = (int32_t)((i * 37 + 11) % m->cfg.vocab_size);
    LlamaView v = {.blocks = blocks};
    Tensor want, got;
    tu_logits(m, &v, ids, 2, 12, &want);
    tu_logits(&e, NULL, ids, 2, 12, &got);
    float d = tu_max_abs_diff(want.data, got.data, (size_t)tensor_numel(&want));
    cr_expect_lt(d, 1e-5f, "%s: logits differ from the view's by %g", dir, d);
    Tensor full;
    tu_logits(m, NULL, ids, 2, 12, &full);
    if (n < m->cfg.n_layers)
        cr_expect_gt(tu_max_abs_diff(full.data, got.data, (size_t)tensor_numel(&full)), 1e-3f, "no layer was dropped");
    tensor_free(&want), tensor_free(&got), tensor_free(&full);
    llama_free(&e);
}

static void expect_same_file(const char *a, const char *b) {
    size_t la, lb;
    uint8_t *x = tu_read_file(a, &la), *y = tu_read_file(b, &lb);
    cr_expect(la == lb && memcmp(x, y, la) == 0, "%s and %s differ", a, b);
    free(x), free(y);
}

Test(export, layers_of_an_hf_directory) {
    char src[700], out[1400];
    tu_make_byte_llm(g_dir, "src", src, sizeof src);
    snprintf(out, sizeof out, "%s/out", g_dir);
    char msg[4096];
    cr_assert_eq(tu_run_bin(msg, sizeof msg, "export --model %s --layers 1 --out %s", src, out), 0, "%s", msg);
    cr_expect(strstr(msg, "kept 1 of 2 layers [1] (--layers)") && strstr(msg, out) &&
              strstr(msg, "tokenizer.json copied"), "%s", msg);
    LlamaModel m;
    cr_assert_eq(llama_load(&m, src), ST_OK, "%s", status_message());
    uint8_t blocks[2] = {0, LAYER_ALL};
    expect_exported_view(&m, blocks, out, 1);
    char buf[64];
    LlamaModel sub = {.cfg = m.cfg};
    sub.cfg.n_layers = 1;
    snprintf(buf, sizeof buf, "; %lld parameters;", (long long)llama_param_count(&sub));
    cr_expect(strstr(msg, buf) != NULL, "%s (want %s)", msg, buf);
    llama_free(&m);
    const char *files[] = {"tokenizer.json", "generation_config.json"};
    for (int i = 0; i < 2; i++) {
        char a[1500], b[1500];
        snprintf(a, sizeof a, "%s/%s", src, files[i]);
        snprintf(b, sizeof b, "%s/%s", out, files[i]);
        expect_same_file(a, b);
    }
    // the exported directory is a model the other commands take
    cr_assert_eq(tu_run_bin(msg, sizeof msg, "tokenize --model %s --text \"abc\" --no-special", out), 0, "%s", msg);
    cr_expect(strstr(msg, "97 98 99") != NULL, "%s", msg);
    // every layer: the model itself
    cr_assert_eq(tu_run_bin(msg, sizeof msg, "export --model %s --layers \"[0, 1]\" --out %s --quiet", src, out), 0,
                 "%s", msg);
    cr_assert_eq(llama_load(&m, src), ST_OK);
    uint8_t all[2] = {LAYER_ALL, LAYER_ALL};
    expect_exported_view(&m, all, out, 2);
    llama_free(&m);
}

// A GGUF whose rope has per-frequency factors (rope_freqs.weight, as the tiny
// fixture's) has no Hugging Face config: refused before anything is written.
// (SmolLM2's GGUF has no such tensor: its export is checked by hand, not here.)
Test(export, gguf_rope_factors_are_refused) {
    const char *out = in_dir("from-gguf");
    char msg[4096];
    cr_expect_eq(tu_run_bin(msg, sizeof msg, "export --model " TINY_GGUF " --layers 0 --out %s", out), 1, "%s", msg);
    cr_expect(strstr(msg, "per-frequency factors") != NULL, "%s", msg);
    FILE *fp = fopen(out, "rb");
    cr_expect_null(fp, "%s was made", out);
    if (fp) fclose(fp);
}

// ---- a policy's layers -------------------------------------------------------------

static void elasticize(const char *art) {
    char out[16384];
    cr_assert_eq(tu_run_bin(out, sizeof out, "elasticize --model " ELASTIC " " TOKENIZER "--calib " TEXT
                            " --samples 4 --seq 16 --keep 1 --out %s --quiet", art), 0, "%s", out);
}

static void prepare(const char *art, const char *mode, Compat c) {
    char out[16384];
    cr_assert_eq(tu_run_bin(out, sizeof out, "prepare --mode %s --model " ELASTIC " " TOKENIZER "--artifact %s --calib "
                            TEXT " --samples 4 --seq 16 --compat %s --quiet", mode, art, compat_name(c)), 0, "%s", out);
}

Test(export, a_policys_layers_at_a_ratio) {
    const char *art = in_dir("art.h5");
    elasticize(art);
    prepare(art, "ShortGPT", COMPAT_PAPER);
    prepare(art, "ShortGPT", COMPAT_ARTIFACT);
    prepare(art, "LayerReduction", COMPAT_PAPER);
    LlamaModel m;
    cr_assert_eq(llama_load(&m, ELASTIC), ST_OK, "%s", status_message());
    struct {
        const Policy *p;
        Compat c;
        double s;
    } cases[] = {{&policy_shortgpt, COMPAT_PAPER, 0.5},        {&policy_shortgpt, COMPAT_PAPER, 0.67},
                 {&policy_shortgpt, COMPAT_ARTIFACT, 0.67},    {&policy_shortgpt, COMPAT_ARTIFACT, 1.0},
                 {&policy_layer_reduction, COMPAT_PAPER, 0.3}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *out = in_dir("policy-out");
        char msg[4096];
        cr_assert_eq(tu_run_bin(msg, sizeof msg, "export --model " ELASTIC " --artifact %s --mode %s --ratio %g "
                                "--compat %s --out %s", art, cases[i].p->name, cases[i].s,
                                compat_name(cases[i].c), out), 0, "%s", msg);
        int keep = layers_kept(cases[i].s, 6, cases[i].c);
        char want[128];
        snprintf(want, sizeof want, "kept %d of 6 layers [", keep);
        cr_expect(strstr(msg, want) && strstr(msg, cases[i].p->name), "case %zu: %s", i, msg);
        // the policy's own view at an SLO with min(prefill, decode) = s
        void *st;
        PolicyOpen o = {.m = &m, .artifact = art, .compat = cases[i].c};
        cr_assert_eq(cases[i].p->open(&st, &o), ST_OK, "%s", status_message());
        Slo slo = {.prefill = cases[i].s, .decode = 1.0};
        Decision d;
        cr_assert_eq(cases[i].p->decide(st, NULL, &slo, &d), ST_OK, "%s", status_message());
        expect_exported_view(&m, d.view->blocks, out, keep);
        cases[i].p->close(st);
    }
    llama_free(&m);
}

// ---- bad input --------------------------------------------------------------------

Test(export, bad_input_is_named) {
    char src[700];
    tu_make_byte_llm(g_dir, "src", src, sizeof src);
    const char *art = in_dir("art.h5"), *out = in_dir("out");
    elasticize(art); // nothing prepared
    tu_write_file_in(g_dir, "file.txt", "not a directory\n");
    char layers_art[1600];
    snprintf(layers_art, sizeof layers_art, "--layers 0 --artifact %s", art);
    struct {
        const char *model, *args;
        int rc;
        const char *says1, *says2;
    } cases[] = {
        {src, "--layers 0,2", 2, "--layers: layer 2 is outside 0..1", "2 layers"},
        {src, "--layers 1,1", 2, "layer 1 is listed twice", NULL},
        {src, "--layers 1,0", 2, "ascending", NULL},
        {src, "--layers one", 2, "expected layer numbers", "'one'"},
        {src, "--layers ,", 2, "no layers given", NULL},
        {src, "", 2, "which layers?", "--layers"},
        {src, layers_art, 2, "not both", NULL},
        {src, "--layers 0 --compat artifact", 2, "not both", NULL},
        {ELASTIC, "--mode ShortGPT --ratio 0.5", 2, "missing --artifact", NULL},
        {ELASTIC, "--artifact A.h5 --mode ShortGPT", 2, "missing --ratio", NULL},
        {ELASTIC, "--artifact A.h5 --mode LaCo --ratio 0.5", 2, "--mode LaCo", "not a subset"},
        {ELASTIC, "--artifact A.h5 --mode AttnDrop --ratio 0.5", 2, "--mode AttnDrop", "not a subset"},
        {ELASTIC, "--artifact A.h5 --mode Nope --ratio 0.5", 2, "--mode 'Nope'", "ShortGPT"},
        {ELASTIC, "--artifact A.h5 --mode ShortGPT --ratio 0", 2, "--ratio", NULL},
        {ELASTIC, "--artifact A.h5 --mode ShortGPT --ratio 1.5", 2, "--ratio", NULL},
        {ELASTIC, "--artifact A.h5 --mode ShortGPT --ratio 0.5 --compat both", 2, "--compat 'both'", NULL},
    };
    char msg[4096];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = tu_run_bin(msg, sizeof msg, "export --model %s %s --out %s", cases[i].model, cases[i].args, out);
        cr_expect_eq(rc, cases[i].rc, "case %zu (%s): %s", i, cases[i].args, msg);
        cr_expect(strstr(msg, cases[i].says1) && (!cases[i].says2 || strstr(msg, cases[i].says2)), "case %zu: %s", i,
                  msg);
        cr_expect(strchr(msg, '\n') == strrchr(msg, '\n'), "case %zu: not one line: %s", i, msg);
    }
    // a preparation the artifact does not hold (ShortGPT, and the artifact variant)
    int rc = tu_run_bin(msg, sizeof msg,
                        "export --model " ELASTIC " --artifact %s --mode ShortGPT --ratio 0.5 --out %s", art, out);
    cr_expect_eq(rc, 2, "%s", msg);
    cr_expect(strstr(msg, "baselines/ShortGPT/paper") && strstr(msg, "prepare --mode ShortGPT"), "%s", msg);
    prepare(art, "ShortGPT", COMPAT_PAPER);
    rc = tu_run_bin(msg, sizeof msg, "export --model " ELASTIC " --artifact %s --mode ShortGPT --ratio 0.5 "
                    "--compat artifact --out %s", art, out);
    cr_expect_eq(rc, 2, "%s", msg);
    cr_expect(strstr(msg, "baselines/ShortGPT/artifact") && strstr(msg, "--compat artifact"), "%s", msg);
    // where it cannot write: under a file, onto a file, into the model itself; --out missing
    rc = tu_run_bin(msg, sizeof msg, "export --model %s --layers 0 --out %s/sub", src, in_dir("file.txt"));
    cr_expect_eq(rc, 1, "%s", msg);
    cr_expect(strstr(msg, "file.txt/sub") && strstr(msg, "cannot create"), "%s", msg);
    rc = tu_run_bin(msg, sizeof msg, "export --model %s --layers 0 --out %s", src, in_dir("file.txt"));
    cr_expect_eq(rc, 1, "%s", msg);
    cr_expect(strstr(msg, "file.txt") && strstr(msg, "not a directory"), "%s", msg);
    rc = tu_run_bin(msg, sizeof msg, "export --model %s --layers 0 --out %s/.", src, src);
    cr_expect_eq(rc, 2, "%s", msg);
    cr_expect(strstr(msg, "the model's own directory") != NULL, "%s", msg);
    rc = tu_run_bin(msg, sizeof msg, "export --model %s --layers 0", src);
    cr_expect_eq(rc, 2, "%s", msg);
    cr_expect(strstr(msg, "--out DIR is required") != NULL, "%s", msg);
}
