#!/usr/bin/env bash
# CPU LoRA training benchmark of SmolLM2-135M in fp32: `elastilm lora` against
# PyTorch/transformers + peft on the same machine, same shapes, same run.
#
#   [THREADS="1 2"] [STEPS=4] [WARMUP=1] [RESULT=FILE] experiments/bench/bench_lora.sh [ELASTILM]
#
# ELASTILM: the binary (default: ./elastilm at the repository root; `make` builds it).
# Shapes (both sides): sequences of 256 tokens, micro-batch 4 = global batch (one
# micro-batch per optimizer step), LoRA rank 8, alpha 16, dropout 0.05 on all 7
# projections (q,k,v,o,gate,up,down) of every layer, fp32, AdamW lr 1e-4, gradient
# clipping at norm 1, loss on every token.
#
# elastilm: a plain-text file of 4 * (WARMUP + STEPS) documents, each exactly 256 tokens
# (256 words drawn from a list of words that are one token each, checked with
# `elastilm tokenize`), so that `--format text --cutoff 256` makes one full window per
# document; then, per thread count T, two runs
#   elastilm lora --model GGUF --data DATA --format text --cutoff 256 --val-size 0
#                 --batch 4 --micro-batch 4 --rank 8 --alpha 16 --dropout 0.05 --lr 1e-4
#                 --eval-every 0 --save-every 0 --threads T --max-steps N --quiet
# with N = WARMUP and N = WARMUP + STEPS. Each run's result.json tokens_per_s covers its
# whole training loop (all steps and the final checkpoint write, not the model load);
# loop seconds = tokens / tokens_per_s, and the difference of the two runs' loop seconds
# over STEPS is the steady-state step time (the first step and the checkpoint write cancel).
# all_steps_tok_s is the longer run's own tokens_per_s, first step included. Every step
# must have processed exactly 4 * 256 tokens (train_log.tsv), or the bench fails.
#
# torch: experiments/bench/bench_lora_torch.py (same model from the same GGUF, peft
# LoraConfig, random [4, 256] token batches, forward + backward + clip + AdamW), 2
# untimed warm-up steps, then STEPS timed steps, torch.set_num_threads(T). Skipped with a
# note when torch, transformers, peft, gguf or accelerate is not installed.
#
# Prints both sides and a table (threads, tokens/s of each, ratio elastilm/torch, step
# seconds of each) and writes it all to RESULT (default results/bench_lora.txt, atomically).
# The defaults are SMALL (a quick look); for a real measurement use e.g. STEPS=20 on an
# otherwise idle machine: both sides busy-wait on their threads and lose badly to any
# other load.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-$root/elastilm}
threads=${THREADS:-"1 2"}
steps=${STEPS:-4}
warmup=${WARMUP:-1}
result=${RESULT:-$root/results/bench_lora.txt}
seq=256
mb=4
cache=${ELASTILM_CACHE:-$HOME/.cache/elastilm}
model="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -x "$bin" ] || { echo "bench_lora.sh: $bin: not an executable (run make)" >&2; exit 1; }
[ -f "$model" ] || { echo "bench_lora.sh: $model not found; run datasets/fetch.sh smollm2" >&2; exit 1; }
case "$steps$warmup" in *[!0-9]*) echo "bench_lora.sh: STEPS and WARMUP must be integers" >&2; exit 2 ;; esac
[ "$steps" -ge 1 ] || { echo "bench_lora.sh: STEPS must be at least 1" >&2; exit 2; }
for t in $threads; do
  case "$t" in ''|*[!0-9]*|0) echo "bench_lora.sh: THREADS: '$t' is not a positive integer" >&2; exit 2 ;; esac
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out="$tmp/bench.txt"

# ---- the data: documents of exactly $seq one-token words ---------------------------------
words="the of and to in is was for on that with as by at from his her are be this had not but
they have which one were all their an has been she there more when who would will can what
other time into some them up out about than only its first new after over two also most may
these many such years where then like made very just world state city people year because
between each both under life while during well back great high small school part long same
used being said found state house water power system group number game family place music"
# the distinct words that are one token (with their leading space) in SmolLM2's tokenizer
vocab=$(printf '%s\n' $words | awk '!seen[$0]++')
kept=""
for w in $vocab; do
  n=$("$bin" tokenize --model "$model" --quiet --text "the $w" | wc -w)
  [ "$n" = 2 ] && kept="$kept $w"
done
n_words=$(echo $kept | wc -w)
[ "$n_words" -ge 20 ] || { echo "bench_lora.sh: only $n_words one-token words; the tokenizer is not SmolLM2's?" >&2; exit 1; }
data="$tmp/data.txt"
n_docs=$((mb * (warmup + steps)))
echo $kept | awk -v docs="$n_docs" -v len="$seq" '
  BEGIN { srand(20251124) }
  { n = split($0, w, " ")
    for (d = 0; d < docs; d++) {
      line = "the"
      for (i = 1; i < len; i++) line = line " " w[1 + int(rand() * n)]
      print line; print ""
    } }' > "$data"
