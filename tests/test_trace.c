// SLO traces (host/e2e/trace*.c, `elastilm trace`): the skew's class counts,
// the artifact's three committed traces, save/load round trips, generation
// (deterministic, without replacement, the artifact's bugs on request, Poisson
// arrivals) from datasets built here, malformed traces named by file and
// request, and the command line on the fixture and bundled datasets.
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e/trace.h"
#include "runtime/log.h"
#include "test_util.h"

#define TRACES "datasets/elastilm-artifact/traces/"
#define FIX "tests/fixtures/datasets/"

static char g_dir[256];

static void setup(void) {
    tu_make_temp_dir(g_dir, sizeof g_dir, "trace");
    log_set_quiet(true); // the loader's warning about the artifact's traces, once per load
}
static void teardown(void) { tu_remove_dir(g_dir); }

TestSuite(trace, .init = setup, .fini = teardown, .timeout = 60);
TestSuite(trace_cli, .init = setup, .fini = teardown, .timeout = 120);

static const char *in_dir(const char *name) {
    static char buf[4][700];
    static int slot;
    char *p = buf[slot++ % 4];
    snprintf(p, 700, "%s/%s", g_dir, name);
    return p;
}

static void load_ok(const char *path, Trace *t) { cr_assert_eq(trace_load(path, t), ST_OK, "%s", status_message()); }

static size_t count_ds(const Trace *t, DatasetId ds) {
    size_t k = 0;
    for (size_t i = 0; i < t->n; i++) k += t->req[i].ds == ds;
    return k;
}

static void expect_same(const Trace *a, const Trace *b) {
    cr_assert_eq(a->n, b->n);
    cr_expect_eq(a->has_arrivals, b->has_arrivals);
    cr_expect_eq(a->n_octopus_photo, b->n_octopus_photo);
    cr_expect_eq(a->n_llamatouch_answer, b->n_llamatouch_answer);
    for (size_t k = 0; k < a->n; k++) {
        const TraceRequest *p = &a->req[k], *q = &b->req[k];
        cr_expect_str_eq(p->question, q->question, "request %zu", k);
        cr_assert_eq(p->n_choices, q->n_choices, "request %zu", k);
        for (int i = 0; i < p->n_choices; i++) cr_expect_str_eq(p->choices[i], q->choices[i]);
        cr_expect_str_eq(p->truth, q->truth, "request %zu", k);
        cr_expect_eq(p->truth_is_int, q->truth_is_int);
        cr_expect_eq(p->answer, q->answer, "request %zu", k);
        cr_expect(p->slo.prefill == q->slo.prefill && p->slo.decode == q->slo.decode, "request %zu", k);
        cr_expect_eq(p->idx, q->idx);
        cr_expect_eq(p->ds, q->ds);
        cr_expect(p->arrival == q->arrival, "request %zu: arrival %.17g vs %.17g", k, p->arrival, q->arrival);
    }
}

// ---- class counts and names ---------------------------------------------------------

Test(trace, class_counts_match_the_artifact) {
    long c[TRACE_CLASSES];
    const long want0[] = {100, 100, 100, 100, 100, 100}, want_pos[] = {48, 62, 80, 103, 133, 170};
    trace_class_counts(0, 600, c);
    for (int i = 0; i < TRACE_CLASSES; i++) cr_expect_eq(c[i], want0[i], "alpha 0 class %d: %ld", i, c[i]);
    trace_class_counts(0.25, 600, c);
    for (int i = 0; i < TRACE_CLASSES; i++) cr_expect_eq(c[i], want_pos[i], "alpha 0.25 class %d: %ld", i, c[i]);
    trace_class_counts(-0.25, 600, c);
    for (int i = 0; i < TRACE_CLASSES; i++)
        cr_expect_eq(c[i], want_pos[TRACE_CLASSES - 1 - i], "alpha -0.25 class %d: %ld", i, c[i]);
}

