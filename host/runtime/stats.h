// stats.h: small order statistics over doubles (benchmark medians, latency percentiles).
#ifndef ELASTILM_STATS_H
#define ELASTILM_STATS_H

#include <stddef.h>

// qsort comparator: ascending doubles.
int stats_cmp_double(const void *a, const void *b);
// The median of v[0:n] (n > 0); v is sorted in place.
double stats_median(double *v, size_t n);
// The q-quantile (0 <= q <= 1) of sorted v[0:n] by the nearest rank round(q (n - 1)); 0 when n = 0.
double stats_quantile_sorted(const double *v, size_t n, double q);

#endif
