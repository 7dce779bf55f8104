#!/usr/bin/env bash
# CPU benchmark of SmolLM2-135M-Instruct: elastilm against PyTorch/transformers and
# llama.cpp on the same machine, the same GGUF, the same shapes, in the same run.
#   experiments/bench/bench_cpu.sh BENCH_BIN [ELASTILM_BIN]
# Environment:
#   WEIGHTS="f32 bf16 q8"  elastilm weight formats (default f32); the others only when
#                          BENCH_BIN takes --weights
#   THREADS="1 2"          thread counts (default 1 2)
#   ROUNDS=5               interleaved rounds; every figure is the median over them
#   REFERENCE_REPS=3       timed passes per round of torch and llama.cpp (best of them),
#                          as bench_llama does its best of 3 per call
#   TORCH=0 / LLAMACPP=0   leave a reference out
#   WAIT_IDLE=S            first wait up to S seconds for the other processes to use
#                          less than a tenth of a core (default 0: no wait)
#   CONTENDED=0.1          a round during which other processes used more cores than this
#                          (on average) is left out of the medians and run again, up to
#                          MAX_ROUNDS (default 2 x ROUNDS) rounds while BUDGET_S (540) lasts
# Shapes: prefill of 1 x 128 tokens; decode of 64 greedy steps after those 128 tokens.
# Round r runs every engine once per thread count before round r+1 starts.
# Engines: elastilm (build/bench_llama: fp32 weights dequantized from the GGUF, or bf16/q8),
# torch fp32 (bench_torch.py: transformers dequantizes the same GGUF), llama.cpp F32 (the
# GGUF requantized to F32 by its own llama-quantize) and llama.cpp Q4_1 (the GGUF as is),
# llama.cpp built once by bench_llamacpp.sh into $ELASTILM_CACHE.
# Writes results/bench_cpu.txt (the raw lines of every round) and results/bench_cpu.md
# (the table of medians and ratios), both atomically. A reference that cannot run here
# (torch not installed, llama.cpp not buildable) is left out with a note.
set -euo pipefail
bench_bin=${1:?usage: bench_cpu.sh BENCH_BIN [ELASTILM_BIN]}
elastilm_bin=${2:-$(dirname "$bench_bin")/elastilm}
cache=${ELASTILM_CACHE:-$HOME/.cache/elastilm}
model="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
[ -f "$model" ] || { echo "bench_cpu.sh: $model not found; run datasets/fetch.sh smollm2" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
weights=${WEIGHTS:-f32}
threads=${THREADS:-1 2}
rounds=${ROUNDS:-5}
reps=${REFERENCE_REPS:-3}
raw=$(mktemp)
md=$(mktemp)
tmpd=$(mktemp -d)
trap 'rm -rf "$raw" "$md" "$tmpd"' EXIT
note() { echo "# $*" | tee -a "$raw"; }
t_start=$SECONDS

# Share of a core that every process together keeps busy, over one second.
busy() {
  local a b
  read -ra a < /proc/stat; sleep 1; read -ra b < /proc/stat
  local idle=$(( (b[4] + b[5]) - (a[4] + a[5]) )) total=0 i
  for i in 1 2 3 4 5 6 7 8; do total=$(( total + b[i] - a[i] )); done
  awk -v i="$idle" -v t="$total" -v n="$(nproc)" 'BEGIN { printf "%.2f", (t > 0) ? n * (t - i) / t : 0 }'
}
if [ "${WAIT_IDLE:-0}" -gt 0 ]; then
  waited=0
  while bz=$(busy) && awk -v b="$bz" 'BEGIN { exit !(b > 0.1) }' && [ "$waited" -lt "$WAIT_IDLE" ]; do
    echo "bench_cpu.sh: other processes use $bz cores; waiting" >&2; sleep 29; waited=$((waited + 30))
  done
fi

# The BLAS elastilm runs with, and its kernel core: `elastilm --version` names it (with
# the core elastilm re-executes itself with, when OpenBLAS picked a generic one), else a
# probe linked against the OpenBLAS the Makefile uses.
blas=""
if [ -x "$elastilm_bin" ]; then
  blas=$("$elastilm_bin" --version 2>/dev/null | sed -n 's/^blas: //p' | grep 'core=' || true)
fi
if [ -z "$blas" ] && command -v "${CC:-gcc}" >/dev/null; then
  pcdir=/usr/lib/$(${CC:-gcc} -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)/openblas-openmp/pkgconfig
  pc() { PKG_CONFIG_PATH=$pcdir${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH} pkg-config "$@" openblas 2>/dev/null; }
  printf '#include <stdio.h>\nchar *openblas_get_config(void);\nchar *openblas_get_corename(void);\nint main(void) { printf("%%s core=%%s (OpenBLAS'"'"'s own choice)\\n", openblas_get_config(), openblas_get_corename()); return 0; }\n' > "$tmpd/probe.c"
  libdir=$(pc --variable=libdir)
  # shellcheck disable=SC2046  # pkg-config's flags are words
  if "${CC:-gcc}" -o "$tmpd/probe" "$tmpd/probe.c" $(pc --cflags) ${libdir:+-L$libdir -Wl,-rpath,$libdir} -lopenblas 2>/dev/null; then
    blas=$("$tmpd/probe" || true)
  fi
fi

echo "# CPU benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores" | tee "$raw"
note "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg); busy cores over 1 s: $(busy)"
note "elastilm: $("$elastilm_bin" --version 2>/dev/null | head -1 || echo "$bench_bin"); BLAS: ${blas:-unknown}"

# elastilm weight formats: f32 always; the others when bench_llama has --weights.
elastilm_w=()
usage=$("$bench_bin" --help 2>&1 || true)
case "$usage" in *--weights*) has_w=1 ;; *) has_w=0 ;; esac
for w in $weights; do
  if [ "$w" = f32 ] || [ "$has_w" = 1 ]; then elastilm_w+=("$w")
  else note "elastilm $w: skipped ($bench_bin has no --weights option)"; fi
