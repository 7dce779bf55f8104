#!/usr/bin/env bash
# Tokenizer encode throughput (MB/s, one thread): elastilm against Hugging Face
# `tokenizers` on the same corpus in the same run, with their ratio.
#   experiments/bench/bench_tokenizers.sh BENCH_BIN
# Writes results/bench_tokenizers.txt (atomically). The HF reference is skipped,
# with a note, when `tokenizers` is not installed.
set -euo pipefail
bench_bin=${1:?usage: bench_tokenizers.sh BENCH_BIN}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
fx="$root/tests/fixtures/tokenizers"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
{
  echo "# tokenizer benchmark, $(date -u +%Y-%m-%dT%H:%MZ), one thread, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "# corpus: tests/fixtures/tokenizers/corpus.jsonl.gz, encoded string by string without special tokens"
  OMP_NUM_THREADS=1 "$bench_bin" "$fx/corpus.jsonl.gz" \
    "llama2=$fx/llama2-tokenizer.json.gz" "llama3=$fx/llama3-tokenizer.json.gz" \
    "smollm2=$fx/smollm2-tokenizer.json.gz" "minilm=$fx/minilm-tokenizer.json.gz"
  if python3 "$here/bench_tokenizers.py" --corpus "$fx/corpus.jsonl.gz" --tokenizers-dir "$fx"; then :; else
    rc=$?
    if [ "$rc" = 3 ]; then echo "# tokenizers not installed: no reference"; else exit "$rc"; fi
  fi
} | tee "$out"
awk '
  /^elastilm/ { split($2, n, "="); split($3, v, "="); e[n[2]] = v[2] }
  /^hf/       { split($2, n, "="); split($3, v, "="); h[n[2]] = v[2] }
  END { for (k in e) if (k in h) printf "ratio tokenizer=%s elastilm/hf=%.2f\n", k, e[k] / h[k] }' "$out" | sort | tee -a "$out"
mkdir -p "$root/results"
cp "$out" "$root/results/bench_tokenizers.txt.tmp" && mv "$root/results/bench_tokenizers.txt.tmp" "$root/results/bench_tokenizers.txt"
