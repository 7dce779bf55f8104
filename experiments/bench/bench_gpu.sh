#!/usr/bin/env bash
# GPU benchmark in one run (for a GPU machine; needs nothing from the network):
#   1. builds the CUDA binaries:  make CUDA=1 NVCC_ARCH=-arch=sm_90 build/tests/cuda_parity build/bench_gpu
#   2. runs the CPU<->CUDA parity binary (every op, the tiny models)
#   3. measures elastilm (bench_gpu) on the LLaMA-2-7B and SmolLM2-135M shapes with
#      random bf16 weights: prefill 8 x 512 tokens (tok/s, MFU), decode batch 1
#      (ms/token after a 128-token prompt); the prefill again with the CUDA-core
#      attention kernel (ELASTILM_CUDA_ATTENTION=simt), to show the tensor-core one's gain
#   4. measures the same with PyTorch/transformers on the same GPU (bench_gpu_torch.py:
#      LlamaForCausalLM random init, bf16, SDPA, eager)
#   5. writes a markdown table (for docs/perf.md) with the ratios to the file named
#      by --out (default results/bench_gpu.txt), and the whole log beside it (.log).
#
#   experiments/bench/bench_gpu.sh [--out FILE] [--no-build] [--reps N] [--shapes "llama2-7b smollm2-135m"]
#                                  [--use-bundle FILE] [--sanitize]
#   --sanitize: also run the parity binary under compute-sanitizer (memcheck, then
#   racecheck: out-of-bounds accesses and shared-memory races of the kernels)
#   experiments/bench/bench_gpu.sh --bundle FILE
#
# Run from anywhere; it works in the repository root (relative FILE paths are
# taken from there). --no-build uses binaries
# already in $BUILD (default build).
# Bundles, for a GPU machine whose image lacks the Debian libraries the build links
# (OpenBLAS, HDF5, Open MPI, jansson, pcre2, utf8proc): --bundle FILE, run on a
# machine that builds, makes FILE (.tar.xz: the two binaries and the shared
# libraries they load, less glibc, libstdc++/libgcc and the CUDA libraries);
# --use-bundle FILE runs those instead of building (libcublasLt.so.13 must be on
# the GPU machine: the toolkit's lib64, or a pip nvidia-cublas wheel).
# Exit status: 0 when everything ran and parity passed; 1 when parity failed or a
# step broke (the table is still written with what was measured).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

out=results/bench_gpu.txt
build=1
reps=5
shapes="llama2-7b smollm2-135m"
bundle_out=
bundle_in=
sanitize=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?--out needs a file}; shift 2 ;;
    --no-build) build=0; shift ;;
    --reps) reps=${2:?--reps needs a number}; shift 2 ;;
    --shapes) shapes=${2:?--shapes needs a list}; shift 2 ;;
    --bundle) bundle_out=${2:?--bundle needs a file}; shift 2 ;;
    --use-bundle) bundle_in=${2:?--use-bundle needs a file}; build=0; shift 2 ;;
    --sanitize) sanitize=1; shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "bench_gpu.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
BUILD=${BUILD:-build}
parity_bin=$BUILD/tests/cuda_parity
bench_bin=$BUILD/bench_gpu

# ---- bundles ----
if [ -n "$bundle_out" ]; then
  make -j"$(nproc)" CUDA=1 NVCC_ARCH=-arch=sm_90 BUILD="$BUILD" "$parity_bin" "$bench_bin" || exit 1
  stage=$(mktemp -d)
  mkdir -p "$stage/bin" "$stage/lib"
  cp "$parity_bin" "$bench_bin" "$stage/bin/"
  ldd "$parity_bin" "$bench_bin" | awk '$3 ~ /^\// { print $3 }' | sort -u |
    grep -v -E '/(libc|libm|libpthread|libdl|librt|libresolv|libutil|ld-linux[^/]*|libstdc\+\+|libgcc_s|libcuda|libcudart|libcublas|libcublasLt)\.so' |
    xargs -r cp -L -t "$stage/lib/"
  tar -C "$stage" -cJf "$bundle_out" bin lib
  rm -rf "$stage"
  echo "bench_gpu.sh: wrote $bundle_out ($(du -h "$bundle_out" | cut -f1)) for --use-bundle"
  exit 0
