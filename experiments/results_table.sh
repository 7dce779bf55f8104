#!/usr/bin/env bash
# A markdown table of result lines "<DS> <model> <mode> <prefill> <decode> <acc>"
# (the artifact's format, as eval writes them): one row per (mode, SLO pair), one
# column per dataset; the last line of each (DS, mode, SLO) wins.
#   experiments/results_table.sh results/*.txt
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: results_table.sh RESULT_FILE..." >&2; exit 2; }
awk '
  NF != 6 { printf "%s:%d: not a result line: %s\n", FILENAME, FNR, $0 > "/dev/stderr"; bad = 1; next }
  {
    row = $3 " " $4 " " $5
    if (!(row in seen)) { seen[row] = 1; rows[++nr] = row }
    if (!($1 in dss)) { dss[$1] = 1; cols[++nc] = $1 }
    acc[row, $1] = $6
  }
  END {
    order = "ARC_E OBQA PIQA SCIQ Octopus LlamaTouch"
    n = split(order, want, " "); k = 0
    for (i = 1; i <= n; i++) if (want[i] in dss) out[++k] = want[i]
    for (i = 1; i <= nc; i++) { found = 0; for (j = 1; j <= k; j++) if (out[j] == cols[i]) found = 1; if (!found) out[++k] = cols[i] }
    printf "| mode | prefill | decode |"; for (j = 1; j <= k; j++) printf " %s |", out[j]; printf "\n"
    printf "|---|---|---|"; for (j = 1; j <= k; j++) printf "---|"; printf "\n"
    for (i = 1; i <= nr; i++) {
      split(rows[i], f, " ")
      printf "| %s | %s | %s |", f[1], f[2], f[3]
      for (j = 1; j <= k; j++) { v = acc[rows[i], out[j]]; printf " %s |", v == "" ? "–" : sprintf("%.3f", v) }
      printf "\n"
    }
    exit bad
  }' "$@"
