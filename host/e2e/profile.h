// profile.h: the full model's measured latency on one device, the reference
// the SLO fractions are taken of (spec §4: prefill SLO = allowed TTFT relative
// to the full model with the full prompt, decode SLO = allowed per-token time
// relative to the full model). Measured once per device by `elastilm profile`
// and stored in the artifact under profile/<key> (docs/hdf5.md).
#ifndef ELASTILM_PROFILE_H
#define ELASTILM_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "models/causal_lm.h"

#define PROFILE_MAX_LENGTHS 16

typedef struct {
    char key[160];                       // the device it holds for: "cpu-<threads>t-<weights>" or "cuda-<name>"
    char device[256];                    // in words: CPU model or GPU, threads, weights
    char date[32];                       // when it was measured (UTC, ISO 8601)
    int n;                               // prompt lengths measured
    int32_t lengths[PROFILE_MAX_LENGTHS]; // [n] ascending, tokens
    double ttft_ms[PROFILE_MAX_LENGTHS]; // [n] median prefill of the full model (the first token's logits formed)
    double tpot_ms;                      // median decode step of the full model
    int tpot_context;                    // ... with this many tokens in the KV cache
} LatencyProfile;

// The key and the description of the device the process runs on now.
void profile_device(Device dev, DType weights, int threads, char *key, size_t nk, char *desc, size_t nd);

// Measures lm (the full model, no view) on dev as a replay measures a
// request (scorer_prefill): a one-sequence session of session_cap tokens (the
// scorer's), prefills of fixed pseudo-random ids from an empty cache with the
// last position's logits formed, one warm-up, then reps rounds over the
// lengths, the median per length kept; then 16 decode steps at a context of
// tpot_context tokens, the median kept. Lengths above max_tokens (the model's
// positions) are refused.
Status profile_measure(const CausalLM *lm, Device dev, int max_tokens, const int *lengths, int n, int reps,
                       int tpot_context, int session_cap, LatencyProfile *out);

// The full model's TTFT at n_tokens: piecewise linear between the measured
// lengths, through the origin below the first and along the last segment's
// slope past the last.
double profile_ttft_ms(const LatencyProfile *p, int n_tokens);

// profile/<key> in the artifact (replaced if present).
Status profile_store(const char *artifact, const LatencyProfile *p);
// Reads profile/<key>; *found false (and ST_OK) when the artifact holds none for that key.
Status profile_load(const char *artifact, const char *key, LatencyProfile *p, bool *found);

void profile_print(const LatencyProfile *p);

#endif
