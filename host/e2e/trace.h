// trace.h: skewed SLO traces for the end-to-end replay, in the artifact's JSON
// schema (ELASTICLLM/e2e/traces/generate_traces.py; spec §5): a JSON array of
// requests, each a 6-element array
//
//     [question, [choice, ...], groundtruth, [prefill_slo, decode_slo], idx, dataset]
//
// groundtruth: an answer letter (ARC_E, OBQA, octopus; ARC's numeric keys "1".."5"
// too), an app name (llamatouch) or an integer choice index (PIQA, SCIQ);
// dataset one of OBQA, ARC_E, octopus, llamatouch, PIQA, SCIQ. The artifact's
// three committed traces load as they are. Beyond the artifact, a request may
// carry a 7th element: its arrival time in seconds from the trace's start
// (written by `trace gen --rate`), so a replay can queue requests.
#ifndef ELASTILM_TRACE_H
#define ELASTILM_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eval/dataset.h"
#include "policy/policy.h"

// The six SLO classes in the artifact's order (generate_traces.py:211-233):
// OBQA (1.0, 1.0), ARC_E (0.8, 0.9), octopus (0.6, 0.8), llamatouch (0.4, 0.7),
// PIQA (0.2, 0.6), SCIQ (0.2, 0.5).
#define TRACE_CLASSES 6
extern const DatasetId TRACE_CLASS_DS[TRACE_CLASSES];
extern const Slo TRACE_CLASS_SLO[TRACE_CLASSES];

typedef struct {
    char *question;        // the text the dataset's template takes as {question}
    char **choices;        // [n_choices]
    int n_choices;
    char *truth;           // the groundtruth as written in the trace (an integer in decimal when truth_is_int)
    bool truth_is_int;
    int answer;            // the choice the groundtruth names (the artifact's correctness rule, §7.4); -1: none
    Slo slo;               // on the artifact's grid (prefill 0.2 ... 1.0, decode 0.5 ... 1.0)
    long idx;              // the request's position before shuffling (the artifact's 5th element)
    DatasetId ds;
    double arrival;        // seconds from the trace's start; < 0: the trace has no arrival times
} TraceRequest;

typedef struct {
    TraceRequest *req;     // [n] in trace (replay) order
    size_t n;
    bool has_arrivals;     // every request has an arrival time
    // requests showing the artifact's generator bugs (the loader warns once per trace):
    size_t n_octopus_photo;      // octopus requests whose question is the first function name ("take a photo")
    size_t n_llamatouch_answer;  // llamatouch requests whose question equals their groundtruth
} Trace;

// The trace's own names: "OBQA", "ARC_E", "octopus", "llamatouch", "PIQA", "SCIQ".
const char *trace_dataset_name(DatasetId ds);
Status trace_parse_dataset(const char *name, DatasetId *ds);

// Reads and checks a trace. A request that is not the schema (wrong arity or
// types, unknown dataset, SLO outside the grid, groundtruth naming no choice,
// arrival times missing on some requests or going backwards) is an ST_FORMAT
// error "FILE: request K: what is wrong" (K 0-based, the request's position in
// the array). Logs a warning when the artifact's generator bugs show.
Status trace_load(const char *path, Trace *t);
// Writes the trace atomically (the artifact's schema; arrival times as a 7th element when present).
Status trace_save(const Trace *t, const char *path);
void trace_free(Trace *t);

// Counts per SLO class for skew alpha: int(size e^{alpha i} / sum_j e^{alpha j}),
// i = 1..6 in the class order above.
void trace_class_counts(double alpha, long size, long counts[TRACE_CLASSES]);

typedef struct {
    double alpha;          // skew: > 0 shifts requests towards the tight-SLO classes
    long size;             // 600 (the artifact's TRACE_SIZE)
    uint64_t seed;         // 42
    bool compat_artifact;  // reproduce the artifact's bugs (octopus question = first function name,
                           // llamatouch question = its app)
    double rate;           // > 0: Poisson arrivals at this many requests per second; 0: none
    const McDataset *src[DS_COUNT]; // the source questions per dataset (the six must be given)
} TraceGenConfig;

// Per class, samples its count without replacement from the class's dataset
// (all of them when the dataset is smaller: an ST_USAGE error says so), in
// class order, then shuffles; idx = position before the shuffle. Same config,
// same trace, on every machine.
Status trace_generate(const TraceGenConfig *cfg, Trace *out);

#endif