Test(trace, dataset_names_round_trip) {
    const char *names[] = {"OBQA", "ARC_E", "octopus", "llamatouch", "PIQA", "SCIQ"};
    for (int c = 0; c < TRACE_CLASSES; c++) {
        DatasetId ds;
        cr_assert_eq(trace_parse_dataset(names[c], &ds), ST_OK, "%s", status_message());
        cr_expect_eq(ds, TRACE_CLASS_DS[c]);
        cr_expect_str_eq(trace_dataset_name(ds), names[c]);
    }
    DatasetId ds;
    tu_expect_err(trace_parse_dataset("Octopus", &ds), ST_FORMAT, "'Octopus'", "octopus", NULL);
}

// ---- the artifact's traces ----------------------------------------------------------

static void check_artifact_trace(const char *name, double alpha, size_t n) {
    char path[256];
    snprintf(path, sizeof path, TRACES "%s", name);
    Trace t;
    load_ok(path, &t);
    cr_assert_eq(t.n, n, "%s: %zu requests", name, t.n);
    cr_expect(!t.has_arrivals);
    long c[TRACE_CLASSES];
    trace_class_counts(alpha, 600, c);
    for (int k = 0; k < TRACE_CLASSES; k++)
        cr_expect_eq(count_ds(&t, TRACE_CLASS_DS[k]), (size_t)c[k], "%s class %d", name, k);
    cr_expect_eq(t.n_octopus_photo, (size_t)c[2], "%s: %zu photo requests", name, t.n_octopus_photo);
    cr_expect_eq(t.n_llamatouch_answer, (size_t)c[3], "%s: %zu answer requests", name, t.n_llamatouch_answer);
    bool *seen = calloc(n, sizeof *seen);
    for (size_t i = 0; i < t.n; i++) {
        const TraceRequest *r = &t.req[i];
        cr_assert(r->answer >= 0 && r->answer < r->n_choices, "%s request %zu", name, i);
        int cls = 0;
        while (TRACE_CLASS_DS[cls] != r->ds) cls++;
        cr_expect(r->slo.prefill == TRACE_CLASS_SLO[cls].prefill && r->slo.decode == TRACE_CLASS_SLO[cls].decode);
        cr_assert(r->idx >= 0 && (size_t)r->idx < n && !seen[r->idx], "%s request %zu idx %ld", name, i, r->idx);
        seen[r->idx] = true;
        if (r->ds == DS_SCIQ) cr_expect(r->truth_is_int && r->answer == 3 && !strcmp(r->truth, "3"));
        if (r->ds == DS_PIQA) cr_expect(r->truth_is_int && r->n_choices == 2);
        if (r->ds == DS_OCTOPUS) {
            cr_expect_str_eq(r->question, "take a photo");
            cr_expect_eq(r->n_choices, 21);
            cr_expect_eq(r->answer, r->truth[0] - 'A');
        }
        if (r->ds == DS_LLAMATOUCH) cr_expect_str_eq(r->choices[r->answer], r->truth);
        if ((r->ds == DS_ARC_E || r->ds == DS_OBQA) && r->truth[0] >= '1' && r->truth[0] <= '9')
            cr_expect_eq(r->answer, r->truth[0] - '1', "numeric key %s", r->truth);
    }
    free(seen);
    trace_free(&t);
}

Test(trace, artifact_traces_load) {
    check_artifact_trace("trace_0.json", 0, 600);
    check_artifact_trace("trace_0.25.json", 0.25, 596);
    check_artifact_trace("trace_-0.25.json", -0.25, 596);
    // the first request of trace_0.json, as committed
    Trace t;
    load_ok(TRACES "trace_0.json", &t);
    cr_expect_str_eq(t.req[0].question, "In an atom, the electrons can be found");
    cr_expect_eq(t.req[0].answer, 0);
    cr_expect_eq(t.req[0].idx, 153);
    cr_expect(t.req[0].ds == DS_ARC_E && t.req[0].slo.prefill == 0.8 && t.req[0].slo.decode == 0.9);
    cr_expect(t.req[1].ds == DS_SCIQ && t.req[1].answer == 3 && !strcmp(t.req[1].choices[3], "current"));
    trace_free(&t);
}

