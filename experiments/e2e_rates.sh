#!/usr/bin/env bash
# SLO attainment against the request rate, with queueing (issue 19): one trace
# (skew ALPHA, seed 42) with Poisson arrival times at each rate R (elastilm
# trace gen --rate R: the same requests in the same order for every rate, only
# the arrival times scale), replayed on one device with --arrivals, first come
# first served. Each mode's requests are measured once, at the first rate; for
# the other rates the replay finds every request recorded (its records copied)
# and only the queue is recomputed from the measured service times.
#   experiments/e2e_rates.sh MODEL ARTIFACT [MODE...]
# MODEs default to "Ours LLMPruner LayerReduction". Environment: RATES
# (requests/s, default "0.25 0.5 1 2 4"), ALPHA (default 0), N (requests,
# default 60), LADDER (Off-The-Shelf), RESULTS (default results/e2e_rates),
# ELASTILM_BIN. Prints attainment per mode and rate and writes it to
# $RESULTS/attainment_vs_rate.tsv.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${ELASTILM_BIN:-$root/elastilm}
model=${1:?usage: e2e_rates.sh MODEL ARTIFACT [MODE...]}
art=${2:?usage: e2e_rates.sh MODEL ARTIFACT [MODE...]}
shift 2
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(Ours LLMPruner LayerReduction)
rates=(${RATES:-0.25 0.5 1 2 4})
alpha=${ALPHA:-0}
n=${N:-60}
results=${RESULTS:-$root/results/e2e_rates}
name=$(basename "$model"); name=${name%.gguf}
mkdir -p "$results/traces"
for r in "${rates[@]}"; do
  "$bin" trace gen --skew "$alpha" --rate "$r" --out "$results/traces/trace_${alpha}_rate_$r.json" --quiet
done
extra=()
[ -n "${LADDER:-}" ] && extra=(--ladder "$LADDER")
tsv="$results/attainment_vs_rate.tsv"
printf "mode\trate\trequests\tattainment\tttft_attainment\ttpot_attainment\tmean_ttft_ms\tp99_ttft_ms\n" >"$tsv.tmp"
for mode in "${modes[@]}"; do
  first=""
  for r in "${rates[@]}"; do
    out="$results/rate_$r"
    rec="$out/e2e_$name/alpha=$alpha/$mode.jsonl"
    if [ -n "$first" ] && [ ! -f "$rec" ]; then mkdir -p "$(dirname "$rec")" && cp "$first" "$rec"; fi
    "$bin" e2e --model "$model" --artifact "$art" --mode "$mode" --trace "$results/traces/trace_${alpha}_rate_$r.json" \
      --alpha "$alpha" --limit "$n" --arrivals --results "$out" --quiet "${extra[@]}" >/dev/null
    [ -n "$first" ] || first=$rec
    awk -F, -v mode="$mode" -v r="$r" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
         $c["mode"] == mode { row = $0 }
         END { split(row, f, ","); printf "%s\t%s\t%s\t%.3f\t%.3f\t%.3f\t%.1f\t%.1f\n", mode, r, f[c["requests"]],
               f[c["attainment"]], f[c["ttft_attainment"]], f[c["tpot_attainment"]], f[c["mean_ttft_ms"]],
               f[c["p99_ttft_ms"]] }' "$out/e2e_$name/summary.csv" >>"$tsv.tmp"
  done
done
mv "$tsv.tmp" "$tsv"
column -t -s "$(printf '\t')" "$tsv"
