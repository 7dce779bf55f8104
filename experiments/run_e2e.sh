#!/usr/bin/env bash
# The end-to-end replay as the artifact's e2e/scripts/run_e2e.sh runs it
# (spec §1 step 11, §7.4, §7.6): for each skew alpha in 0, 0.25, -0.25, the
# eight modes in the artifact's order (Ours, LayerReduction, LaCo, ShortGPT,
# AttnDrop, Lingua2+Contextual, LLMPruner, Off-The-Shelf), each trace
# replayed with its requests split over the ranks. Appends the artifact's lines
# "alpha=<a> <model> <mode> <acc>" to $RESULTS/res_<model>.txt, and writes
# the per-request records ($RESULTS/e2e_<model>/alpha=<a>/<mode>.jsonl: the
# chosen p and r, measured TTFT/TPOT, budgets, correctness) and a summary row
# per (alpha, mode) ($RESULTS/e2e_<model>/summary.csv). A killed run resumes:
# rerun the same command (each replay continues from its records).
#
#   experiments/run_e2e.sh DEVICE... MODEL
#
# DEVICE, one per rank: cpu, or cuda:N (that rank then sees only GPU N).
# MODEL: a .gguf file or a Hugging Face LLaMA-family directory. Environment:
#   ARTIFACT   the elastic artifact, prepared for the modes (elasticize, lora, tlm score/decision,
#              `elastilm prepare --mode ...`); required
#   TRACES     the folder of trace_<alpha>.json (default: the artifact's own, datasets/elastilm-artifact/traces)
#   ALPHAS     the skews (default "0 0.25 -0.25", the artifact's order)
#   MODES      the modes (default the eight above, in that order); one that cannot run is skipped with its message
#   LADDER     Off-The-Shelf's model ladder (policy/ladder.h); without it Off-The-Shelf is skipped
#   LIMIT      replay only the first LIMIT requests of each trace
#   RESULTS    the result folder (default results/ in the source tree)
#   E2E_FLAGS  more e2e options (e.g. "--compat artifact", "--latency none", "--ttft-ms 500 --tpot-ms 50")
#   ELASTILM_THREADS  CPU threads per rank (default: the cores divided among the ranks)
#   ELASTILM_BIN the binary (default ./elastilm)
# The full model's latency (the budgets' reference) is profiled once per device
# and stored in the artifact first, unless it is there already (PROFILE=force re-measures).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${ELASTILM_BIN:-$root/elastilm}
if [ $# -lt 2 ]; then
  echo "usage: run_e2e.sh DEVICE... MODEL   (DEVICE: cpu or cuda:N, one per rank; ARTIFACT=... in the environment)" >&2
  exit 2
fi
model=${!#}
devices=("${@:1:$#-1}")
ranks=${#devices[@]}
: "${ARTIFACT:?run_e2e.sh: set ARTIFACT to the elastic artifact (.h5)}"
[ -f "$ARTIFACT" ] || { echo "run_e2e.sh: $ARTIFACT: no such artifact" >&2; exit 2; }
[ -e "$model" ] || { echo "run_e2e.sh: $model: no such model" >&2; exit 2; }
gpu=0
for d in "${devices[@]}"; do
  case $d in
    cpu) ;;
    cuda:[0-9]*) gpu=1 ;;
    *) echo "run_e2e.sh: device '$d': expected cpu or cuda:N" >&2; exit 2 ;;
  esac
done
if [ "$gpu" = 1 ]; then
  for d in "${devices[@]}"; do
    [ "$d" != cpu ] || { echo "run_e2e.sh: mix of cpu and cuda ranks: give one kind" >&2; exit 2; }
  done
fi
traces=${TRACES:-$root/datasets/elastilm-artifact/traces}
results=${RESULTS:-$root/results}
name=$(basename "$model"); name=${name%.gguf}
cores=$(nproc)
export ELASTILM_THREADS=${ELASTILM_THREADS:-$(( cores / ranks > 0 ? cores / ranks : 1 ))}
read -r -a flags <<<"${E2E_FLAGS:-}"
[ -n "${LIMIT:-}" ] && flags+=(--limit "$LIMIT")
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

# e2e on every rank: one process per device; a GPU rank sees only its GPU (as cuda:0)
launch() {
  if [ "$ranks" = 1 ]; then
    if [ "$gpu" = 1 ]; then CUDA_VISIBLE_DEVICES=${devices[0]#cuda:} "$bin" "$@" --device cuda:0
    else "$bin" "$@" --device cpu; fi
  elif [ "$gpu" = 1 ]; then
    local app=()
    for d in "${devices[@]}"; do
      [ ${#app[@]} = 0 ] || app+=(:)
      app+=(-np 1 -x "CUDA_VISIBLE_DEVICES=${d#cuda:}" -x ELASTILM_THREADS "$bin" "$@" --device cuda:0)
    done
    mpirun "${app[@]}"
  else
    mpirun --oversubscribe -np "$ranks" -x ELASTILM_THREADS "$bin" "$@" --device cpu
  fi
}

# the budgets' reference: the full model's latency on this device kind, once
first=${devices[0]}
keep=(--if-missing)
[ "${PROFILE:-}" = force ] && keep=()
if [ "$gpu" = 1 ]; then
  CUDA_VISIBLE_DEVICES=${first#cuda:} "$bin" profile --model "$model" --artifact "$ARTIFACT" --device cuda:0 "${keep[@]}"
else
  "$bin" profile --model "$model" --artifact "$ARTIFACT" --device cpu "${keep[@]}"
fi

skipped=()
for alpha in ${ALPHAS:-0 0.25 -0.25}; do
  trace="$traces/trace_$alpha.json"
  [ -f "$trace" ] || { echo "run_e2e.sh: $trace: no such trace (elastilm trace gen --skew $alpha --out $trace)" >&2; exit 2; }
  for mode in ${MODES:-Ours LayerReduction LaCo ShortGPT AttnDrop Lingua2+Contextual LLMPruner Off-The-Shelf}; do
    extra=()
    if [ "$mode" = Off-The-Shelf ]; then
      if [ -z "${LADDER:-}" ]; then
        skipped+=("alpha=$alpha $mode: no LADDER (a file of '<threshold> <model>' rungs)")
        continue
      fi
      extra=(--ladder "$LADDER")
    fi
    echo "== e2e alpha=$alpha $mode ($ranks rank(s) on ${devices[*]})"
    if ! launch e2e --model "$model" --model-name "$name" --artifact "$ARTIFACT" --mode "$mode" --trace "$trace" \
         --alpha "$alpha" --results "$results" "${extra[@]}" "${flags[@]}"; then
      skipped+=("alpha=$alpha $mode: failed (its message above)")
    fi
  done
done

echo "== e2e: accuracy, SLO attainment and requests/s ($results/e2e_$name/summary.csv)"
awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
         { key = $1 SUBSEP $2; if (!(key in row)) order[++n] = key; row[key] = $0 }
         END {
           printf "%-7s %-20s %9s %11s %10s\n", "alpha", "mode", "accuracy", "attainment", "req/s"
           for (k = 1; k <= n; k++) {
             split(row[order[k]], f, ",")
             printf "%-7s %-20s %9.4f %11s %10.2f\n", f[col["alpha"]], f[col["mode"]], f[col["accuracy"]],
                    f[col["attainment"]] == "" ? "-" : sprintf("%.3f", f[col["attainment"]]), f[col["req_per_s"]]
           }
         }' "$results/e2e_$name/summary.csv"
for s in "${skipped[@]}"; do echo "run_e2e.sh: skipped $s" >&2; done
[ ${#skipped[@]} = 0 ]
