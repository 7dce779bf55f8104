// trace.c: the artifact's SLO trace files (generate_traces.py's schema, spec §5):
// reading them with a check of every request, writing them, and the skew's
// counts per SLO class.
//
// Groundtruth resolution follows the artifact's e2e scoring (run_e2e_acc.py,
// spec §7.4): a letter names choice 'A' + i (ARC_E, OBQA, octopus; PIQA and
// SCIQ too, whose scoring compares LABELS[res] as well); ARC's numeric keys
// "1".."5" name choice i - 1 (LABELS_NUMBER; not octopus, scored by letter); an
// integer is the choice index itself (`res == groundtruth`, any dataset); a
// llamatouch app name is the first choice equal to it.
#include "trace.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/log.h"
#include "runtime/mapped_file.h"
#include "runtime/strbuf.h"

const DatasetId TRACE_CLASS_DS[TRACE_CLASSES] = {DS_OBQA, DS_ARC_E, DS_OCTOPUS, DS_LLAMATOUCH, DS_PIQA, DS_SCIQ};
const Slo TRACE_CLASS_SLO[TRACE_CLASSES] = {{1.0, 1.0}, {0.8, 0.9}, {0.6, 0.8}, {0.4, 0.7}, {0.2, 0.6}, {0.2, 0.5}};

// Indexed by DatasetId.
static const char *const TRACE_NAMES[DS_COUNT] = {"ARC_E", "OBQA", "PIQA", "SCIQ", "octopus", "llamatouch"};

#define SLO_TOL 1e-6 // how far from the 0.1 grid a JSON number may be (0.1 * 3 is 0.30000000000000004)

// At most 40 bytes of s for a one-line message: control characters become '?'.
static const char *snip(const char *s, char buf[48]) {
    size_t i = 0;
    for (; s[i] && i < 40; i++) buf[i] = (unsigned char)s[i] < 0x20 ? '?' : s[i];
    buf[i] = '\0';
    if (s[i]) memcpy(buf + i, "...", 4);
    return buf;
}

const char *trace_dataset_name(DatasetId ds) { return (int)ds >= 0 && ds < DS_COUNT ? TRACE_NAMES[ds] : "?"; }

Status trace_parse_dataset(const char *name, DatasetId *ds) {
    for (int i = 0; name && i < DS_COUNT; i++) {
        if (strcmp(name, TRACE_NAMES[i]) == 0) {
            *ds = (DatasetId)i;
            return ST_OK;
        }
    }
    char buf[48];
    return status_fail(ST_FORMAT, "unknown dataset '%s' (expected OBQA, ARC_E, octopus, llamatouch, PIQA or SCIQ)",
                       snip(name ? name : "", buf));
}

void trace_class_counts(double alpha, long size, long counts[TRACE_CLASSES]) {
    double sum = 0;
    for (int j = 1; j <= TRACE_CLASSES; j++) sum += exp(alpha * j);
    for (int i = 1; i <= TRACE_CLASSES; i++) counts[i - 1] = (long)((double)size * exp(alpha * i) / sum);
}

// ---------------------------------------------------------------------------
// Reading

typedef struct {
    const char *path;
    size_t k;         // the request being read, 0-based
} Where;