Test(trace, save_load_round_trip) {
    Trace a, b, c;
    load_ok(TRACES "trace_0.25.json", &a);
    cr_assert_eq(trace_save(&a, in_dir("plain.json")), ST_OK, "%s", status_message());
    load_ok(in_dir("plain.json"), &b);
    expect_same(&a, &b);
    trace_free(&b);
    double clock = 0; // awkward doubles: the shortest round-trip form must read back exactly
    for (size_t k = 0; k < a.n; k++) a.req[k].arrival = clock += 1.0 / 3.0 + (double)k * 1e-7;
    a.has_arrivals = true;
    cr_assert_eq(trace_save(&a, in_dir("arr.json")), ST_OK, "%s", status_message());
    load_ok(in_dir("arr.json"), &b);
    expect_same(&a, &b);
    cr_assert_eq(trace_save(&b, in_dir("arr2.json")), ST_OK, "%s", status_message());
    size_t n1, n2;
    char *s1 = tu_read_text(in_dir("arr.json"), &n1), *s2 = tu_read_text(in_dir("arr2.json"), &n2);
    cr_expect(n1 == n2 && !memcmp(s1, s2, n1), "a saved trace saves back byte for byte");
    cr_expect(!strncmp(s1, "[\n[", 3) && !strcmp(s1 + n1 - 4, "]\n]\n"), "one request per line");
    cr_expect(strstr(s1, "[0.2, 0.5]") && strstr(s1, "[1.0, 1.0]"), "SLOs as the artifact writes them");
    free(s1);
    free(s2);
    // the artifact's own files: the same requests read back, and the committed
    // bytes (json.dump's one line) once the line breaks between requests go
    trace_free(&b);
    const char *names[] = {"trace_0.json", "trace_0.25.json", "trace_-0.25.json"};
    for (int i = 0; i < 3; i++) {
        char path[128];
        snprintf(path, sizeof path, TRACES "%s", names[i]);
        load_ok(path, &c);
        cr_assert_eq(trace_save(&c, in_dir("t.json")), ST_OK);
        load_ok(in_dir("t.json"), &b);
        expect_same(&c, &b);
        size_t n_saved, n_orig;
        char *saved = tu_read_text(in_dir("t.json"), &n_saved), *orig = tu_read_text(path, &n_orig), *w = saved;
        for (const char *r = saved; *r; r++) { // "[\n" -> "[", ",\n" -> ", ", "\n]\n" -> "]"
            if (*r != '\n') *w++ = *r;
            else if (r > saved && r[-1] == ',') *w++ = ' ';
        }
        *w = '\0';
        cr_expect(strlen(saved) == n_orig && !memcmp(saved, orig, n_orig), "%s: saved differs from the artifact's",
                  names[i]);
        free(saved);
        free(orig);
        trace_free(&b);
        if (i < 2) trace_free(&c);
    }
    trace_free(&a);
    trace_free(&c);
}

// ---- generation ---------------------------------------------------------------------

#define GEN_N 200 // questions per generated dataset