first=$(head -n 1 "$data")
got=$("$bin" tokenize --model "$model" --quiet --text "$first" | wc -w)
[ "$got" = "$seq" ] || { echo "bench_lora.sh: a document is $got tokens, expected $seq" >&2; exit 1; }

# ---- elastilm: loop seconds of a run of N steps -------------------------------------------
# prints "<loop seconds> <tokens_per_s>"; fails unless every step had mb*seq tokens
run_elastilm() { # threads steps
  local o="$tmp/out-$1-$2"
  "$bin" lora --model "$model" --data "$data" --format text --cutoff "$seq" --out "$o" \
    --max-steps "$2" --val-size 0 --batch "$mb" --micro-batch "$mb" --rank 8 --alpha 16 \
    --dropout 0.05 --lr 1e-4 --eval-every 0 --save-every 0 --threads "$1" --quiet > /dev/null
  local tps
  tps=$(sed -n 's/.*"tokens_per_s": *\([0-9.eE+-]*\).*/\1/p' "$o/result.json")
  awk -F'\t' -v want=$((mb * seq)) -v n="$2" -v tps="$tps" '
    NR > 1 { rows++; tokens += $7; if ($7 != want) bad = 1 }
    END {
      if (bad || rows != n || tps <= 0) { print "bad"; exit }
      printf "%.6f %s\n", tokens / tps, tps
    }' "$o/train_log.tsv"
  rm -rf "$o"
}

{
  echo "# CPU LoRA training benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "# SmolLM2-135M-Instruct (GGUF Q4_1 dequantized to fp32); LoRA r=8 alpha=16 dropout=0.05 on q,k,v,o,gate,up,down;"
  echo "# micro-batch = batch = $mb x $seq tokens per optimizer step, AdamW lr 1e-4, clip 1; $steps timed steps"
  echo "# elastilm: (loop time of $((warmup + steps)) steps - loop time of $warmup) / $steps; torch: 2 warm-up steps, then $steps timed"
  for t in $threads; do
    a="0 0"
    [ "$warmup" -gt 0 ] && a=$(run_elastilm "$t" "$warmup")
    b=$(run_elastilm "$t" $((warmup + steps)))
    case "$a $b" in *bad*) echo "bench_lora.sh: elastilm did not run $mb x $seq tokens per step" >&2; exit 1 ;; esac
    echo "$a $b" | awk -v t="$t" -v s="$steps" -v tok=$((mb * seq)) '{
      dt = ($3 - $1) / s
      if (dt <= 0) { print "bench_lora.sh: non-positive step time" > "/dev/stderr"; exit 1 }
      printf "elastilm threads=%s steps=%d step_s=%.4f tok_s=%.1f all_steps_tok_s=%s\n", t, s, dt, tok / dt, $4
    }'
  done
  py_threads=$(echo $threads | tr ' ' ',')
  if python3 "$here/bench_lora_torch.py" --gguf "$model" --threads "$py_threads" --steps "$steps" --warmup 2; then :; else
    rc=$?
    if [ "$rc" = 3 ]; then echo "# torch/transformers/peft not installed: no reference"; else exit "$rc"; fi
  fi
} | tee "$out"
awk '
  function kv(line, arr, key,   i, m, f, p) {
    m = split(line, f, " ")
    for (i = 2; i <= m; i++) { split(f[i], p, "="); arr[key, p[1]] = p[2] }
  }
  /^elastilm/ { split($2, p, "="); th[++n] = p[2]; kv($0, e, p[2]) }
  /^torch/    { split($2, p, "="); kv($0, t, p[2]) }
  END {
    printf "%-8s %15s %15s %8s %16s %13s\n", "threads", "elastilm_tok_s", "torch_tok_s", "ratio", "elastilm_step_s", "torch_step_s"
    for (i = 1; i <= n; i++) {
      k = th[i]
      if ((k, "tok_s") in t)
        printf "%-8s %15.1f %15.1f %8.2f %16.4f %13.4f\n", k, e[k, "tok_s"], t[k, "tok_s"],
               e[k, "tok_s"] / t[k, "tok_s"], e[k, "step_s"], t[k, "step_s"]
      else
        printf "%-8s %15.1f %15s %8s %16.4f %13s\n", k, e[k, "tok_s"], "-", "-", e[k, "step_s"], "-"
    }
  }' "$out" | tee -a "$out"
mkdir -p "$(dirname "$result")"
cp "$out" "$result.tmp" && mv "$result.tmp" "$result"
