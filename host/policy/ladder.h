// ladder.h: the Off-The-Shelf baseline's model ladder, a small text file of
// rungs "<threshold> <model>", one per line ('#' starts a comment):
//
//     # s = min(prefill SLO, decode SLO): the first rung with s >= threshold serves
//     1.0  full                 the served model itself (--model)
//     0.5  opt-1.3b             a directory or .gguf, relative to the ladder file
//     0.0  opt-350m
//
// Thresholds strictly descend, and the last one is at most 0.2 (the lowest
// SLO on the grid), so every SLO pair has a rung. The artifact's e2e script
// has the full-model branch overwritten by the next `if` (no `elif`), so with
// --compat artifact a `full` rung is never served (spec §6).
#ifndef ELASTILM_LADDER_H
#define ELASTILM_LADDER_H

#include <stdbool.h>

#include "runtime/status.h"

#define LADDER_MAX 16

typedef struct {
    double threshold;
    bool full;          // the served model
    char path[4096];    // the model otherwise (resolved against the ladder file's folder)
    int line;           // in the ladder file, for messages
} LadderRung;

typedef struct {
    LadderRung rungs[LADDER_MAX];
    int n;
    char file[4096];
} Ladder;

// Reads and checks a ladder file: rungs in order, models that exist. Errors
// name the file and line.
Status ladder_load(const char *path, Ladder *out);

// The rung serving s (compat: `full` rungs are skipped); -1 when none does
// (only possible with compat and a ladder whose last rung is `full`).
int ladder_pick(const Ladder *l, double s, bool artifact);

#endif
