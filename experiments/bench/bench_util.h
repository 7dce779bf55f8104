// bench_util.h: what the benchmark programs share (header-only: each is one .c file).
#ifndef ELASTILM_BENCH_UTIL_H
#define ELASTILM_BENCH_UTIL_H

#include "runtime/device.h"
#include "runtime/stats.h"

// qsort comparator for doubles (medians).
#define bench_cmp_double stats_cmp_double

// The CPU's model name from /proc/cpuinfo ("?" when there is none).
static inline void bench_cpu_name(char *buf, size_t n) { cpu_describe(buf, n); }

#endif
