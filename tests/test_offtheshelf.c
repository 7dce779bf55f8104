// Off-The-Shelf: the model ladder file (rungs, order, missing models, the
// artifact's missing `elif`), the scorer running OPT through causal_lm.h (shared
// prefix and left-padded batches against a direct forward, so positions
// follow Hugging Face's), and `eval --mode Off-The-Shelf` over a ladder of the
// served tiny LLaMA, a copy of it and a random OPT.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "eval/score.h"
#include "io/safetensors.h"
#include "models/causal_lm.h"
#include "models/opt.h"
#include "policy/ladder.h"
#include "runtime/rng.h"
#include "test_util.h"

#define TINY "tests/fixtures/tiny-llama3-gqa"
#define ARC "tests/fixtures/datasets/hf_arc_easy.jsonl"

static char g_dir[256];

static void setup(void) { tu_make_temp_dir(g_dir, sizeof g_dir, "ots"); }
static void teardown(void) { tu_remove_dir(g_dir); }

TestSuite(offtheshelf, .init = setup, .fini = teardown, .timeout = 240);

static const char *in_dir(const char *name) {
    static char buf[4][700];
    static int slot;
    char *p = buf[slot++ % 4];
    snprintf(p, 700, "%s/%s", g_dir, name);
    return p;
}

// ---- the ladder file ----------------------------------------------------------------

Test(offtheshelf, ladder_reads_rungs_and_picks) {
    tu_write_file_in(g_dir, "m1/config.json", "{}");
    tu_write_file_in(g_dir, "m2/config.json", "{}");
    tu_write_file_in(g_dir, "ladder.txt", "# the artifact's ladder\n1.0 full\n0.5  m1   # the larger\n\n0 m2\n");
    Ladder l;
    cr_assert_eq(ladder_load(in_dir("ladder.txt"), &l), ST_OK, "%s", status_message());
    cr_assert_eq(l.n, 3);
    cr_expect(l.rungs[0].full && !l.rungs[1].full && l.rungs[1].threshold == 0.5);
    cr_expect(strstr(l.rungs[1].path, "/m1") != NULL, "%s", l.rungs[1].path);
    // s = min(prefill, decode): 1.0 the full model, 0.5 ... 0.9 m1, below m2
    cr_expect_eq(ladder_pick(&l, 1.0, false), 0);
    cr_expect_eq(ladder_pick(&l, 0.9, false), 1);
    cr_expect_eq(ladder_pick(&l, 0.5, false), 1);
    cr_expect_eq(ladder_pick(&l, 0.4, false), 2);
    // the artifact's missing elif: the full model is never served
    cr_expect_eq(ladder_pick(&l, 1.0, true), 1);
    cr_expect_eq(ladder_pick(&l, 0.2, true), 2);
}

