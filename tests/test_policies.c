// The layer baselines' policies:
//  - Block Influence and attention / FFN importance (both cosine variants)
//    against tests/reference/make_baseline_goldens.py (transformers hooks);
//  - LaCo's merge search, paper and artifact variants, every ratio: the trial
//    sequence, similarities, final groups and coefficients, merged weights;
//  - the rules: kept-layer counts of both layer rules, AttnDrop's (a, m) table
//    for N = 32 and 26 as the artifact's code gives them (spec table);
//  - prepare and evaluate from the CLI, and bad input (ranks of the wrong
//    length or with repeats, SLOs off the grid, an artifact of another model).
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elastic/elastic.h"
#include "io/safetensors.h"
#include "policy/policy.h"
#include "test_util.h"

#define ELASTIC "tests/fixtures/tiny-elastic-gqa"
#define GOLDEN "tests/fixtures/elastic/tiny-elastic-gqa_baselines.safetensors"
#define CALIB "tests/fixtures/elastic/tiny-elastic-gqa_elastic.safetensors"

static void expect_near(const double *got, const float *want, int n, double tol, const char *what) {
    for (int i = 0; i < n; i++)
        cr_expect(fabs(got[i] - want[i]) <= tol, "%s[%d]: %.7f, transformers %.7f", what, i, got[i], want[i]);
}

Test(policies, layer_statistics_match_transformers) {
    LlamaModel m;
    cr_assert_eq(llama_load(&m, ELASTIC), ST_OK, "%s", status_message());
    SafetensorsFile e, g;
    cr_assert_eq(safetensors_open(&e, CALIB), ST_OK);
    cr_assert_eq(safetensors_open(&g, GOLDEN), ST_OK, "%s", status_message());
    const int32_t *ids = (const int32_t *)tu_tensor(&e, "calib_ids", DT_I32)->data;
    double bi[6], attn[6], ffn[6];
    cr_assert_eq(layer_stats(&m, ids, 4, 16, COS_PER_TOKEN, bi, attn, ffn), ST_OK, "%s", status_message());
    expect_near(bi, (const float *)tu_tensor(&g, "bi_token", DT_F32)->data, 6, 2e-5, "bi_token");
    expect_near(attn, (const float *)tu_tensor(&g, "attn_token", DT_F32)->data, 6, 2e-5, "attn_token");
    expect_near(ffn, (const float *)tu_tensor(&g, "mlp_token", DT_F32)->data, 6, 2e-5, "mlp_token");
    cr_assert_eq(layer_stats(&m, ids, 4, 16, COS_FLAT, bi, attn, ffn), ST_OK, "%s", status_message());
    expect_near(bi, (const float *)tu_tensor(&g, "bi_flat", DT_F32)->data, 6, 2e-5, "bi_flat");
    expect_near(attn, (const float *)tu_tensor(&g, "attn_flat", DT_F32)->data, 6, 2e-5, "attn_flat");
    safetensors_close(&e);
    safetensors_close(&g);
    llama_free(&m);
}

