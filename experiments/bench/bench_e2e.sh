#!/usr/bin/env bash
# Replay speed (issue 19): requests/s of `elastilm e2e` for each mode on 1 and
# 2 threads over the first N requests of a skew-0 trace, the shares of the
# replay's time that are the TLM (decide + prompt transform), the prefill
# (with the decode step) and the scoring of the choices, and, measured in the
# same run, the reference: `elastilm eval` one dataset at a time on the same
# number of questions of each dataset, each at its class's SLO (its first
# questions rather than the trace's sample: the same kind and amount of work).
# Three rates per mode and thread count:
#   e2e        the replay with measured latency (every request prefilled from an empty cache)
#   e2e-none   the replay without latency (--latency none: the KV cache of a shared prefix is kept)
#   eval       the reference (eval keeps the system prompt's KV across a dataset's questions)
# Rates exclude loading (each command's own timer, after setup). The replays
# take fixed budgets, so no latency profile is measured for them.
#   experiments/bench/bench_e2e.sh MODEL ARTIFACT [BIN]
# Environment: N (default 60), MODES (default the eight), THREADS (default "1 2"),
# LADDER (Off-The-Shelf; skipped without), OUT (default results/bench_e2e.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
model=${1:?usage: bench_e2e.sh MODEL ARTIFACT [BIN]}
art=${2:?usage: bench_e2e.sh MODEL ARTIFACT [BIN]}
bin=${3:-$root/elastilm}
n=${N:-60}
out=${OUT:-$root/results/bench_e2e.md}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
trace="$work/trace_0.json"
"$bin" trace gen --skew 0 --out "$trace" --quiet >/dev/null
# the datasets of the first n requests (one request per line in a generated trace)
declare -A count
while read -r ds; do count[$ds]=$(( ${count[$ds]:-0} + 1 )); done < <(sed -n "2,$((n + 1))p" "$trace" | sed -E 's/.*"([A-Za-z_]+)"\],?$/\1/')
declare -A slo=([OBQA]="1.0 1.0" [ARC_E]="0.8 0.9" [octopus]="0.6 0.8" [llamatouch]="0.4 0.7" [PIQA]="0.2 0.6" [SCIQ]="0.2 0.5")
declare -A evalname=([OBQA]=OBQA [ARC_E]=ARC_E [octopus]=Octopus [llamatouch]=LlamaTouch [PIQA]=PIQA [SCIQ]=SCIQ)
cpu=$("$bin" --version | sed -n 's/^cpu: //p')
blas=$("$bin" --version | sed -n 's/^blas: //p')
col() { # summary.csv column by name, of the row of mode $2
  awk -F, -v want="$1" -v mode="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == want) c = i; next }
                                     $2 == mode { v = $c } END { print v }' "$3"
}
{
  echo "## e2e replay speed ($(date -u +%Y-%m-%d), $cpu; BLAS $blas)"
  echo
  echo "First $n requests of a skew-0 trace (elastilm trace gen): $(for k in "${!count[@]}"; do printf '%s %s, ' "$k" "${count[$k]}"; done | sed 's/, $//')."
  echo "requests/s (loading excluded); shares of the measured replay's time. \`bench_e2e.sh\` made this table."
  echo
  echo "| mode | threads | e2e req/s | e2e-none req/s | eval req/s | e2e / eval | e2e-none / eval | TLM | prefill | scoring |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
} >"$work/table.md"
for t in ${THREADS:-1 2}; do
  for mode in ${MODES:-Ours LayerReduction LaCo ShortGPT AttnDrop Lingua2+Contextual LLMPruner Off-The-Shelf}; do
    extra=()
    if [ "$mode" = Off-The-Shelf ]; then
      [ -n "${LADDER:-}" ] || { echo "bench_e2e.sh: Off-The-Shelf skipped (no LADDER)" >&2; continue; }
      extra=(--ladder "$LADDER")
    fi
    res="$work/r_${t}"
    "$bin" e2e --model "$model" --artifact "$art" --mode "$mode" --trace "$trace" --limit "$n" --threads "$t" \
      --results "$res" --alpha 0 --ttft-ms 1e9 --tpot-ms 1e9 --quiet "${extra[@]}" >/dev/null
    "$bin" e2e --model "$model" --artifact "$art" --mode "$mode" --trace "$trace" --limit "$n" --threads "$t" \
      --results "$res-none" --alpha 0 --latency none --quiet "${extra[@]}" >/dev/null
    sum="$res/e2e_$(basename "${model%.gguf}")/summary.csv"
    sum_none="$res-none/e2e_$(basename "${model%.gguf}")/summary.csv"
    e2e=$(col req_per_s "$mode" "$sum"); none=$(col req_per_s "$mode" "$sum_none")
    secs=0; q=0
    for ds in "${!count[@]}"; do
      read -r pre dec <<<"${slo[$ds]}"
      line=$("$bin" eval --model "$model" --artifact "$art" --mode "$mode" --dataset "${evalname[$ds]}" \
               --prefill-slo "$pre" --decode-slo "$dec" --limit "${count[$ds]}" --threads "$t" --quiet "${extra[@]}" |
             sed -n 's/.*, \([0-9.]*\)s, [0-9.]* questions\/s.*/\1/p')
      secs=$(awk -v a="$secs" -v b="$line" 'BEGIN { print a + b }')
      q=$(( q + count[$ds] ))
    done
    ev=$(awk -v q="$q" -v s="$secs" 'BEGIN { printf "%.3f", (s > 0 ? q / s : 0) }')
    awk -v m="$mode" -v t="$t" -v e="$e2e" -v z="$none" -v v="$ev" -v a="$(col tlm_share "$mode" "$sum")" \
        -v b="$(col prefill_share "$mode" "$sum")" -v c="$(col score_share "$mode" "$sum")" \
        'BEGIN { r1 = v > 0 ? e / v : 0; r2 = v > 0 ? z / v : 0
                 printf "| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f%% | %.0f%% | %.0f%% |\n", m, t, e, z, v, r1, r2, 100 * a, 100 * b, 100 * c }' >>"$work/table.md"
    tail -n 1 "$work/table.md"
  done
done
mkdir -p "$(dirname "$out")"
cp "$work/table.md" "$out.tmp" && mv "$out.tmp" "$out"
cat "$out"
