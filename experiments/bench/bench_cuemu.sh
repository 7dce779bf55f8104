#!/usr/bin/env bash
# The CUDA-on-CPU emulator's speed (tests/cuemu): the cost of one thread step at a
# barrier or warp collective with the hand-written x86-64 context switch against
# ucontext's swapcontext (the reference, measured in the same run), without sanitizers
# and with the ASan + UBSan that CI uses; then, when build-emu/tests/cuda_parity
# exists (make test-cuda-emu builds it), the parity suite's wall time per schedule.
# One worker (CUEMU_WORKERS=1) for the per-step figures; medians of ROUNDS
# interleaved runs. Writes results/bench_cuemu.md.
#
#   experiments/bench/bench_cuemu.sh [ROUNDS]      (default 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
CXX=${EMU_CXX:-clang++}
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
out=results/bench_cuemu.md
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bench-cuemu.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

{ printf '#line 1 "%s"\n' experiments/bench/bench_cuemu.cu; sed -E -f tests/cuemu/rewrite.sed experiments/bench/bench_cuemu.cu; } > "$tmp/k.cc"
build() { # name flags...
  local name=$1; shift
  mkdir -p "$tmp/$name"
  "$CXX" -std=c++17 "$@" -Itests/cuemu/include -I"$CUDA_HOME/include" -x c++ -include tests/cuemu/cuemu.h -c "$tmp/k.cc" -o "$tmp/$name/k.o"
  for f in runtime fiber memcheck cudart; do "$CXX" -std=c++17 "$@" -I"$CUDA_HOME/include" -Itests/cuemu -c tests/cuemu/$f.cc -o "$tmp/$name/$f.o"; done
  "$CXX" "$@" "$tmp/$name"/*.o -o "$tmp/$name/bench" -lpthread
}
echo "bench_cuemu: building" >&2
build asm -O2
build ucontext -O2 -DCUEMU_UCONTEXT
build asm_san -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer
build ucontext_san -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -DCUEMU_UCONTEXT

variants="asm ucontext asm_san ucontext_san"
for r in $(seq 1 "$rounds"); do
  for v in $variants; do
    ASAN_OPTIONS=detect_leaks=0 CUEMU_WORKERS=1 "$tmp/$v/bench" 1000 | sed "s/^/$v /" >> "$tmp/all.txt"
  done
  echo "bench_cuemu: round $r of $rounds" >&2
done
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
med() { awk -v v="$1" -v k="$2" '$1 == v && $2 == k {print $3}' "$tmp/all.txt" | median; }

cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
{
  echo "# CUDA-on-CPU emulator: cost per thread step ($(date -u +%Y-%m-%d))"
  echo
  echo "CPU: $cpu, $(nproc) cores; $("$CXX" --version | head -1). experiments/bench/bench_cuemu.sh, medians of $rounds"
  echo "interleaved rounds, one worker (CUEMU_WORKERS=1), 16 blocks of 256 threads, 1000 steps each."
  echo "A step: one thread arriving at the barrier or collective, the schedule's pick, the switch to the"
  echo "next fiber; the last lane to arrive completes the operation. Reference: ucontext's swapcontext"
  echo "(a system call per switch to save the signal mask), built from the same sources with -DCUEMU_UCONTEXT."
  echo
  echo "| kernel | asm switch, -O2 (ns) | ucontext, -O2 (ns) | ucontext / asm | asm, ASan+UBSan (ns) | ucontext, ASan+UBSan (ns) | ucontext / asm |"
  echo "|---|---|---|---|---|---|---|"
  for k in syncwarp shfl_xor syncthreads; do
    a=$(med asm $k) u=$(med ucontext $k) as=$(med asm_san $k) us=$(med ucontext_san $k)
    echo "| $k | $a | $u | $(awk -v a="$a" -v u="$u" 'BEGIN {printf "%.1f", u / a}') | $as | $us | $(awk -v a="$as" -v u="$us" 'BEGIN {printf "%.1f", u / a}') |"
  done
  if [ -x build-emu/tests/cuda_parity ]; then
    echo
    echo "The parity suite (build-emu/tests/cuda_parity: ASan + UBSan, race and device-memory checks, $(nproc) workers):"
    echo
    echo "| schedule | checks | wall (s) |"
    echo "|---|---|---|"
    for s in forward reverse random:1; do
      t0=$(date +%s.%N)
      line=$(CUEMU_SCHEDULE=$s ELASTILM_THREADS=2 build-emu/tests/cuda_parity 2>&1 | grep -E '^cuda_parity: [0-9]+ checks' || true)
      t1=$(date +%s.%N)
      echo "| $s | ${line#cuda_parity: } | $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') |"
      echo "bench_cuemu: parity $s done" >&2
    done
  fi
} > "$out.tmp"
mv "$out.tmp" "$out"
cat "$out"