Test(offtheshelf, bad_ladders_are_named) {
    tu_write_file_in(g_dir, "m1/config.json", "{}");
    struct {
        const char *text, *want;
    } cases[] = {
        {"0.5 m1\n0.8 full\n", "strictly descend"},
        {"1.0 full\n0.5 nowhere\n", "does not exist"},
        {"1.0 full\n0.5 m1\n", "last threshold"},
        {"1.5 full\n0 m1\n", "threshold in [0, 1]"},
        {"0.5 m1 extra\n0 m1\n", "one threshold and one model"},
        {"# nothing\n", "no rungs"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        tu_write_file_in(g_dir, "bad.txt", cases[i].text);
        Ladder l;
        Status st = ladder_load(in_dir("bad.txt"), &l);
        cr_expect_neq(st, ST_OK, "case %zu accepted", i);
        cr_expect(strstr(status_message(), "bad.txt") && strstr(status_message(), cases[i].want), "case %zu: %s", i,
                  status_message());
    }
}

// ---- OPT in the scorer ------------------------------------------------------------------

// The artifact's score of each choice from one unpadded forward of the whole candidate.
static void direct_scores(const OptModel *m, const Tokenizer *tok, const char *prompt, const char *const *choices,
                          int n, float *out) {
    for (int c = 0; c < n; c++) {
        char text[512];
        snprintf(text, sizeof text, "%s%s", prompt, choices[c]);
        TokenList cand, bare;
        cr_assert_eq(tokenizer_encode(tok, text, strlen(text), false, &cand), ST_OK);
        cr_assert_eq(tokenizer_encode(tok, choices[c], strlen(choices[c]), false, &bare), ST_OK);
        int T = (int)cand.n, L = (int)bare.n;
        OptSession s;
        cr_assert_eq(opt_session_init(&s, m, 1, T, (Device){DEV_CPU, 0}), ST_OK);
        Tensor logits = tu_zeros_2d(T, m->cfg.vocab_size);
        cr_assert_eq(opt_forward(m, &s, cand.ids, NULL, T, LOGITS_ALL, &logits), ST_OK, "%s", status_message());
        double sum = 0;
        for (int j = 0; j < L; j++) {
            const float *row = tensor_row_f32(&logits, T - L + j - 1);
            double mx = row[0], z = 0;
            for (int v = 1; v < m->cfg.vocab_size; v++) mx = row[v] > mx ? row[v] : mx;
            for (int v = 0; v < m->cfg.vocab_size; v++) z += exp(row[v] - mx);
            sum += row[bare.ids[j]] - mx - log(z);
        }
        out[c] = (float)(sum / L);
        tensor_free(&logits);
        opt_session_free(&s);
        token_list_free(&cand), token_list_free(&bare);
    }
}

Test(offtheshelf, scorer_runs_opt_as_a_direct_forward) {
    OptModel m;
    cr_assert_eq(opt_load(&m, "tests/fixtures/opt/pre-ln"), ST_OK, "%s", status_message());
    Tokenizer *tok;
    cr_assert_eq(tokenizer_load_for_model(&tok, "tests/fixtures/opt/pre-ln"), ST_OK, "%s", status_message());
    CausalLM lm = causal_lm_opt(&m);
    const char *prompt = "the cat sat ";
    const char *choices[] = {"on", "under the mat", "x"}; // different lengths: the unshared batch is left-padded
    float want[3];
    direct_scores(&m, tok, prompt, choices, 3, want);
    for (int share = 0; share < 2; share++) {
        Scorer s;
        cr_assert_eq(scorer_init_lm(&s, &lm, tok, (Device){DEV_CPU, 0}, share, 24), ST_OK, "%s", status_message());
        ChoiceScore got[3];
        cr_assert_eq(scorer_score(&s, prompt, choices, 3, got), ST_OK, "%s", status_message());
        for (int c = 0; c < 3; c++)
            cr_expect(fabsf(got[c].mean_logprob - want[c]) < 1e-5f, "share %d choice %d: %g, want %g", share, c,
                      got[c].mean_logprob, want[c]);
        // a view is the LLaMA family's
        LlamaView v = {0};
        if (share) cr_expect_neq(scorer_set_view(&s, &v), ST_OK);
        scorer_free(&s);
    }
    tokenizer_free(tok);
    opt_free(&m);
}

// ---- eval --mode Off-The-Shelf ------------------------------------------------------------

// The tiny LLaMA with a byte tokenizer under dir/name.
static void make_llama(const char *name) {
    char path[800];
    tu_make_byte_llm(g_dir, name, path, sizeof path);
}

// A random pre-LN OPT over the byte vocabulary with room for long prompts.
static void make_opt(const char *name) {
    char rel[128];
    snprintf(rel, sizeof rel, "%s/config.json", name);
    tu_write_file_in(g_dir, rel,
                     "{\"model_type\": \"opt\", \"vocab_size\": 256, \"hidden_size\": 16, \"num_hidden_layers\": 1, "
                     "\"num_attention_heads\": 2, \"ffn_dim\": 32, \"max_position_embeddings\": 4096, "
                     "\"word_embed_proj_dim\": 16, \"do_layer_norm_before\": true, \"activation_function\": \"relu\", "
                     "\"enable_bias\": true, \"tie_word_embeddings\": true}");
    const char *names[] = {"model.decoder.embed_tokens.weight", "model.decoder.embed_positions.weight",
                           "model.decoder.final_layer_norm.weight", "model.decoder.final_layer_norm.bias",
                           "model.decoder.layers.0.self_attn.q_proj.weight", "model.decoder.layers.0.self_attn.q_proj.bias",
                           "model.decoder.layers.0.self_attn.k_proj.weight", "model.decoder.layers.0.self_attn.k_proj.bias",
                           "model.decoder.layers.0.self_attn.v_proj.weight", "model.decoder.layers.0.self_attn.v_proj.bias",
                           "model.decoder.layers.0.self_attn.out_proj.weight",
                           "model.decoder.layers.0.self_attn.out_proj.bias",
                           "model.decoder.layers.0.self_attn_layer_norm.weight",
                           "model.decoder.layers.0.self_attn_layer_norm.bias", "model.decoder.layers.0.fc1.weight",
                           "model.decoder.layers.0.fc1.bias", "model.decoder.layers.0.fc2.weight",
                           "model.decoder.layers.0.fc2.bias", "model.decoder.layers.0.final_layer_norm.weight",
                           "model.decoder.layers.0.final_layer_norm.bias"};
    int64_t shapes[][2] = {{256, 16}, {4098, 16}, {16, 0}, {16, 0}, {16, 16}, {16, 0}, {16, 16}, {16, 0}, {16, 16}, {16, 0},
                           {16, 16},  {16, 0},    {16, 0}, {16, 0}, {32, 16}, {32, 0}, {16, 32}, {16, 0}, {16, 0},  {16, 0}};
    enum { N = sizeof names / sizeof *names };
    Tensor ts[N];
    Rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < N; i++) {
        ts[i] = shapes[i][1] ? tu_random_2d(&r, shapes[i][0], shapes[i][1]) : tu_random_1d(&r, shapes[i][0], 0, 0.3f);
        if (strstr(names[i], "norm.weight")) tu_fill(&ts[i], 1.0f);
    }
    char path[800];
    snprintf(path, sizeof path, "%s/%s/model.safetensors", g_dir, name);
    cr_assert_eq(safetensors_write(path, names, ts, N), ST_OK, "%s", status_message());
    for (int i = 0; i < N; i++) tensor_free(&ts[i]);
    snprintf(path, sizeof path, "%s/%s/tokenizer.json", g_dir, name);
    tu_write_byte_tokenizer(path);
}