static Status req_fail(const Where *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static Status req_fail(const Where *w, const char *fmt, ...) {
    char what[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return status_fail(ST_FORMAT, "%s: request %zu: %s", w->path, w->k, what);
}

static bool on_grid(double v, double lo) {
    return v >= lo - SLO_TOL && v <= 1.0 + SLO_TOL && fabs(v * 10 - nearbyint(v * 10)) <= 10 * SLO_TOL;
}

static Status read_slo(const Where *w, const json_t *e, Slo *slo) {
    const json_t *p = json_array_get(e, 0), *d = json_array_get(e, 1);
    if (!json_is_array(e) || json_array_size(e) != 2 || !json_is_number(p) || !json_is_number(d))
        return req_fail(w, "the SLO (element 3) is not a pair of numbers [prefill, decode]");
    double pv = json_number_value(p), dv = json_number_value(d);
    if (!on_grid(pv, 0.2) || !on_grid(dv, 0.5))
        return req_fail(w, "SLO [%g, %g] is not on the grid (prefill 0.2, 0.3, ..., 1.0; decode 0.5, 0.6, ..., 1.0)",
                        pv, dv);
    slo->prefill = nearbyint(pv * 10) / 10;
    slo->decode = nearbyint(dv * 10) / 10;
    return ST_OK;
}

// The choice a string groundtruth names (see the top of the file); -1: none.
static int resolve_string(DatasetId ds, const char *g, char *const *choices, int n) {
    if (ds == DS_LLAMATOUCH) {
        for (int i = 0; i < n; i++)
            if (strcmp(choices[i], g) == 0) return i;
        return -1;
    }
    if (g[0] >= 'A' && g[0] <= 'Z' && g[1] == '\0') return g[0] - 'A' < n ? g[0] - 'A' : -1;
    if (ds == DS_OCTOPUS || g[0] < '1' || g[0] > '9' || strspn(g, "0123456789") != strlen(g) || strlen(g) > 6)
        return -1;
    int v = atoi(g);
    return v <= n ? v - 1 : -1;
}

static Status read_truth(const Where *w, const json_t *e, TraceRequest *r) {
    char buf[48], num[32];
    if (json_is_integer(e)) {
        json_int_t v = json_integer_value(e);
        if (v < 0 || v >= r->n_choices)
            return req_fail(w, "groundtruth %lld is not a choice index (%d choices)", (long long)v, r->n_choices);
        snprintf(num, sizeof num, "%lld", (long long)v);
        r->truth_is_int = true;
        r->answer = (int)v;
        r->truth = strdup(num);
    } else if (json_is_string(e)) {
        const char *g = json_string_value(e);
        r->answer = resolve_string(r->ds, g, r->choices, r->n_choices);
        if (r->answer < 0)
            return req_fail(w, r->ds == DS_LLAMATOUCH ? "groundtruth '%s' is not among the %d choices"
                                                      : "groundtruth '%s' names none of the %d choices",
                            snip(g, buf), r->n_choices);
        r->truth = strdup(g);
    } else {
        return req_fail(w, "groundtruth (element 2) is neither a string nor an integer");
    }
    return r->truth ? ST_OK : status_fail(ST_OOM, "out of memory reading %s", w->path);
}

// One request (r zeroed by the caller; what it holds is freed with the trace).
static Status read_request(const Where *w, const json_t *a, TraceRequest *r) {
    r->arrival = -1;
    if (!json_is_array(a))
        return req_fail(w, "not an array [question, choices, groundtruth, [prefill, decode], idx, dataset]");
    size_t n = json_array_size(a);
    if (n != 6 && n != 7)
        return req_fail(w, "%zu elements, expected 6 (question, choices, groundtruth, SLO, idx, dataset) or 7 "
                           "(and an arrival time)", n);
    const json_t *q = json_array_get(a, 0), *ch = json_array_get(a, 1), *idx = json_array_get(a, 4);
    const json_t *ds = json_array_get(a, 5);
    if (!json_is_string(q)) return req_fail(w, "the question (element 0) is not a string");
    if (!json_is_array(ch) || json_array_size(ch) == 0)
        return req_fail(w, "the choices (element 1) are not a non-empty array of strings");
    if (json_array_size(ch) > 4096) return req_fail(w, "%zu choices (at most 4096)", json_array_size(ch));
    if (!json_is_integer(idx)) return req_fail(w, "idx (element 4) is not an integer");
    if (!json_is_string(ds)) return req_fail(w, "the dataset (element 5) is not a string");
    if (trace_parse_dataset(json_string_value(ds), &r->ds) != ST_OK) return req_fail(w, "%s", status_message());
    TRY(read_slo(w, json_array_get(a, 3), &r->slo));
    r->idx = (long)json_integer_value(idx);
    if (n == 7) {
        const json_t *t = json_array_get(a, 6);
        if (!json_is_number(t)) return req_fail(w, "the arrival time (element 6) is not a number");
        r->arrival = json_number_value(t);
        if (!(r->arrival >= 0) || !isfinite(r->arrival))
            return req_fail(w, "arrival time %g s is negative", r->arrival);
    }
    r->question = strdup(json_string_value(q));
    r->choices = calloc(json_array_size(ch), sizeof *r->choices);
    if (!r->question || !r->choices) return status_fail(ST_OOM, "out of memory reading %s", w->path);
    for (size_t i = 0; i < json_array_size(ch); i++) {
        const json_t *c = json_array_get(ch, i);
        if (!json_is_string(c)) return req_fail(w, "choice %zu is not a string", i);
        if (!(r->choices[i] = strdup(json_string_value(c)))) return status_fail(ST_OOM, "out of memory reading %s", w->path);
        r->n_choices = (int)i + 1;
    }
    return read_truth(w, json_array_get(a, 2), r);
}

// Arrival times on every request or none, never going backwards.
static Status check_arrivals(const char *path, Trace *t) {
    t->has_arrivals = t->n > 0 && t->req[0].arrival >= 0;
    for (size_t k = 1; k < t->n; k++) {
        Where w = {path, k};
        const TraceRequest *r = &t->req[k];
        if ((r->arrival >= 0) != t->has_arrivals)
            return req_fail(&w, t->has_arrivals ? "no arrival time, but request 0 has one"
                                                : "an arrival time, but request 0 has none (all or none)");
        if (t->has_arrivals && r->arrival < t->req[k - 1].arrival)
            return req_fail(&w, "arrival time %g s is before request %zu's %g s", r->arrival, k - 1,
                            t->req[k - 1].arrival);
    }
    return ST_OK;
}

static void count_bugs(Trace *t) {
    t->n_octopus_photo = t->n_llamatouch_answer = 0;
    for (size_t k = 0; k < t->n; k++) {
        const TraceRequest *r = &t->req[k];
        if (r->ds == DS_OCTOPUS && strcmp(r->question, r->choices[0]) == 0) t->n_octopus_photo++;
        if (r->ds == DS_LLAMATOUCH && !r->truth_is_int && strcmp(r->question, r->truth) == 0) t->n_llamatouch_answer++;
    }
}

Status trace_load(const char *path, Trace *t) {
    memset(t, 0, sizeof *t);
    char *text = NULL;
    size_t len = 0;
    TRY(read_text_file(path, &text, &len));
    json_error_t err;
    json_t *root = json_loadb(text, len, 0, &err);
    free(text);
    if (!root)
        return status_fail(ST_FORMAT, "%s: malformed JSON at line %d column %d: %s", path, err.line, err.column,
                           err.text);
    Status st = ST_OK;
    if (!json_is_array(root)) st = status_fail(ST_FORMAT, "%s: not a JSON array of requests (a trace)", path);
    else if (json_array_size(root) == 0) st = status_fail(ST_FORMAT, "%s: no requests", path);
    else if (!(t->req = calloc(json_array_size(root), sizeof *t->req)))
        st = status_fail(ST_OOM, "out of memory reading %s", path);
    for (size_t k = 0; st == ST_OK && k < json_array_size(root); k++) {
        Where w = {path, k};
        t->n = k + 1; // freed with the trace even when half read
        st = read_request(&w, json_array_get(root, k), &t->req[k]);
    }
    json_decref(root);
    if (st == ST_OK) st = check_arrivals(path, t);
    if (st != ST_OK) {
        trace_free(t);
        return st;
    }
    count_bugs(t);
    if (t->n_octopus_photo || t->n_llamatouch_answer)
        log_warn("%s: the artifact generator's bugs: %zu octopus requests ask the first function name, %zu "
                 "llamatouch requests ask their own answer (`elastilm trace gen` without --compat artifact writes the "
                 "real question text)", path, t->n_octopus_photo, t->n_llamatouch_answer);
    return ST_OK;
}

void trace_free(Trace *t) {
    for (size_t k = 0; t->req && k < t->n; k++) {
        TraceRequest *r = &t->req[k];
        for (int i = 0; r->choices && i < r->n_choices; i++) free(r->choices[i]);
        free(r->choices);
        free(r->question);
        free(r->truth);
    }
    free(t->req);
    memset(t, 0, sizeof *t);
}

// ---------------------------------------------------------------------------
// Writing: "[\n", one request per line as Python's json.dump writes it (", "
// separators, non-ASCII as \u escapes, floats in their shortest round-trip
// form with ".0" on integral values), "]\n".

static bool put_string(StrBuf *b, const char *s) {
    json_t *j = json_string(s);
    char *enc = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_ENSURE_ASCII) : NULL;
    for (char *p = enc; p && *p; p++) { // \u00BE -> \u00be, as Python writes it
        if (*p != '\\') continue;
        if (p[1] == 'u')
            for (int i = 2; i < 6; i++) p[i] = (char)(p[i] >= 'A' && p[i] <= 'F' ? p[i] - 'A' + 'a' : p[i]);
        p++; // past the escaped character
    }
    bool ok = enc && strbuf_puts(b, enc);
    free(enc);
    json_decref(j);
    return ok;
}

static bool put_double(StrBuf *b, double v) {
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eEni")) strcat(buf, ".0");
    return strbuf_puts(b, buf);
}

static bool put_request(StrBuf *b, const TraceRequest *r, bool arrival) {
    char num[32];
    bool ok = strbuf_puts(b, "[") && put_string(b, r->question) && strbuf_puts(b, ", [");
    for (int i = 0; ok && i < r->n_choices; i++) ok = (i == 0 || strbuf_puts(b, ", ")) && put_string(b, r->choices[i]);
    ok = ok && strbuf_puts(b, "], ") && (r->truth_is_int ? strbuf_puts(b, r->truth) : put_string(b, r->truth));
    ok = ok && strbuf_puts(b, ", [") && put_double(b, r->slo.prefill) && strbuf_puts(b, ", ") &&
         put_double(b, r->slo.decode);
    snprintf(num, sizeof num, "], %ld, ", r->idx);
    ok = ok && strbuf_puts(b, num) && put_string(b, trace_dataset_name(r->ds));
    if (arrival) ok = ok && strbuf_puts(b, ", ") && put_double(b, r->arrival);
    return ok && strbuf_puts(b, "]");
}

Status trace_save(const Trace *t, const char *path) {
    StrBuf b = {0};
    bool ok = strbuf_puts(&b, "[\n");
    for (size_t k = 0; ok && k < t->n; k++)
        ok = put_request(&b, &t->req[k], t->has_arrivals) && strbuf_puts(&b, k + 1 < t->n ? ",\n" : "\n");
    ok = ok && strbuf_puts(&b, "]\n");
    Status st = ok ? write_file_atomic(path, b.s, b.len)
                   : status_fail(ST_FORMAT, "%s: a request's text is not valid UTF-8 (or out of memory)", path);
    free(b.s);
    return st;
}
