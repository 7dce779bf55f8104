// bench_util.h: what the benchmark programs share (header-only: each is one .c file).
#ifndef ELASTILM_BENCH_UTIL_H
#define ELASTILM_BENCH_UTIL_H

#include <stdio.h>
#include <string.h>

// qsort comparator for doubles (medians).
static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// The CPU's model name from /proc/cpuinfo ("unknown CPU" when there is none).
static inline void bench_cpu_name(char *buf, size_t n) {
    snprintf(buf, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            snprintf(buf, n, "%s", strchr(line, ':') + 2);
            buf[strcspn(buf, "\n")] = 0;
            break;
        }
    if (f) fclose(f);
}

#endif