#define EVAL "eval --dataset ARC_E --data " ARC " --limit 3 --model %s "

Test(offtheshelf, eval_serves_the_ladders_models) {
    static char out[32768];
    make_llama("llm");
    make_llama("llm-copy");
    make_opt("opt");
    tu_write_file_in(g_dir, "ladder.txt", "1.0 full\n0.5 llm-copy\n0 opt\n");
    char llm[700];
    snprintf(llm, sizeof llm, "%s", in_dir("llm"));
    char full[700], same[700], copy[700], opt[700], res[700], ladder[700];
    snprintf(full, sizeof full, "%s", in_dir("full.jsonl"));
    snprintf(same, sizeof same, "%s", in_dir("same.jsonl"));
    snprintf(copy, sizeof copy, "%s", in_dir("copy.jsonl"));
    snprintf(opt, sizeof opt, "%s", in_dir("opt.jsonl"));
    snprintf(res, sizeof res, "%s", in_dir("res"));
    snprintf(ladder, sizeof ladder, "%s", in_dir("ladder.txt"));
    cr_assert_eq(tu_run_bin(out, sizeof out, EVAL "--predictions %s --quiet", llm, full), 0, "%s", out);
    cr_assert_eq(tu_run_bin(out, sizeof out, EVAL "--mode Off-The-Shelf --ladder %s --predictions %s", llm, ladder, same),
                 0, "%s", out);
    cr_expect(strstr(out, "the full model"), "%s", out);
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            EVAL "--mode Off-The-Shelf --ladder %s --prefill-slo 0.6 --decode-slo 0.9 --predictions %s",
                            llm, ladder, copy),
                 0, "%s", out);
    cr_expect(strstr(out, "llm-copy"), "%s", out);
    cr_assert_eq(tu_run_bin(out, sizeof out,
                            EVAL "--mode Off-The-Shelf --ladder %s --prefill-slo 0.2 --decode-slo 0.5 --predictions %s "
                                 "--results %s",
                            llm, ladder, opt, res),
                 0, "%s", out);
    cr_expect(strstr(out, "s = 0.2: opt"), "%s", out);
    double a[64], b[64], c[64], d[64];
    int na = tu_pred_scores(full, a, 64), nb = tu_pred_scores(same, b, 64), nc = tu_pred_scores(copy, c, 64),
        nd = tu_pred_scores(opt, d, 64);
    cr_assert(na >= 9 && na == nb && na == nc && na == nd, "%d %d %d %d scores", na, nb, nc, nd);
    double far = 0;
    for (int i = 0; i < na; i++) {
        cr_expect(a[i] == b[i] && a[i] == c[i], "score %d: %g %g %g", i, a[i], b[i], c[i]);
        far = fmax(far, fabs(a[i] - d[i]));
    }
    cr_expect(far > 1e-3, "the OPT rung scored like the served model");
    char file[800];
    snprintf(file, sizeof file, "%s/llm_ARC_E.txt", res);
    size_t len;
    char *line = tu_read_text(file, &len);
    cr_expect(!strncmp(line, "ARC_E llm Off-The-Shelf 0.2 0.5 ", 32), "%s", line);
    free(line);
    // the artifact's missing elif: at s = 1.0 the next rung answers
    cr_assert_eq(tu_run_bin(out, sizeof out, EVAL "--mode Off-The-Shelf --ladder %s --compat artifact", llm, ladder), 0,
                 "%s", out);
    cr_expect(strstr(out, "llm-copy"), "%s", out);
    // no ladder, a ladder naming a missing model
    cr_expect_eq(tu_run_bin(out, sizeof out, EVAL "--mode Off-The-Shelf --quiet", llm), 2, "%s", out);
    cr_expect(strstr(out, "--ladder"), "%s", out);
    tu_write_file_in(g_dir, "ladder2.txt", "1.0 full\n0 gone\n");
    cr_expect_neq(tu_run_bin(out, sizeof out, EVAL "--mode Off-The-Shelf --ladder %s --quiet", llm, in_dir("ladder2.txt")),
                  0, "%s", out);
    cr_expect(strstr(out, "ladder2.txt:2") && strstr(out, "gone"), "%s", out);
    // commands that run the served model's views refuse a decision naming another model
    cr_expect_neq(tu_run_bin(out, sizeof out,
                             "generate --model %s --ids \"1 2 3\" --steps 2 --mode Off-The-Shelf --ladder %s "
                             "--prefill-slo 0.2 --decode-slo 0.5 --quiet", llm, ladder),
                  0, "%s", out);
    cr_expect(strstr(out, "use eval"), "%s", out);
}