// A dataset of GEN_N questions "<name> question <i>" with answer i % choices.
static void make_ds(McDataset *d, DatasetId ds, size_t n) {
    int nc = ds == DS_PIQA ? 2 : ds == DS_OCTOPUS ? 21 : ds == DS_LLAMATOUCH ? 7 : 4;
    d->ds = ds;
    d->n = n;
    d->n_bad = 0;
    d->items = calloc(n, sizeof *d->items);
    char buf[128];
    for (size_t i = 0; i < n; i++) {
        McQuestion *q = &d->items[i];
        snprintf(buf, sizeof buf, "%zu", i);
        q->id = strdup(buf);
        snprintf(buf, sizeof buf, "test:%zu", i + 1);
        q->where = strdup(buf);
        snprintf(buf, sizeof buf, "%s question %zu", dataset_name(ds), i);
        q->question = strdup(buf);
        q->n_choices = nc;
        q->choices = calloc((size_t)nc, sizeof *q->choices);
        for (int c = 0; c < nc; c++) {
            if (ds == DS_OCTOPUS) snprintf(buf, sizeof buf, "function %d", c);
            else if (ds == DS_LLAMATOUCH) snprintf(buf, sizeof buf, "App %d", c);
            else snprintf(buf, sizeof buf, "%s %zu choice %d", dataset_name(ds), i, c);
            q->choices[c] = strdup(buf);
        }
        q->answer = (int)(i % (size_t)nc);
    }
}

typedef struct {
    McDataset d[DS_COUNT];
    TraceGenConfig cfg;
} GenFixture;

static void gen_init(GenFixture *g, double alpha, uint64_t seed) {
    memset(g, 0, sizeof *g);
    for (int d = 0; d < DS_COUNT; d++) {
        make_ds(&g->d[d], (DatasetId)d, GEN_N);
        g->cfg.src[d] = &g->d[d];
    }
    g->cfg.alpha = alpha;
    g->cfg.size = 600;
    g->cfg.seed = seed;
}

static void gen_free(GenFixture *g) {
    for (int d = 0; d < DS_COUNT; d++) dataset_free(&g->d[d]);
}

static void gen_ok(const GenFixture *g, Trace *t) {
    cr_assert_eq(trace_generate(&g->cfg, t), ST_OK, "%s", status_message());
}

static bool same_order(const Trace *a, const Trace *b) {
    if (a->n != b->n) return false;
    for (size_t k = 0; k < a->n; k++)
        if (strcmp(a->req[k].question, b->req[k].question) || a->req[k].idx != b->req[k].idx) return false;
    return true;
}

Test(trace, generate_is_deterministic_and_without_replacement) {
    GenFixture g;
    gen_init(&g, 0.25, 42);
    Trace a, b, c;
    gen_ok(&g, &a);
    gen_ok(&g, &b);
    cr_expect(same_order(&a, &b), "the same seed gives the same trace");
    expect_same(&a, &b);
    g.cfg.seed = 43;
    gen_ok(&g, &c);
    cr_expect(!same_order(&a, &c), "another seed gives another trace");
    long counts[TRACE_CLASSES];
    trace_class_counts(0.25, 600, counts);
    cr_assert_eq(a.n, 596);
    bool seen[DS_COUNT][GEN_N] = {{0}}, idx_seen[596] = {0};
    for (int k = 0; k < TRACE_CLASSES; k++) cr_expect_eq(count_ds(&a, TRACE_CLASS_DS[k]), (size_t)counts[k]);
    for (size_t i = 0; i < a.n; i++) {
        const TraceRequest *r = &a.req[i];
        size_t qi;
        char name[32];
        cr_assert_eq(sscanf(r->question, "%31s question %zu", name, &qi), 2, "%s", r->question);
        cr_assert_lt(qi, GEN_N);
        cr_expect(!seen[r->ds][qi], "%s drawn twice", r->question);
        seen[r->ds][qi] = true;
        cr_assert(r->idx >= 0 && r->idx < 596 && !idx_seen[r->idx], "idx %ld", r->idx);
        idx_seen[r->idx] = true;
        const McQuestion *q = &g.d[r->ds].items[qi];
        cr_expect_eq(r->answer, q->answer, "%s", r->question);
        cr_expect_eq(r->n_choices, q->n_choices);
        cr_expect(r->arrival < 0);
        if (r->ds == DS_PIQA || r->ds == DS_SCIQ) cr_expect(r->truth_is_int && atoi(r->truth) == q->answer);
        else if (r->ds == DS_LLAMATOUCH) cr_expect_str_eq(r->truth, q->choices[q->answer]);
        else cr_expect(r->truth[0] == 'A' + q->answer && r->truth[1] == '\0', "%s", r->truth);
    }
    // idx = the position before the shuffle: classes in order
    for (size_t i = 0; i < a.n; i++) {
        const TraceRequest *r = &a.req[i];
        long lo = 0;
        int cls = 0;
        while (TRACE_CLASS_DS[cls] != r->ds) lo += counts[cls++];
        cr_expect(r->idx >= lo && r->idx < lo + counts[cls], "idx %ld outside class %d", r->idx, cls);
    }
    cr_expect(a.n_octopus_photo == 0 && a.n_llamatouch_answer == 0, "real questions without --compat artifact");
    cr_assert_eq(trace_save(&a, in_dir("gen.json")), ST_OK, "%s", status_message());
    trace_free(&c);
    load_ok(in_dir("gen.json"), &c);
    expect_same(&a, &c); // the groundtruth as written resolves to the same answers
    trace_free(&a);
    trace_free(&b);
    trace_free(&c);
    gen_free(&g);
}

