// replay.h: a trace replayed through one mode (the artifact's e2e stage,
// ELASTICLLM/e2e/exps/run_e2e_acc.py, spec §7.4), request by request:
// the policy decides for the request's own SLO, the prompt is transformed,
// the choices are scored with the request's dataset rule. Beyond the
// artifact, which only counts ratios, each request's latency is measured on
// the device it runs on:
//   TTFT = the TLM's decision and compression (the policy's decide and prompt
//          transform, timed) + the prefill of the chosen view on the
//          (compressed) prompt, from an empty cache;
//   TPOT = one decode step of that view after the prompt;
// and held against budgets: the artifact's SLO fractions of the full model's
// measured latency (profile.h) at the request's full prompt length, or fixed
// milliseconds. With arrival times, requests queue on one device (FIFO, a
// request's service time its TTFT): a request meets its SLO when its queueing
// delay plus TTFT and its TPOT are within budget.
//
// Without latency (the artifact's accuracy-only replay) a rank serves its
// requests grouped by dataset, so the scorer keeps a dataset's system prompt
// cached as eval does; the records still come out in trace order.
//
// Ranks: positions not yet recorded are dealt round-robin; each rank appends
// its records to <jsonl>.partial-<rank> (flushed per request) and rank 0
// merges every partial file (a shared folder) into <jsonl>, sorted by
// position. A killed replay, with any rank count, resumes from what the
// partial files and <jsonl> hold.
#ifndef ELASTILM_REPLAY_H
#define ELASTILM_REPLAY_H

#include <stdbool.h>
#include <stddef.h>

#include "dist/dist.h"
#include "e2e/profile.h"
#include "e2e/trace.h"
#include "eval/serve.h"

typedef struct {
    const Trace *trace;
    const char *trace_path;       // for messages
    size_t limit;                 // replay the first `limit` requests (0: all)
    const char *mode;             // the policy's --mode name (recorded and checked on resume)
    Metric metric;
    bool measure;                 // measure latency (false: accuracy only, the artifact's replay)
    bool arrivals;                // queue by the trace's arrival times (one device)
    const LatencyProfile *profile; // budgets = SLO fractions of it (NULL: the fixed budgets below)
    double ttft_budget_ms, tpot_budget_ms; // fixed budgets (used when profile is NULL)
    const char *jsonl;            // the per-request records
    const Dist *dist;
    long kill_after;              // > 0: SIGKILL after this many requests recorded here (the resume tests)
} ReplayConfig;

typedef struct {
    size_t requests, right;
    size_t met, met_ttft, met_tpot;  // requests within budget (both, TTFT, TPOT)
    double ttft_mean_ms, ttft_p50_ms, ttft_p99_ms, tpot_mean_ms; // TTFT includes queueing with arrivals
    double tlm_ms, prefill_ms, score_ms;   // summed over the requests (prefill includes the decode step)
    double mean_prompt_ratio, mean_model_ratio; // r over the requests served at an elastic level
    size_t run_here;                 // requests this invocation replayed (all ranks)
    double wall_s;                   // this invocation's replay time (rank 0, to the merge)
} ReplaySummary;

// Collective: every rank calls it with the same config. The summary is rank 0's.
Status replay_run(Server *sv, const EvalPrompt prompts[DS_COUNT], const ReplayConfig *c, ReplaySummary *out);

#endif
