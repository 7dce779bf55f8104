#!/usr/bin/env bash
# LoRA recovery of every level of an elastic artifact (the artifact's
# LLMPruner/scripts/*_prune_tune/02.sh ... 09.sh): one adapter per level,
# trained on that level's prefix view and stored as lora/<level> in ART.
#
#   experiments/prune_tune.sh MODEL ART DATA [NP] [-- extra lora options]
#
# NP > 1 runs each level data-parallel over NP MPI ranks (mpirun -np NP).
# Defaults are LLM-Pruner's recipe (elastilm lora --help); pass e.g.
# "-- --max-steps 30 --batch 8" for a short run. LEVELS overrides the list
# (default: the artifact's 0.2 ... 0.9). ELASTILM_BIN picks the binary.
# Output of level r: results/prune_tune/<r>/ (train_log.tsv, result.json,
# checkpoint.h5; the adapter itself goes into the artifact as lora/<r>, not as a
# peft directory: it belongs to the reordered model); a killed run continues with --resume.
set -euo pipefail
if [ $# -lt 3 ]; then
    sed -n '2,14p' "$0" >&2
    exit 2
fi
model=$1 art=$2 data=$3
shift 3
np=1
if [ $# -gt 0 ] && [ "$1" != "--" ]; then np=$1; shift; fi
[ $# -gt 0 ] && [ "$1" = "--" ] && shift
bin=${ELASTILM_BIN:-./elastilm}
levels=${LEVELS:-"0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9"}
out=${OUT:-results/prune_tune}
launch=()
if [ "$np" -gt 1 ]; then
    launch=(mpirun --oversubscribe -np "$np")
    [ "$(id -u)" = 0 ] && launch+=(--allow-run-as-root)
fi
for level in $levels; do
    echo "== level $level"
    mkdir -p "$out/$level"
    "${launch[@]}" "$bin" lora --model "$model" --artifact "$art" --level "$level" --data "$data" \
        --out "$out/$level" --resume "$@"
done