Test(trace, compat_artifact_reproduces_the_bugs) {
    GenFixture g;
    gen_init(&g, 0, 7);
    g.cfg.compat_artifact = true;
    Trace t;
    gen_ok(&g, &t);
    cr_expect_eq(t.n_octopus_photo, 100);
    cr_expect_eq(t.n_llamatouch_answer, 100);
    for (size_t i = 0; i < t.n; i++) {
        const TraceRequest *r = &t.req[i];
        if (r->ds == DS_OCTOPUS) cr_expect_str_eq(r->question, "function 0");
        if (r->ds == DS_LLAMATOUCH) cr_expect_str_eq(r->question, r->truth);
        if (r->ds == DS_ARC_E) cr_expect(strstr(r->question, "ARC_E question ") == r->question);
    }
    Trace back;
    cr_assert_eq(trace_save(&t, in_dir("compat.json")), ST_OK);
    load_ok(in_dir("compat.json"), &back);
    expect_same(&t, &back);
    trace_free(&back);
    trace_free(&t);
    gen_free(&g);
}

Test(trace, poisson_arrivals) {
    GenFixture g;
    gen_init(&g, 0, 42);
    g.cfg.rate = 5;
    Trace t, back;
    gen_ok(&g, &t);
    cr_assert(t.has_arrivals);
    cr_assert_eq(t.n, 600);
    cr_expect_gt(t.req[0].arrival, 0);
    for (size_t k = 1; k < t.n; k++) cr_expect_gt(t.req[k].arrival, t.req[k - 1].arrival, "request %zu", k);
    double mean_gap = t.req[t.n - 1].arrival / (double)t.n;
    cr_expect(fabs(mean_gap - 0.2) < 0.2 * 0.2, "mean gap %g s, want 0.2 s", mean_gap);
    cr_assert_eq(trace_save(&t, in_dir("poisson.json")), ST_OK);
    load_ok(in_dir("poisson.json"), &back);
    expect_same(&t, &back);
    trace_free(&back);
    trace_free(&t);
    gen_free(&g);
}

Test(trace, generate_refuses_small_or_unanswered_datasets) {
    GenFixture g;
    gen_init(&g, -0.25, 42);
    dataset_free(&g.d[DS_OBQA]);
    make_ds(&g.d[DS_OBQA], DS_OBQA, 150); // OBQA's class needs 170 at skew -0.25
    Trace t;
    tu_expect_err(trace_generate(&g.cfg, &t), ST_USAGE, "OBQA", "150", "170");
    cr_expect_eq(t.n, 0);
    g.cfg.alpha = 0;
    for (size_t i = 0; i < GEN_N; i++) g.d[DS_LLAMATOUCH].items[i].answer = -1;
    tu_expect_err(trace_generate(&g.cfg, &t), ST_USAGE, "test:", "no answer", NULL);
    g.cfg.src[DS_SCIQ] = NULL;
    tu_expect_err(trace_generate(&g.cfg, &t), ST_USAGE, "SCIQ", NULL, NULL);
    gen_free(&g);
}

