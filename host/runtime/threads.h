// threads.h: how many CPU threads the ops use by default, and how idle ones wait.
//
// elastilm often shares a small machine with compilers, tests and other runs.
// Two things keep it from collapsing there (issue 12 part 6):
//
// 1. OpenMP threads that wait at a barrier spin before they sleep. libgomp's
//    default spin (GOMP_SPINCOUNT 300000, milliseconds) is a disaster when the
//    partner being waited for has been descheduled: 20 generated tokens went
//    from 7 s to 86 s beside two busy processes on 2 cores. libgomp reads its
//    settings only when it is loaded, before main() and before any constructor
//    of ours, so every binary that links this file re-executes itself once at
//    start (from .preinit_array, before any library is initialized) with
//    THREADS_SPINCOUNT added as GOMP_SPINCOUNT, unless OMP_WAIT_POLICY or
//    GOMP_SPINCOUNT is already set: a user's setting always wins, and any value
//    of either variable (e.g. OMP_WAIT_POLICY=active) turns the re-exec off.
//
// 2. The default thread count is the CPUs this process may use (affinity, and
//    a cgroup v2 CPU quota) minus those other processes keep busy now, at least
//    1: see threads_default().
#ifndef ELASTILM_THREADS_H
#define ELASTILM_THREADS_H

#include <stdbool.h>

// The spin count elastilm sets, chosen by measurement (2-core AMD EPYC Zen3,
// where one spin, a `pause`, takes ~25 ns; experiments/bench/bench_contention.sh):
// 3000 spins (~75 us) keep the idle decode speed of libgomp's default (passive
// waiting, 0 spins, costs ~40% of decode tok/s: a futex wake at every barrier;
// below ~300 spins the loss starts), while a waiter whose partner lost its CPU
// gives its core up ~100x sooner than with the default 300000 (~7 ms).
#define THREADS_SPINCOUNT "3000"

// The default number of ops threads, decided once per process (~5 ms: it
// samples the run queue) and said once at debug level, with the reason and the
// wait policy in force (ELASTILM_LOG=debug shows it):
//   1. $ELASTILM_THREADS when it is a positive integer;
//   2. otherwise the usable CPUs minus the other processes' runnable threads
//      (the median of a few samples of /proc/stat's procs_running, scaled to
//      the CPUs this process may use), at least 1.
// `--threads N` (ops_set_threads(N > 0)) does not consult it.
int threads_default(void);

// Whether the OpenMP wait settings are elastilm's (the re-exec took effect),
// the user's, or could not be set (the re-exec failed): for the log.
const char *threads_wait_policy(void);

// Whether executing /proc/self/exe restarts this program (false when a loader
// or a tool such as valgrind runs it): the condition of every re-execution at
// start-up (this file's, and ops/blas.c's OPENBLAS_CORETYPE one).
bool threads_can_reexec(void);

#endif