// The trials, thresholds, similarities, groups and coefficients of every ratio,
// and the merged weights at r = 0.4, for one variant.
static void check_laco(Compat c) {
    LlamaModel m;
    cr_assert_eq(llama_load(&m, ELASTIC), ST_OK, "%s", status_message());
    SafetensorsFile e, g;
    cr_assert_eq(safetensors_open(&e, CALIB), ST_OK);
    cr_assert_eq(safetensors_open(&g, GOLDEN), ST_OK, "%s", status_message());
    const int32_t *ids = (const int32_t *)tu_tensor(&e, "calib_ids", DT_I32)->data;
    int32_t cu[5] = {0, 16, 32, 48, 64};
    const char *v = compat_name(c);
    const double ratios[9] = {0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
    double thr = 0.45;
    for (int i = 0; i < 9; i++) {
        if (c == COMPAT_PAPER) thr = 0.45;
        LacoModel lm;
        cr_assert_eq(laco_search(&m, ids, cu, 4, ratios[i], c, &thr, &lm), ST_OK, "%s", status_message());
        char name[96];
        snprintf(name, sizeof name, "laco.%s.%g.trials", v, ratios[i]);
        const SafeTensor *tr = tu_tensor(&g, name, DT_F32);
        int n = (int)tr->shape[0];
        cr_assert_eq(lm.n_trials, n, "%s: %d trials, transformers %d", name, lm.n_trials, n);
        const float *want = (const float *)tr->data;
        for (int k = 0; k < n; k++) {
            const double *got = lm.trials + 5 * k;
            const float *w = want + 5 * k;
            cr_expect(got[0] == w[0] && got[1] == w[1] && got[4] == w[4], "%s[%d]: lay %g m %g acc %g vs %g %g %g",
                      name, k, got[0], got[1], got[4], w[0], w[1], w[4]);
            cr_expect(fabs(got[2] - w[2]) < 1e-6 && fabs(got[3] - w[3]) < 1e-4,
                      "%s[%d]: threshold %.7f similarity %.7f vs %.7f %.7f", name, k, got[2], got[3], w[2], w[3]);
        }
        snprintf(name, sizeof name, "laco.%s.%g.coef", v, ratios[i]);
        const SafeTensor *co = tu_tensor(&g, name, DT_F32);
        cr_assert_eq(lm.depth, (int)co->shape[0], "%s: depth %d vs %lld", name, lm.depth, (long long)co->shape[0]);
        for (int k = 0; k < lm.depth * 6; k++)
            cr_expect(fabs(lm.coef[k] - ((const float *)co->data)[k]) < 1e-6, "%s[%d]: %g vs %g", name, k, lm.coef[k],
                      ((const float *)co->data)[k]);
        snprintf(name, sizeof name, "laco.%s.%g.norm_src", v, ratios[i]);
        const int32_t *ns = (const int32_t *)tu_tensor(&g, name, DT_I32)->data;
        for (int k = 0; k < lm.depth; k++) cr_expect_eq(lm.start[k], ns[k], "%s[%d]", name, k);
        snprintf(name, sizeof name, "laco.%s.%g.sim", v, ratios[i]);
        cr_expect(fabs(lm.sim - ((const float *)tu_tensor(&g, name, DT_F32)->data)[0]) < 1e-4, "%s: %g", name, lm.sim);
        if (i == 2) { // r = 0.4: the merged weights themselves
            for (int k = 0; k < lm.depth; k++) {
                LlamaLayer ly;
                cr_assert_eq(laco_materialize(&m, &lm, k, &ly), ST_OK, "%s", status_message());
                const char *proj[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
                const Tensor *ours[] = {&ly.wq, &ly.wk, &ly.wv, &ly.wo, &ly.w_gate, &ly.w_up, &ly.w_down};
                for (int p = 0; p < 7; p++) {
                    snprintf(name, sizeof name, "laco.%s.0.4.%d.%s", v, k, proj[p]);
                    const SafeTensor *w = tu_tensor(&g, name, DT_F32);
                    size_t cnt = (size_t)tensor_numel(ours[p]);
                    float scale = tu_max_abs((const float *)w->data, cnt);
                    float d = tu_max_abs_diff((const float *)w->data, ours[p]->data, cnt);
                    cr_expect_leq(d, 1e-5f * scale, "%s: %g (scale %g)", name, d, scale);
                }
                cr_expect(ly.attn_norm.data == m.layers[lm.start[k]].attn_norm.data, "norms of the base layer");
                laco_layer_free(&ly);
            }
        }
        laco_free(&lm);
    }
    safetensors_close(&e);
    safetensors_close(&g);
    llama_free(&m);
}

Test(policies, laco_search_paper_matches_reference) { check_laco(COMPAT_PAPER); }
Test(policies, laco_search_artifact_matches_reference) { check_laco(COMPAT_ARTIFACT); }

Test(policies, kept_layer_counts) {
    const double s[9] = {0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
    // the artifact's slice ranks[int(1 - s N):] (spec table: 5, 8, 11, 15, 18, 21, 24, 27, 31 for N = 32)
    int art32[9] = {5, 8, 11, 15, 18, 21, 24, 27, 31}, art26[9] = {4, 6, 9, 12, 14, 17, 19, 22, 25};
    int pap32[9] = {6, 10, 13, 16, 19, 22, 26, 29, 32}, pap26[9] = {5, 8, 10, 13, 16, 18, 21, 23, 26};
    for (int i = 0; i < 9; i++) {
        cr_expect_eq(layers_kept(s[i], 32, COMPAT_ARTIFACT), art32[i], "artifact N=32 s=%g", s[i]);
        cr_expect_eq(layers_kept(s[i], 26, COMPAT_ARTIFACT), art26[i], "artifact N=26 s=%g", s[i]);
        cr_expect_eq(layers_kept(s[i], 32, COMPAT_PAPER), pap32[i], "paper N=32 s=%g", s[i]);
        cr_expect_eq(layers_kept(s[i], 26, COMPAT_PAPER), pap26[i], "paper N=26 s=%g", s[i]);
    }
    cr_expect_eq(layers_kept(0.2, 4, COMPAT_ARTIFACT), 4, "s N < 1: the artifact's slice starts at 0, keeping all");
    cr_expect_eq(layers_kept(0.2, 4, COMPAT_PAPER), 1);
}

Test(policies, attndrop_budget_tables) {
    const double s[9] = {0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
    int t32[9][2] = {{15, 31}, {6, 31}, {0, 29}, {0, 24}, {0, 20}, {0, 15}, {0, 10}, {0, 5}, {0, 0}};
    int t26[9][2] = {{13, 25}, {5, 25}, {0, 24}, {0, 20}, {0, 16}, {0, 12}, {0, 8}, {0, 4}, {0, 0}};
    for (int i = 0; i < 9; i++) {
        int a, m;
        cr_assert(attndrop_budget(32, s[i], &a, &m));
        cr_expect(a == t32[i][0] && m == t32[i][1], "N=32 s=%g: (%d, %d), spec (%d, %d)", s[i], a, m, t32[i][0], t32[i][1]);
        cr_assert(attndrop_budget(26, s[i], &a, &m));
        cr_expect(a == t26[i][0] && m == t26[i][1], "N=26 s=%g: (%d, %d), spec (%d, %d)", s[i], a, m, t26[i][0], t26[i][1]);
    }
}

Test(policies, slo_and_ranks_checks) {
    Slo s;
    cr_expect_eq(slo_parse("0.8", "0.9", &s), ST_OK);
    cr_expect(s.prefill == 0.8 && s.decode == 0.9);
    tu_expect_err(slo_parse("0.1", "0.9", &s), ST_USAGE, "prefill-slo", "0.1", "grid");
    tu_expect_err(slo_parse("0.8", "0.4", &s), ST_USAGE, "decode-slo", "0.4", "grid");
    tu_expect_err(slo_parse("0.85", "0.9", &s), ST_USAGE, "prefill-slo", "0.85", "grid");
    tu_expect_err(slo_parse("x", "0.9", &s), ST_USAGE, "prefill-slo", "x", "grid");
    int32_t ok[4] = {2, 0, 3, 1}, rep[4] = {2, 0, 2, 1}, out[4] = {2, 0, 4, 1};
    cr_expect_eq(ranks_check(ok, 4, 4, "r"), ST_OK);
    tu_expect_err(ranks_check(ok, 3, 4, "--ranks"), ST_USAGE, "--ranks", "3 layers", "has 4");
    tu_expect_err(ranks_check(rep, 4, 4, "--ranks"), ST_USAGE, "--ranks", "layer 2", "twice");
    tu_expect_err(ranks_check(out, 4, 4, "--ranks"), ST_USAGE, "--ranks", "layer 4", "outside");
    const Policy *p;
    tu_expect_err(policy_lookup("Nope", &p), ST_USAGE, "Nope", "LaCo", "ShortGPT");
}

#define TOKENIZER "--tokenizer tests/fixtures/train/byte-tokenizer.json "
#define TEXT "tests/fixtures/train/text.txt"

// elasticize, then prepare every layer baseline from the CLI; the decisions
// they serve; and the one-line errors for bad input.
Test(policies, prepare_and_decide_from_the_cli) {
    char dir[64], art[128], cmd[2048], out[16384];
    tu_make_temp_dir(dir, sizeof dir, "policies");
    snprintf(art, sizeof art, "%s/art.h5", dir);
    snprintf(cmd, sizeof cmd, "%s elasticize --model " ELASTIC " " TOKENIZER "--calib " TEXT
             " --samples 4 --seq 16 --keep 1 --out %s --quiet", tu_bin(), art);
    cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    const char *modes[] = {"LayerReduction", "ShortGPT", "AttnDrop", "LaCo"};
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 4; i++) {
            snprintf(cmd, sizeof cmd, "%s prepare --mode %s --model " ELASTIC " " TOKENIZER "--artifact %s --calib " TEXT
                     " --samples 4 --seq 16 --compat %s --quiet", tu_bin(), modes[i], art, c ? "artifact" : "paper");
            cr_assert_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
            cr_expect(strstr(out, "prepared") != NULL, "%s", out);
        }
    // published ranks: wrong length, repeats; a given list is used as it is
    struct { const char *ranks; int rc; const char *says; } given[] = {
        {"[0, 1, 2]", 2, "3 layers listed, the model has 6"},
        {"[0, 1, 2, 3, 4, 4]", 2, "layer 4 is listed twice"},
        {"[5, 4, 3, 2, 1, 0]", 0, "[5, 4, 3, 2, 1, 0]"}};
    for (size_t i = 0; i < sizeof given / sizeof *given; i++) {
        snprintf(cmd, sizeof cmd, "%s prepare --mode ShortGPT --model " ELASTIC " " TOKENIZER "--artifact %s --ranks \"%s\"",
                 tu_bin(), art, given[i].ranks);
        cr_expect_eq(tu_run(cmd, out, sizeof out), given[i].rc, "%s", out);
        cr_expect(strstr(out, given[i].says) != NULL, "%s", out);
    }
    // an artifact made for another model
    snprintf(cmd, sizeof cmd, "%s prepare --mode ShortGPT --model tests/fixtures/tiny-llama-mha " TOKENIZER
             "--artifact %s --calib " TEXT " --samples 2 --seq 8", tu_bin(), art);
    cr_expect_eq(tu_run(cmd, out, sizeof out), 1, "%s", out);
    cr_expect(strstr(out, "made for a model with") != NULL, "%s", out);
    // the policies serve what was prepared
    LlamaModel m;
    cr_assert_eq(llama_load(&m, ELASTIC), ST_OK);
    Slo slo = {0.6, 0.8};
    struct { const Policy *p; Compat c; } cases[] = {
        {&policy_layer_reduction, COMPAT_PAPER}, {&policy_shortgpt, COMPAT_PAPER}, {&policy_attndrop, COMPAT_PAPER},
        {&policy_attndrop, COMPAT_ARTIFACT},     {&policy_laco, COMPAT_PAPER},     {&policy_laco, COMPAT_ARTIFACT}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        void *st;
        PolicyOpen o = {.m = &m, .artifact = art, .compat = cases[i].c};
        cr_assert_eq(cases[i].p->open(&st, &o), ST_OK, "%s: %s", cases[i].p->name, status_message());
        if (cases[i].p->place) cr_assert_eq(cases[i].p->place(st, &m), ST_OK);
        Decision d;
        cr_assert_eq(cases[i].p->decide(st, NULL, &slo, &d), ST_OK, "%s", status_message());
        cr_assert_not_null(d.view);
        cr_expect_eq(llama_view_validate(&m, d.view), ST_OK, "%s: %s", cases[i].p->name, status_message());
        int whole = 0, attn = 0, ffn = 0;
        for (int l = 0; l < 6; l++) {
            whole += d.view->blocks[l] == LAYER_ALL;
            attn += (d.view->blocks[l] & LAYER_ATTN) != 0;
            ffn += (d.view->blocks[l] & LAYER_FFN) != 0;
        }
        if (cases[i].p == &policy_shortgpt) { // the given list [5 4 3 2 1 0]: round(0.6 * 6) = 4 kept, 5 and 4 dropped
            cr_expect(whole == 4 && d.view->blocks[5] == 0 && d.view->blocks[4] == 0, "%s", d.what);
        } else if (cases[i].p == &policy_layer_reduction) {
            cr_expect_eq(whole, 4, "%s", d.what);
        } else if (cases[i].p == &policy_attndrop && cases[i].c == COMPAT_ARTIFACT) { // N=6, s=0.6: (a, m) = (0, 3)
            int a, mm;
            cr_assert(attndrop_budget(6, 0.6, &a, &mm));
            cr_expect(attn == 6 - a && ffn == 6 - mm, "%s (a %d, m %d)", d.what, a, mm);
        } else if (cases[i].p == &policy_attndrop) { // the remaining cost fits 0.6 * 18
            cr_expect_leq(attn + 2 * ffn, 11, "%s", d.what);
            cr_expect_geq(attn + 2 * ffn, 9, "%s", d.what);
        }
        cases[i].p->close(st);
    }
    llama_free(&m);
    // eval: SLOs off the grid and a missing preparation are one-line errors
    snprintf(cmd, sizeof cmd, "%s eval --model " ELASTIC " --dataset ARC_E --mode ShortGPT --artifact %s "
             "--prefill-slo 0.25 --decode-slo 0.9", tu_bin(), art);
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "--prefill-slo '0.25'") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s eval --model " ELASTIC " --dataset ARC_E --mode LaCo --prefill-slo 0.4 --decode-slo 0.7",
             tu_bin());
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "needs --artifact") != NULL, "%s", out);
    // forward/generate run the policy's decided view; SLOs without a policy, or with --level, are refused
    snprintf(cmd, sizeof cmd, "%s generate --model " ELASTIC " --artifact %s --mode LaCo --prefill-slo 0.6 "
             "--decode-slo 0.9 --ids \"1 2 3\" --steps 4", tu_bin(), art);
    cr_expect_eq(tu_run(cmd, out, sizeof out), 0, "%s", out);
    cr_expect(strstr(out, "LaCo at SLO (0.6, 0.9): 3 of 6 layers after merging") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s forward --model " ELASTIC " --prefill-slo 0.4 --ids \"1 2\"", tu_bin());
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    cr_expect(strstr(out, "give the policy with --mode") != NULL, "%s", out);
    snprintf(cmd, sizeof cmd, "%s forward --model " ELASTIC " --artifact %s --level 0.5 --mode ShortGPT --ids \"1 2\"",
             tu_bin(), art);
    cr_expect_eq(tu_run(cmd, out, sizeof out), 2, "%s", out);
    tu_remove_dir(dir);
}
