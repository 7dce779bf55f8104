#!/usr/bin/env bash
# CPU benchmark of SmolLM2-135M in fp32: elastilm against PyTorch/transformers
# on the same machine, same shapes, same run. Prints both and their ratio.
#   experiments/bench/bench_cpu.sh BENCH_BIN
# Writes results/bench_cpu.txt (atomically). The PyTorch reference is skipped,
# with a note, when torch or transformers is not installed.
set -euo pipefail
bench_bin=${1:?usage: bench_cpu.sh BENCH_BIN}
cache=${ELASTILM_CACHE:-$HOME/.cache/elastilm}
model="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$model" ] || { echo "bench_cpu.sh: $model not found; run datasets/fetch.sh smollm2" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
{
  echo "# CPU benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "# SmolLM2-135M-Instruct (GGUF Q4_1 dequantized to fp32); prefill 1x128 tokens, decode 64 steps; best of 3"
  # Each side runs alone, with the default OpenMP settings: run on an otherwise idle machine
  # (busy-waiting OpenMP threads of both sides lose badly to any other load on 2 cores).
  "$bench_bin" "$model" 1 2
  if python3 "$here/bench_torch.py" --gguf "$model"; then :; else
    rc=$?
    if [ "$rc" = 3 ]; then echo "# torch/transformers not installed: no reference"; else exit "$rc"; fi
  fi
} | tee "$out"
awk '
  /^elastilm/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); e[$2, kv[1]] = kv[2] } }
  /^torch/    { for (i = 2; i <= NF; i++) { split($i, kv, "="); t[$2, kv[1]] = kv[2] } }
  END {
    for (th = 1; th <= 2; th++) {
      k = "threads=" th
      if ((k, "prefill_tok_s") in t)
        printf "ratio %s prefill elastilm/torch=%.2f decode elastilm/torch=%.2f\n", k,
               e[k, "prefill_tok_s"] / t[k, "prefill_tok_s"], e[k, "decode_tok_s"] / t[k, "decode_tok_s"]
    }
  }' "$out" | tee -a "$out"
mkdir -p results
cp "$out" results/bench_cpu.txt.tmp && mv results/bench_cpu.txt.tmp results/bench_cpu.txt