done
[ ${#elastilm_w[@]} -gt 0 ] || elastilm_w=(f32)

# References: found (and llama.cpp built, once) before the timed rounds.
torch_ok=0
if [ "${TORCH:-1}" != 0 ]; then
  if v=$(python3 "$here/bench_torch.py" --check 2>"$tmpd/err"); then torch_ok=1; note "torch: $v, fp32, SDPA attention"
  else rc=$?; [ "$rc" = 3 ] || { cat "$tmpd/err" >&2; exit "$rc"; }; note "torch: skipped: $(tail -1 "$tmpd/err")"; fi
fi
llama_ok=0
if [ "${LLAMACPP:-1}" != 0 ]; then
  if "$here/bench_llamacpp.sh" build >/dev/null 2>"$tmpd/err" \
     && f32=$("$here/bench_llamacpp.sh" f32 "$model" 2>>"$tmpd/err"); then
    llama_ok=1
    note "llama.cpp: $(cat "$tmpd/err" | grep 'built in' || true)commit $("$here/bench_llamacpp.sh" commit | head -c 10) from llama-cpp-python ${LLAMACPP_PY_VERSION:-0.3.36}, CPU backend, -march=native, AMX off; F32 file from its llama-quantize; llama-bench defaults otherwise (KV cache f16, flash attention auto, --poll 50)"
  else
    rc=$?; cat "$tmpd/err" >&2
    [ "$rc" = 3 ] || exit "$rc"
    note "llama.cpp: skipped: $(grep 'skipped' "$tmpd/err" | tail -1 | sed 's/.*skipped: //')"
  fi
fi
note "SmolLM2-135M-Instruct (GGUF Q4_1); prefill 1x128 tokens, decode 64 steps after 128; threads $threads; medians of $rounds interleaved rounds"
note "a round: elastilm = bench_llama's best of 3 after a warm-up; torch and llama.cpp = best of $reps after a warm-up"

# A round is kept when the other processes of the machine (and the hypervisor's steal) took
# at most CONTENDED cores on average while it ran: the machine's busy CPU time over the round
# less what this script and its children used. A contended round is logged as a comment and
# another one is run, while the time budget lasts (MAX_ROUNDS, BUDGET_S).
contended=${CONTENDED:-0.1}
max_rounds=${MAX_ROUNDS:-$((2 * rounds))}
budget=${BUDGET_S:-540}
machine_cpu() { awk -v hz="$(getconf CLK_TCK)" '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat; }
own_cpu() { # sets OWN: this shell's and its finished children's CPU seconds, and the torch server's
  times > "$tmpd/times"
  [ -n "${torch_pid:-}" ] && cut -d' ' -f14-15 "/proc/$torch_pid/stat" >> "$tmpd/times" 2>/dev/null
  OWN=$(awk -v hz="$(getconf CLK_TCK)" '/m/ { for (i = 1; i <= 2; i++) { split($i, a, "m"); s += a[1] * 60 + a[2] } }
                                        !/m/ { s += ($1 + $2) / hz } END { printf "%.2f", s }' "$tmpd/times")
}
# torch loads the model once and measures one round per request (bench_torch.py --serve).
torch_pid=""
if [ "$torch_ok" = 1 ]; then
  coproc TORCHSRV { exec python3 "$here/bench_torch.py" --serve --gguf "$model" --threads "${threads// /,}" --reps "$reps" 2>"$tmpd/torch.err"; }
  torch_pid=$TORCHSRV_PID
  # The coprocess' own descriptors are closed in subshells (timed's pipeline): copies.
  exec {torch_in}>&"${TORCHSRV[1]}" {torch_out}<&"${TORCHSRV[0]}"
  read -r -u "$torch_out" ready && [ "$ready" = ready ] || { cat "$tmpd/torch.err" >&2; echo "bench_cpu.sh: bench_torch.py --serve did not start" >&2; exit 1; }
fi
torch_round() {
  local line
  echo >&"$torch_in"
  while read -r -u "$torch_out" line; do [ "$line" = "done" ] && return 0; echo "$line"; done
  cat "$tmpd/torch.err" >&2; echo "bench_cpu.sh: bench_torch.py --serve ended" >&2; return 1
}
declare -A eng_ms
timed() { # timed NAME COMMAND...: runs it, its lines into the round, its wall time into eng_ms
  local name=$1 t0; shift
  t0=$(date +%s%N)
  "$@" | tee -a "$tmpd/round"
  eng_ms[$name]=$(( ${eng_ms[$name]:-0} + ($(date +%s%N) - t0) / 1000000 ))
}
kept=0 r=0
: > "$tmpd/all"
while [ "$kept" -lt "$rounds" ] && [ "$r" -lt "$max_rounds" ] \
      && { [ "$r" -lt "$rounds" ] || [ $((SECONDS - t_start)) -lt "$budget" ]; }; do
  r=$((r + 1))
  : > "$tmpd/round"
  own_cpu; m0=$(machine_cpu) o0=$OWN w0=$(date +%s%N)
  for w in "${elastilm_w[@]}"; do
    if [ "$w" = f32 ]; then timed "elastilm f32" "$bench_bin" "$model" $threads
    else timed "elastilm $w" "$bench_bin" --weights "$w" "$model" $threads; fi
  done
  if [ "$torch_ok" = 1 ]; then
    timed torch torch_round
  fi
  if [ "$llama_ok" = 1 ]; then
    for t in $threads; do
      timed "llama.cpp F32" env REPS="$reps" "$here/bench_llamacpp.sh" run llama.cpp-F32 "$f32" "$t"
      timed "llama.cpp Q4_1" env REPS="$reps" "$here/bench_llamacpp.sh" run llama.cpp-Q4_1 "$model" "$t"
    done
  fi
  own_cpu; m1=$(machine_cpu) o1=$OWN w1=$(date +%s%N)
  others=$(awk -v m="$(awk -v a="$m0" -v b="$m1" 'BEGIN { print b - a }')" \
               -v o="$(awk -v a="$o0" -v b="$o1" 'BEGIN { print b - a }')" -v w=$(( (w1 - w0) / 1000000 )) \
               'BEGIN { x = (m - o) / (w / 1000); printf "%.2f", x < 0 ? 0 : x }')
  cat "$tmpd/round" >> "$tmpd/all"
  if awk -v x="$others" -v c="$contended" 'BEGIN { exit !(x <= c) }'; then
    kept=$((kept + 1))
    note "round $r: $(( (w1 - w0) / 1000000000 )) s, other processes used $others cores on average: kept"
    cat "$tmpd/round" >> "$raw"
  else
    note "round $r: $(( (w1 - w0) / 1000000000 )) s, other processes used $others cores on average (> $contended): left out"
    sed 's/^/# (contended) /' "$tmpd/round" >> "$raw"
  fi
done
if [ -n "$torch_pid" ]; then fd=${TORCHSRV[1]}; exec {fd}>&- {torch_in}>&-; wait "$torch_pid" || true; torch_pid=""; fi
note "rounds: $kept kept of $r run (a round is left out when other processes used more than $contended cores during it)"
if [ "$kept" = 0 ]; then
  note "WARNING: every round was contended; the medians below are over all $r of them"
  cat "$tmpd/all" >> "$raw"; kept=$r
elif [ "$kept" -lt "$rounds" ]; then
  note "WARNING: only $kept of the $rounds rounds were uncontended within the budget; medians over those"
fi
per=""; for k in "${!eng_ms[@]}"; do per="$per, $k $(( eng_ms[$k] / 1000 )) s"; done
note "loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg); $((SECONDS - t_start)) s in all; per engine${per#,}"

# Medians over the rounds, the table and the ratios.
cols="${elastilm_w[*]/#/elastilm:} $([ "$torch_ok" = 1 ] && echo torch:fp32) $([ "$llama_ok" = 1 ] && echo llama.cpp-F32:F32 llama.cpp-Q4_1:Q4_1)"
awk -v cols="$cols" -v threads="$threads" -v rounds="$kept" '
  function median(list,   n, a, i, j, x) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { x = a[i]; for (j = i - 1; j >= 1 && a[j] + 0 > x + 0; j--) a[j + 1] = a[j]; a[j + 1] = x }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function spread(list,   n, a, i, lo, hi) {
    n = split(list, a, " "); lo = hi = a[1]
    for (i = 2; i <= n; i++) { if (a[i] + 0 < lo + 0) lo = a[i]; if (a[i] + 0 > hi + 0) hi = a[i] }
    return lo > 0 ? hi / lo - 1 : 0
  }
  function f(x) { return x == "" ? "–" : (x >= 100 ? sprintf("%.0f", x) : sprintf("%.1f", x)) }
  function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "–" : sprintf("%.2f", a / b) }
  /^#/ { if (NR == 1) title = substr($0, 3); else if ($0 !~ /^# (round|\(contended\))/) head = head "- " substr($0, 3) "\n"; next }
  {
    eng = $1; w = ""
    for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    if (eng == "elastilm") w = ("weights" in v) ? v["weights"] : "f32"
    else if (eng == "torch") w = "fp32"
    else { w = eng; sub(/^llama\.cpp-/, "", w) }
    key = eng ":" w
    s[key, v["threads"], "prefill"] = s[key, v["threads"], "prefill"] " " v["prefill_tok_s"]
    s[key, v["threads"], "decode"] = s[key, v["threads"], "decode"] " " v["decode_tok_s"]
    delete v
  }
  END {
    nc = split(cols, c, " "); nt = split(threads, t, " ")
    print "# " title "\n"; printf "%s\n", head
    line = "| threads | tok/s |"; sep = "|---|---|"
    for (j = 1; j <= nc; j++) {
      name = c[j]; sub(/:.*/, "", name); sub(/-.*/, "", name); wname = c[j]; sub(/.*:/, "", wname)
      line = line " " name " " wname " |"; sep = sep "---|"
    }
    print line; print sep
    worst = 0
    for (i = 1; i <= nt; i++) for (ph = 1; ph <= 2; ph++) {
      phase = ph == 1 ? "prefill" : "decode"; line = "| " t[i] " | " phase " |"
      for (j = 1; j <= nc; j++) {
        list = s[c[j], t[i], phase]
        m[c[j], t[i], phase] = list == "" ? "" : median(list)
        line = line " " f(m[c[j], t[i], phase]) " |"
        if (list != "" && spread(list) > worst) { worst = spread(list); wcell = c[j] " " t[i] "t " phase }
      }
      print line
    }
    # elastilm best: its fastest weight format in each cell.
    line = "\n| ratio |"; sep = "|---|"
    for (i = 1; i <= nt; i++) for (ph = 1; ph <= 2; ph++) { line = line " " t[i] "t " (ph == 1 ? "prefill" : "decode") " |"; sep = sep "---|" }
    print line; print sep
    r1 = "| elastilm f32 / torch fp32 |"; r2 = "| elastilm f32 / llama.cpp F32 |"; r3 = "| elastilm best / llama.cpp Q4_1 |"
    for (i = 1; i <= nt; i++) for (ph = 1; ph <= 2; ph++) {
      phase = ph == 1 ? "prefill" : "decode"; best = ""; bw = ""
      for (j = 1; j <= nc; j++) if (c[j] ~ /^elastilm:/ && m[c[j], t[i], phase] != "" && (best == "" || m[c[j], t[i], phase] + 0 > best + 0)) {
        best = m[c[j], t[i], phase]; bw = c[j]; sub(/.*:/, "", bw)
      }
      e = m["elastilm:f32", t[i], phase]
      r1 = r1 " " ratio(e, m["torch:fp32", t[i], phase]) " |"
      r2 = r2 " " ratio(e, m["llama.cpp-F32:F32", t[i], phase]) " |"
      x = ratio(best, m["llama.cpp-Q4_1:Q4_1", t[i], phase]); r3 = r3 " " x (x == "–" ? "" : " (" bw ")") " |"
    }
    print r1; print r2; print r3
    printf "\nMedians of %d rounds (all rounds: results/bench_cpu.txt)", rounds
    if (rounds > 1 && wcell != "") printf "; widest max/min spread over the rounds: %.0f %% (%s)", 100 * worst, wcell
    print "." 
  }' "$raw" > "$md"
echo; cat "$md"
mkdir -p results
cp "$raw" results/bench_cpu.txt.tmp && mv results/bench_cpu.txt.tmp results/bench_cpu.txt
cp "$md" results/bench_cpu.md.tmp && mv results/bench_cpu.md.tmp results/bench_cpu.md
