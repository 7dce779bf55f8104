#!/usr/bin/env bash
# The barrier mutation run (tests/cuemu/README.md): deletes one __syncthreads() or
# __syncwarp() of cuda/ at a time, rebuilds the emulated parity binary and runs it
# under each schedule, and says which mutants the emulator or the parity checks
# catch ("killed", with the first report line) and which survive.
#
#   tests/cuemu/mutate.sh [OUT.md]      (default: build-emu/mutants.md; results/cuemu_mutants.md is one)
#   SCHEDULES="forward reverse"          the schedules tried, in order, until one kills
#   CUEMU_RACE=0                         without the shared-memory race checks (what NaN fill,
#                                        schedules and parity tolerances catch alone)
#
# Works on a copy of the tracked files (and of build-emu, to rebuild only what a
# mutant touches) in a temporary folder: the working tree is never changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build-emu/mutants.md}
schedules=${SCHEDULES:-forward reverse}
root=$(pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cuemu-mutate.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

make -s build-emu/tests/cuda_parity >/dev/null
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$tmp"
cp -a build-emu "$tmp/"
cd "$tmp"
make -s build-emu/tests/cuda_parity >/dev/null # up to date: sources and objects keep their times
# the unmutated objects and binary, put back after each mutant (no rebuild of the original)
cp -a build-emu/cuda snap-cuda
cp -a build-emu/tests/cuda_parity snap-parity

mapfile -t sites < <(grep -n -E '__syncthreads\(\)|__syncwarp\(\)' cuda/*.cu cuda/*.cuh | grep -v -E '^[^:]+:[0-9]+:[[:space:]]*//' | cut -d: -f1,2)
{
  echo "# Barrier mutants ($(date -u +%Y-%m-%d), schedules: $schedules$([ "${CUEMU_RACE:-1}" = 0 ] && echo ', race checks off: CUEMU_RACE=0'))"
  echo
  echo "Each row: one barrier deleted from cuda/ (tests/cuemu/mutate.sh); the emulated parity suite"
  echo "(tests/cuda/parity.c) run under each schedule until one kills the mutant."
  echo
  echo "| site | statement | result | first report |"
  echo "|---|---|---|---|"
} > "$root/$out.tmp"
killed=0
for site in "${sites[@]}"; do
  file=${site%%:*} line=${site##*:}
  stmt=$(sed -n "${line}p" "$file" | sed -E 's/^[[:space:]]+//; s/[[:space:]]*\/\/.*$//')
  cp -p "$file" "$file.orig"
  sed -i -E "${line}s/__syncthreads\(\)|__syncwarp\(\)/(void)0/" "$file"
  result=survived report=
  if ! make -s build-emu/tests/cuda_parity > build.log 2>&1; then
    result="does not build"; report=$(grep -m1 error build.log || true)
  else
    for s in $schedules; do
      if CUEMU_SCHEDULE=$s ELASTILM_THREADS=2 timeout 600 build-emu/tests/cuda_parity > run.log 2>&1; then continue; fi
      result="killed ($s)"
      report=$(grep -m1 -E 'cuemu: error|ERROR: AddressSanitizer|^FAIL|runtime error' run.log || tail -1 run.log)
      break
    done
  fi
  [ "$result" = survived ] || killed=$((killed + 1))
  report=$(printf '%s' "$report" | cut -c1-220 | sed 's/|/\\|/g')
  echo "| $file:$line | \`$stmt\` | $result | $report |" >> "$root/$out.tmp"
  echo "mutate: $file:$line: $result" >&2
  mv "$file.orig" "$file" # with its old time: the restored objects are newer
  rm -rf build-emu/cuda
  cp -a snap-cuda build-emu/cuda
  cp -a snap-parity build-emu/tests/cuda_parity
done
echo >> "$root/$out.tmp"
echo "$killed of ${#sites[@]} mutants killed." >> "$root/$out.tmp"
mv "$root/$out.tmp" "$root/$out"
echo "mutate: $killed of ${#sites[@]} killed: $out" >&2
