// trace_gen.c: a skewed SLO trace drawn from the six datasets, as the
// artifact's generate_traces.py draws it (spec §5): per SLO class, in class
// order, its count of questions sampled without replacement from the class's
// dataset; then one shuffle. The draws come from this build's seeded RNG
// (runtime/rng.h), not CPython's Mersenne Twister, so a trace is reproducible
// across machines but is not the artifact's file: the artifact's three traces
// are bundled and load as they are.
//
// Groundtruth is written as the artifact writes it: the answer letter for
// ARC_E, OBQA and octopus ('A' + answer; the artifact copies ARC's answerKey,
// "1".."5" for the few numerically labelled questions, which the loader reads
// the same way), the app name for llamatouch, the answer index for PIQA and
// SCIQ. With compat_artifact the generator's bugs come back: the octopus
// question is column 1 (the first function name, "take a photo") and the
// llamatouch question is column 1 (the app, the answer itself).
//
// Arrival times (rate > 0) extend the artifact: a Poisson process, gaps drawn
// from the same stream after the shuffle.
#include "trace.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/rng.h"

// A uniform double in (0, 1] (53 bits).
static double uniform_open0(Rng *r) { return ((double)(rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0); }

static Status request_from(const McQuestion *q, DatasetId ds, Slo slo, long idx, bool compat, TraceRequest *r) {
    char letter[2] = {0};
    r->ds = ds;
    r->slo = slo;
    r->idx = idx;
    r->answer = q->answer;
    r->arrival = -1;
    r->choices = calloc((size_t)q->n_choices, sizeof *r->choices);
    if (!r->choices) return status_fail(ST_OOM, "out of memory generating a trace");
    for (int i = 0; i < q->n_choices; i++) {
        if (!(r->choices[i] = strdup(q->choices[i]))) return status_fail(ST_OOM, "out of memory generating a trace");
        r->n_choices = i + 1;
    }
    const char *truth = letter, *question = q->question;
    if (ds == DS_PIQA || ds == DS_SCIQ) {
        char num[16];
        snprintf(num, sizeof num, "%d", q->answer);
        r->truth_is_int = true;
        r->truth = strdup(num);
        truth = r->truth;
    } else if (ds == DS_LLAMATOUCH) {
        truth = q->choices[q->answer];
        if (compat) question = truth;
    } else {
        if (q->answer >= 26)
            return status_fail(ST_USAGE, "%s: answer %d has no letter (A..Z) for the trace's groundtruth", q->where,
                               q->answer);
        letter[0] = (char)('A' + q->answer);
        if (compat && ds == DS_OCTOPUS) question = q->choices[0];
    }
    if (!r->truth) r->truth = strdup(truth);
    r->question = strdup(question);
    return r->truth && r->question ? ST_OK : status_fail(ST_OOM, "out of memory generating a trace");
}

// Samples class c's count of questions (a partial Fisher-Yates over the indices) into t->req[*pos ...].
static Status sample_class(const TraceGenConfig *cfg, int c, long count, Rng *rng, Trace *t, size_t *pos) {
    DatasetId ds = TRACE_CLASS_DS[c];
    const McDataset *d = cfg->src[ds];
    if (d->n < (size_t)count)
        return status_fail(ST_USAGE, "%s has %zu questions, the trace needs %ld of them (skew %g, size %ld)",
                           dataset_name(ds), d->n, count, cfg->alpha, cfg->size);
    size_t *idx = malloc((d->n ? d->n : 1) * sizeof *idx);
    if (!idx) return status_fail(ST_OOM, "out of memory generating a trace");
    for (size_t i = 0; i < d->n; i++) idx[i] = i;
    Status st = ST_OK;
    for (size_t i = 0; st == ST_OK && i < (size_t)count; i++) {
        size_t j = i + (size_t)rng_below(rng, (uint64_t)(d->n - i));
        size_t tmp = idx[i];
        idx[i] = idx[j], idx[j] = tmp;
        const McQuestion *q = &d->items[idx[i]];
        if (q->answer < 0 || q->answer >= q->n_choices)
            st = status_fail(ST_USAGE, "%s: %s question %s has no answer among its choices: it cannot go into a trace",
                             q->where ? q->where : "?", dataset_name(ds), q->id ? q->id : "?");
        else {
            t->n = *pos + 1; // freed with the trace even when half built
            st = request_from(q, ds, TRACE_CLASS_SLO[c], (long)*pos, cfg->compat_artifact, &t->req[*pos]);
            (*pos)++;
        }
    }
    free(idx);
    return st;
}

static Status check_config(const TraceGenConfig *cfg, const long counts[TRACE_CLASSES], size_t *total) {
    if (cfg->size < 1) return status_fail(ST_USAGE, "trace size %ld: expected at least 1", cfg->size);
    if (!isfinite(cfg->alpha)) return status_fail(ST_USAGE, "skew %g: expected a finite number", cfg->alpha);
    if (!(cfg->rate >= 0) || !isfinite(cfg->rate))
        return status_fail(ST_USAGE, "arrival rate %g: expected a positive number of requests per second (0: none)",
                           cfg->rate);
    *total = 0;
    for (int c = 0; c < TRACE_CLASSES; c++) {
        if (!cfg->src[TRACE_CLASS_DS[c]])
            return status_fail(ST_USAGE, "trace generation needs the %s questions", dataset_name(TRACE_CLASS_DS[c]));
        *total += (size_t)counts[c];
    }
    if (*total == 0)
        return status_fail(ST_USAGE, "skew %g and size %ld leave every SLO class empty", cfg->alpha, cfg->size);
    return ST_OK;
}

Status trace_generate(const TraceGenConfig *cfg, Trace *out) {
    memset(out, 0, sizeof *out);
    long counts[TRACE_CLASSES];
    trace_class_counts(cfg->alpha, cfg->size, counts);
    size_t n = 0;
    TRY(check_config(cfg, counts, &n));
    Trace t = {0};
    Rng rng;
    rng_seed(&rng, cfg->seed);
    size_t *perm = malloc(n * sizeof *perm);
    t.req = calloc(n, sizeof *t.req);
    Status st = perm && t.req ? ST_OK : status_fail(ST_OOM, "out of memory generating a trace");
    size_t pos = 0;
    for (int c = 0; st == ST_OK && c < TRACE_CLASSES; c++) st = sample_class(cfg, c, counts[c], &rng, &t, &pos);
    if (st != ST_OK) {
        free(perm);
        trace_free(&t);
        return st;
    }
    for (size_t k = 0; k < n; k++) perm[k] = k;
    rng_shuffle(&rng, perm, n, sizeof *perm);
    out->req = malloc(n * sizeof *out->req);
    if (!out->req) {
        free(perm);
        trace_free(&t);
        return status_fail(ST_OOM, "out of memory generating a trace");
    }
    out->n = n;
    for (size_t k = 0; k < n; k++) out->req[k] = t.req[perm[k]]; // the strings move to out
    free(t.req);
    free(perm);
    double clock = 0;
    out->has_arrivals = cfg->rate > 0;
    for (size_t k = 0; out->has_arrivals && k < n; k++) {
        clock += -log(uniform_open0(&rng)) / cfg->rate;
        out->req[k].arrival = clock;
    }
    for (size_t k = 0; k < n; k++) {
        const TraceRequest *r = &out->req[k];
        if (r->ds == DS_OCTOPUS && strcmp(r->question, r->choices[0]) == 0) out->n_octopus_photo++;
        if (r->ds == DS_LLAMATOUCH && strcmp(r->question, r->truth) == 0) out->n_llamatouch_answer++;
    }
    return ST_OK;
}