fi
if [ -n "$bundle_in" ]; then
  unpacked=$(mktemp -d)
  tar -C "$unpacked" -xJf "$bundle_in" || { echo "bench_gpu.sh: cannot unpack $bundle_in" >&2; exit 1; }
  parity_bin=$unpacked/bin/cuda_parity
  bench_bin=$unpacked/bin/bench_gpu
  libpath=$unpacked/lib
  # (grep >/dev/null, not -q: an early grep exit would SIGPIPE ldd and, under pipefail, hide the match)
  if ldd "$parity_bin" 2>&1 | grep 'libcublasLt.* not found' > /dev/null; then # not in the toolkit's lib64
    lt=$( (ls /usr/local/cuda*/lib64/libcublasLt.so.13 /usr/lib/x86_64-linux-gnu/libcublasLt.so.13 2>/dev/null;
           python3 -c 'import glob, os, site; [print(p) for d in site.getsitepackages() for p in glob.glob(os.path.join(d, "nvidia", "**", "libcublasLt.so.13"), recursive=True)]' 2>/dev/null) | head -1)
    if [ -n "$lt" ]; then libpath=$libpath:$(dirname "$lt")
    else echo "bench_gpu.sh: libcublasLt.so.13 is not on this machine (toolkit lib64 or a pip nvidia-cublas wheel)" >&2; fi
  fi
fi
# The bundle's libraries for the two binaries only, not for python3 and torch.
cbin() { LD_LIBRARY_PATH=${libpath:-}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} "$@"; }

mkdir -p "$(dirname "$out")"
log="${out%.*}.log"
: > "$log"
status=0
say() { echo "$@" | tee -a "$log"; }

say "# bench_gpu.sh $(date -u +%Y-%m-%dT%H:%MZ) on $(hostname)"
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,power.draw,power.limit \
    --format=csv 2>&1 | tee -a "$log"
fi
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && [ -n "$(git status --porcelain 2>/dev/null | head -1)" ]; then commit="$commit+dirty"; fi

# ---- 1. build ----
if [ "$build" = 1 ]; then
  say "## build"
  if ! make -j"$(nproc)" CUDA=1 NVCC_ARCH=-arch=sm_90 BUILD="$BUILD" "$parity_bin" "$bench_bin" >> "$log" 2>&1; then
    say "bench_gpu.sh: the build failed; the end of its log:"
    tail -30 "$log"
    exit 1
  fi
fi

# ---- 2. parity ----
say "## parity ($parity_bin)"
cbin "$parity_bin" 2>&1 | tee -a "$log"
parity_rc=${PIPESTATUS[0]}
parity_line=$(grep -E '^cuda_parity: [0-9]+ checks' "$log" | tail -1)
case "$parity_rc" in
  0) parity="passed (${parity_line#cuda_parity: })" ;;
  77) parity="skipped: no usable GPU"; status=1 ;;
  1) parity="FAILED (${parity_line#cuda_parity: }; see the log)"; status=1 ;;
  *) parity="CRASHED (exit $parity_rc; see the log)"; status=1 ;;
esac
say "parity: $parity"

if [ "$sanitize" = 1 ] && [ "$parity_rc" != 77 ]; then
  cs=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
  if [ -z "$cs" ]; then say "sanitize: compute-sanitizer not found"; status=1
  else
    for tool in memcheck racecheck; do
      say "## parity under compute-sanitizer --tool $tool"
      cbin "$cs" --tool "$tool" --error-exitcode 9 "$parity_bin" > "${log%.log}.$tool.log" 2>&1
      rc=$?
      tail -5 "${log%.log}.$tool.log" | tee -a "$log"
      if [ "$rc" = 0 ]; then say "sanitize $tool: clean"; else say "sanitize $tool: FAILED (exit $rc; ${log%.log}.$tool.log)"; status=1; fi
    done
  fi
fi

# ---- 3, 4. measurements ----
results=$(mktemp)
trap 'rm -f "$results"; [ -z "${unpacked:-}" ] || rm -rf "$unpacked"' EXIT
for shape in $shapes; do
  say "## elastilm $shape"
  cbin "$bench_bin" "$shape" --reps "$reps" 2>&1 | tee -a "$log" "$results"
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 77 ]; then say "bench_gpu.sh: bench_gpu $shape: no usable GPU"; status=1
  elif [ "$rc" != 0 ]; then say "bench_gpu.sh: bench_gpu $shape failed (exit $rc)"; status=1; fi
  # the same prefill with the CUDA-core attention kernel: what the tensor-core one gains
  say "## elastilm $shape, CUDA-core attention (ELASTILM_CUDA_ATTENTION=simt)"
  ELASTILM_CUDA_ATTENTION=simt cbin "$bench_bin" "$shape" --reps "$reps" --decode-prompt 1 --decode-steps 1 2>&1 |
    sed 's/^elastilm /elastilm_simt /' | tee -a "$log" "$results"
  if [ "${PIPESTATUS[0]}" != 0 ]; then say "bench_gpu.sh: bench_gpu $shape (simt) failed"; status=1; fi
  say "## torch $shape"
  PYTHONUNBUFFERED=1 python3 "$here/bench_gpu_torch.py" --shape "$shape" --reps "$reps" 2>&1 | tee -a "$log" "$results"
  rc=${PIPESTATUS[0]}
  if [ "$rc" = 3 ]; then
    say "# torch/transformers or its GPU unavailable: no reference for $shape"
    [ "$parity_rc" = 0 ] && status=1 # elastilm found a GPU: the reference should have too
  elif [ "$rc" != 0 ]; then say "bench_gpu.sh: bench_gpu_torch.py $shape failed (exit $rc)"; status=1; fi