// ---- malformed traces ---------------------------------------------------------------

#define ARC_OK "[\"q\", [\"a\", \"b\", \"c\", \"d\"], \"A\", [0.8, 0.9], 0, \"ARC_E\"]"
#define LT_OK "[\"open it\", [\"Gmail\", \"Chrome\"], \"Chrome\", [0.4, 0.7], 1, \"llamatouch\"]"

Test(trace, malformed_traces_name_file_and_request) {
    static const struct {
        const char *text, *n1, *n2; // the file, and what the message names besides its path
    } cases[] = {
        {"{\"a\": 1}", "not a JSON array", NULL},
        {"[" ARC_OK ", [\"q\", [\"a\"", "malformed JSON", "line 1"},
        {"[]", "no requests", NULL},
        {"[" ARC_OK ", [\"q\", [\"a\", \"b\"], \"A\", [0.8, 0.9], 1]]", "request 1", "5 elements"},
        {"[[\"q\", [\"a\", \"b\"], \"A\", [\"0.8\", 0.9], 0, \"ARC_E\"]]", "request 0", "SLO"},
        {"[" ARC_OK ", [\"q\", [\"a\", \"b\"], \"A\", [0.55, 0.9], 1, \"ARC_E\"]]", "request 1", "0.55"},
        {"[[\"q\", [\"a\", \"b\"], \"A\", [0.8, 0.3], 0, \"ARC_E\"]]", "request 0", "0.3"},
        {"[[\"q\", [\"a\", \"b\"], \"A\", [0.8, 0.9], 0, \"MMLU\"]]", "request 0", "'MMLU'"},
        {"[[\"q\", [\"a\", \"b\", \"c\", \"d\"], \"Z\", [0.8, 0.9], 0, \"OBQA\"]]", "request 0", "'Z'"},
        {"[[\"q\", [\"a\", \"b\"], \"5\", [0.8, 0.9], 0, \"ARC_E\"]]", "request 0", "'5'"},
        {"[[\"q\", [\"a\", \"b\"], 2, [0.2, 0.6], 0, \"PIQA\"]]", "request 0", "groundtruth 2"},
        {"[" ARC_OK ", [\"q\", [\"Gmail\"], \"Slack\", [0.4, 0.7], 1, \"llamatouch\"]]", "request 1", "'Slack'"},
        {"[[\"q\", [], \"A\", [0.8, 0.9], 0, \"ARC_E\"]]", "request 0", "choices"},
        {"[[\"q\", [\"a\", 3], \"A\", [0.8, 0.9], 0, \"ARC_E\"]]", "request 0", "choice 1"},
        {"[[\"q\", [\"a\"], 1.5, [0.8, 0.9], 0, \"ARC_E\"]]", "request 0", "groundtruth"},
        {"[[7, [\"a\"], \"A\", [0.8, 0.9], 0, \"ARC_E\"]]", "request 0", "question"},
        {"[[\"q\", [\"a\"], \"A\", [0.8, 0.9], \"0\", \"ARC_E\"]]", "request 0", "idx"},
        {"[" ARC_OK ", 5]", "request 1", "not an array"},
        {"[[\"q\", [\"a\"], \"A\", [0.8, 0.9], 0, \"ARC_E\", 0.5], " LT_OK "]", "request 1", "no arrival time"},
        {"[" ARC_OK ", [\"q\", [\"a\"], \"A\", [0.8, 0.9], 1, \"ARC_E\", 0.5]]", "request 1", "arrival"},
        {"[[\"q\", [\"a\"], \"A\", [0.8, 0.9], 0, \"ARC_E\", 2.0], [\"q\", [\"a\"], \"A\", [0.8, 0.9], 1, \"ARC_E\", "
         "1.0]]", "request 1", "before request 0"},
        {"[[\"q\", [\"a\"], \"A\", [0.8, 0.9], 0, \"ARC_E\", -1]]", "request 0", "negative"},
        {"[[\"q\", [\"a\"], \"A\", [0.8, 0.9], 0, \"ARC_E\", \"soon\"]]", "request 0", "arrival"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu.json", i);
        tu_write_file_in(g_dir, name, cases[i].text);
        Trace t;
        Status st = trace_load(in_dir(name), &t);
        cr_expect_eq(st, ST_FORMAT, "case %zu: %s", i, status_message());
        tu_expect_err(st, ST_FORMAT, in_dir(name), cases[i].n1, cases[i].n2);
        cr_expect_eq(t.n, 0, "case %zu leaves nothing", i);
    }
    // a numeric ARC key and arrival times from 0 load
    Trace t;
    tu_write_file_in(g_dir, "good.json",
                     "[[\"q\", [\"a\", \"b\", \"c\"], \"3\", [0.8, 0.9], 0, \"ARC_E\", 0], "
                     "[\"open it\", [\"Gmail\", \"Chrome\"], \"Chrome\", [0.4, 0.7], 1, \"llamatouch\", 0]]");
    load_ok(in_dir("good.json"), &t);
    cr_expect(t.has_arrivals && t.req[0].answer == 2 && t.req[1].answer == 1);
    trace_free(&t);
    tu_expect_err(trace_load(in_dir("missing.json"), &t), ST_IO, "missing.json", NULL, NULL);
}

// ---- the command line ---------------------------------------------------------------

#define GEN_FIX                                                                                                     \
    "trace gen --arc-e " FIX "hf_arc_easy.jsonl --obqa " FIX "hf_openbookqa.jsonl --piqa " FIX "hf_piqa.jsonl "     \
    "--sciq " FIX "hf_sciq.jsonl.gz "

Test(trace_cli, gen_and_show) {
    char out[8192];
    // the fixtures hold 2 or 3 questions: size 12 at skew 0 is 2 per class (Octopus, LlamaTouch: the bundled files)
    cr_assert_eq(tu_run_bin(out, sizeof out, GEN_FIX "--skew 0 --size 12 --rate 2 --out %s --quiet", in_dir("a.json")),
                 0, "%s", out);
    cr_expect(strstr(out, "OBQA 2,") && strstr(out, "SCIQ 2 = 12 requests") && strstr(out, "a.json"), "%s", out);
    cr_assert_eq(tu_run_bin(out, sizeof out, GEN_FIX "--skew 0 --size 12 --rate 2 --out %s --quiet", in_dir("b.json")),
                 0, "%s", out);
    size_t na, nb;
    char *a = tu_read_text(in_dir("a.json"), &na), *b = tu_read_text(in_dir("b.json"), &nb);
    cr_expect(na == nb && !memcmp(a, b, na), "the same seed writes the same file");
    free(a);
    free(b);
    cr_assert_eq(tu_run_bin(out, sizeof out, "trace show %s", in_dir("a.json")), 0, "%s", out);
    cr_expect(strstr(out, "12 requests") && strstr(out, "arrival times: ") && strstr(out, "requests/s"), "%s", out);
    cr_expect(strstr(out, "0 octopus requests ask"), "%s", out);
    cr_assert_eq(tu_run_bin(out, sizeof out, GEN_FIX "--skew 0 --size 12 --compat artifact --seed 3 --out %s --quiet",
                            in_dir("c.json")),
                 0, "%s", out);
    cr_assert_eq(tu_run_bin(out, sizeof out, "trace show %s", in_dir("c.json")), 0, "%s", out);
    cr_expect(strstr(out, "2 octopus requests ask") && strstr(out, "2 llamatouch requests ask"), "%s", out);
    cr_expect(strstr(out, "arrival times: none"), "%s", out);
    Trace t;
    load_ok(in_dir("c.json"), &t);
    cr_expect_eq(t.n, 12);
    trace_free(&t);
}

Test(trace_cli, show_artifact_trace) {
    char out[8192];
    cr_assert_eq(tu_run_bin(out, sizeof out, "trace show " TRACES "trace_0.25.json"), 0, "%s", out);
    cr_expect(strstr(out, "596 requests") && strstr(out, "SCIQ") && strstr(out, "170  SLO (0.2, 0.5)"), "%s", out);
    cr_expect(strstr(out, "80 octopus requests ask") && strstr(out, "103 llamatouch requests ask"), "%s", out);
    cr_expect(strstr(out, "--compat artifact"), "the loader's warning: %s", out);
}

Test(trace_cli, bad_input_and_usage) {
    char out[8192];
    tu_write_file_in(g_dir, "bad.json", "[" ARC_OK ", [\"q\", [\"a\", \"b\"], \"A\", [0.55, 0.9], 1, \"ARC_E\"]]");
    cr_expect_eq(tu_run_bin(out, sizeof out, "trace show %s", in_dir("bad.json")), 1, "%s", out);
    cr_expect(strstr(out, "bad.json: request 1: SLO [0.55, 0.9]"), "%s", out);
    cr_expect_eq(tu_run_bin(out, sizeof out, "trace show %s", in_dir("none.json")), 1, "%s", out);
    const char *usage[] = {
        "trace",
        "trace frobnicate",
        "trace show",
        "trace show a.json b.json",
        "trace show --verbose x.json",
        "trace gen --out x.json",
        "trace gen --skew abc --out x.json",
        "trace gen --skew 0 --size 0 --out x.json",
        "trace gen --skew 0 --compat foo --out x.json",
        "trace gen --skew 0 --rate 0 --out x.json",
        "trace gen --skew 0 --seed -1 --out x.json",
        "trace gen --skew 0",
        "trace gen --skew 0 --bogus 1 --out x.json",
    };
    for (size_t i = 0; i < sizeof usage / sizeof *usage; i++) {
        cr_expect_eq(tu_run_bin(out, sizeof out, "%s", usage[i]), 2, "%s: %s", usage[i], out);
        cr_expect(strstr(out, "elastilm") || strstr(out, "usage"), "%s: %s", usage[i], out);
    }
    // a fixture too small for the class count: a usage error naming the dataset and both numbers
    cr_expect_eq(tu_run_bin(out, sizeof out, GEN_FIX "--skew 0 --size 600 --out %s", in_dir("x.json")), 2, "%s", out);
    cr_expect(strstr(out, "OBQA has 2 questions, the trace needs 100"), "%s", out);
    cr_expect_eq(tu_run_bin(out, sizeof out, GEN_FIX "--skew 0 --size 12 --obqa %s --out %s", in_dir("none.jsonl"),
                            in_dir("x.json")),
                 1, "%s", out);
    cr_expect(strstr(out, "none.jsonl"), "%s", out);
    for (int i = 0; i < 3; i++) {
        const char *help[] = {"trace --help", "trace gen --help", "trace show --help"};
        cr_expect_eq(tu_run_bin(out, sizeof out, "%s", help[i]), 0, "%s: %s", help[i], out);
        cr_expect(strstr(out, "usage: elastilm trace"), "%s", out);
    }
    cr_expect_eq(tu_run_bin(out, sizeof out, "trace gen --help"), 0);
    cr_expect(strstr(out, "--skew") && strstr(out, "--llamatouch") && strstr(out, "--rate"), "%s", out);
}