done

# ---- 5. the table ----
device=$(grep -m1 '^# device:' "$results" | sed 's/^# device: //')
torch_ver=$(grep -m1 '^# torch device:' "$results" | sed 's/^# torch device: [^;]*; //')
tmp_out="$out.tmp"
{
  echo "GPU benchmark, $(date -u +%Y-%m-%d), commit $commit: ${device:-unknown device}."
  echo "Reference: ${torch_ver:-not run}. Parity (CPU<->CUDA): $parity."
  echo "Random weights (N(0, 0.02)) in bf16 on both sides; prefill = one forward of 8 x 512 tokens into an"
  echo "empty cache (last-position logits only); decode = batch 1, ms per greedy token after a 128-token"
  echo "prompt (mean of 128 steps); each the median of $reps runs after a warm-up, device synchronized"
  echo "around every timed region. MFU = 2 x (per-token matmul params) x tokens / time / peak."
  echo
  awk -v reps="$reps" '
    function kv(line, arr,   i, n, f, p) {
      n = split(line, f, " ")
      for (i = 2; i <= n; i++) { p = index(f[i], "="); if (p) arr[substr(f[i], 1, p - 1)] = substr(f[i], p + 1) }
    }
    /^elastilm / { delete a; kv($0, a); s = a["shape"]; order[++ns] = s
                   e_tok[s] = a["prefill_tok_s"]; e_mfu[s] = a["mfu"]; e_dec[s] = a["decode_ms_tok"]; e_init[s] = a["init"] }
    /^elastilm_simt / { delete a; kv($0, a); s_tok[a["shape"]] = a["prefill_tok_s"] }
    /^torch /    { delete a; kv($0, a); s = a["shape"]
                   t_tok[s] = a["prefill_tok_s"]; t_mfu[s] = a["mfu"]; t_dec[s] = a["decode_ms_tok"] }
    function pct(x) { return (x == "" || x == "nan") ? "n/a" : sprintf("%.1f%%", 100 * x) }
    function num(x, fmt) { return x == "" ? "n/a" : sprintf(fmt, x) }
    function ratio(x, y) { return (x == "" || y == "" || y + 0 == 0) ? "n/a" : sprintf("%.2fx", x / y) }
    END {
      print "| shape | prefill tok/s elastilm | prefill tok/s torch | elastilm/torch | elastilm, CUDA-core attention | MFU elastilm | MFU torch | decode ms/tok elastilm | decode ms/tok torch | decode speedup (torch/elastilm) |"
      print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
      for (i = 1; i <= ns; i++) {
        s = order[i]
        printf "| %s%s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s, (e_init[s] == "replicate" ? " (*)" : ""),
               num(e_tok[s], "%.0f"), num(t_tok[s], "%.0f"), ratio(e_tok[s], t_tok[s]), num(s_tok[s], "%.0f"),
               pct(e_mfu[s]), pct(t_mfu[s]),
               num(e_dec[s], "%.2f"), num(t_dec[s], "%.2f"), ratio(t_dec[s], e_dec[s])
      }
    }' "$results"
  if grep -q 'init=replicate' "$results"; then
    echo
    echo "(*) elastilm: one random layer duplicated into every layer (distinct memory, same values) to"
    echo "    skip drawing 6.7e9 normals on one CPU core; timings do not depend on the values."
  fi
  echo
  echo "Raw lines:"
  grep -E '^(elastilm|elastilm_simt|torch) ' "$results" | sed 's/^/    /'
} > "$tmp_out"
mv "$tmp_out" "$out"
echo
cat "$out"
echo
echo "bench_gpu.sh: table in $out, log in $log"
exit "$status"
