#!/usr/bin/env bash
# llama.cpp as a CPU reference for experiments/bench/bench_cpu.sh.
#
#   bench_llamacpp.sh build                 build (once) and print the folder holding llama-bench
#   bench_llamacpp.sh f32 Q4_1.gguf         print the path of its F32 copy (made once by llama-quantize)
#   REPS=3 bench_llamacpp.sh run LABEL MODEL.gguf THREADS
#       one round: prefill of 1 x 128 tokens, and 64 decode steps at depth 128, each the
#       best of REPS (default 1) after llama-bench's warm-up pass;
#       prints "LABEL threads=N prefill_tok_s=X decode_tok_s=Y"
#
# llama.cpp comes from the copy vendored in the llama-cpp-python sdist on PyPI
# (LLAMACPP_PY_VERSION, default 0.3.36), fetched with `pip download` and built with cmake
# outside the repository, in $ELASTILM_CACHE/llama.cpp/<version>/ (cache default
# ~/.cache/elastilm): Release, CPU backend only (no CUDA, BLAS, Metal, Vulkan, curl,
# OpenSSL), static, only llama-bench and llama-quantize, -march=native (AVX-512 where the
# CPU has it) with AMX turned off (-mno-amx-*: the AMX path faults on the project's VMs).
# A stamp holding the configuration makes later calls reuse the build.
#
# Exit status: 0 ok; 3 llama.cpp cannot be built or run here (the reason on stderr),
# so that the caller skips it; 2 usage.
set -euo pipefail
prog=bench_llamacpp.sh
version=${LLAMACPP_PY_VERSION:-0.3.36}
cache=${ELASTILM_CACHE:-$HOME/.cache/elastilm}
root="$cache/llama.cpp/$version"
bin="$root/build/bin"
skip() { echo "$prog: llama.cpp skipped: $*" >&2; exit 3; }

amx_off="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
cmake_flags=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF
  -DGGML_NATIVE=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
  -DGGML_CUDA=OFF -DGGML_BLAS=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_RPC=OFF
  -DGGML_CCACHE=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_LLGUIDANCE=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF
  -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_TOOLS=ON)

build() {
  # The stamp names everything that shapes the binaries, the CPU included (-march=native).
  local cpu stamp_text
  cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ //' || true)
  stamp_text="llama-cpp-python $version; cmake ${cmake_flags[*]}; CFLAGS $amx_off; cpu $cpu"
  if [ -x "$bin/llama-bench" ] && [ -x "$bin/llama-quantize" ] && [ -f "$root/stamp" ] \
     && [ "$(cat "$root/stamp")" = "$stamp_text" ]; then
    echo "$bin"; return 0
  fi
  command -v cmake >/dev/null || skip "cmake not found"
  command -v "${CXX:-c++}" >/dev/null || skip "no C++ compiler (${CXX:-c++})"
  command -v python3 >/dev/null && python3 -m pip --version >/dev/null 2>&1 || skip "python3 -m pip not available"
  echo "$prog: building llama.cpp from llama-cpp-python $version in $root (once; several minutes)" >&2
  local t0=$SECONDS
  mkdir -p "$root"
  rm -f "$root/stamp"
  local sdist="$root/llama_cpp_python-$version.tar.gz"
  if [ ! -s "$sdist" ]; then
    local dl
    dl=$(mktemp -d)
    python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$version" -d "$dl" >&2 \
      || { rm -rf "$dl"; skip "pip download llama-cpp-python==$version failed"; }
    mv "$dl/llama_cpp_python-$version.tar.gz" "$sdist.tmp" && mv "$sdist.tmp" "$sdist"
    rm -rf "$dl"
  fi
  rm -rf "$root/src" "$root/build"
  mkdir -p "$root/src"
  local top="llama_cpp_python-$version"
  tar -xzf "$sdist" -C "$root/src" --strip-components=3 "$top/vendor/llama.cpp" \
    || skip "$sdist has no vendor/llama.cpp"
  # The submodule's commit (its .git is not a repository once unpacked).
  local commit
  commit=$(tar -xzOf "$sdist" "$top/.git/modules/vendor/llama.cpp/HEAD" 2>/dev/null | head -c 40 || true)
  echo "${commit:-unknown}" > "$root/COMMIT"
  local cc=${CC:-cc} extra=""
  # AMX off where the compiler knows the flags (they only matter when -march=native has AMX).
  if echo 'int main(void){return 0;}' | "$cc" $amx_off -x c -o /dev/null - 2>/dev/null; then extra=$amx_off; fi
  {
    nice -n 19 cmake -S "$root/src" -B "$root/build" "${cmake_flags[@]}" \
      -DLLAMA_BUILD_COMMIT="${commit:0:7}" -DCMAKE_C_FLAGS="$extra" -DCMAKE_CXX_FLAGS="$extra" &&
    nice -n 19 cmake --build "$root/build" --config Release -j "$(nproc)" --target llama-bench llama-quantize
  } > "$root/build.log" 2>&1 || { tail -n 20 "$root/build.log" >&2; skip "build failed (log: $root/build.log)"; }
  "$bin/llama-bench" --help >/dev/null 2>&1 || skip "$bin/llama-bench does not run"
  echo "$stamp_text" > "$root/stamp"
  echo "$prog: llama.cpp ${commit:0:10} built in $((SECONDS - t0)) s" >&2
  echo "$bin"
}

to_f32() {
  local q=${1:?usage: $prog f32 MODEL.gguf} b f32
  b=$(build)
  f32="$root/models/$(basename "${q%.gguf}").F32.gguf"
  if [ ! -s "$f32" ] || [ "$f32" -ot "$q" ]; then
    mkdir -p "$root/models"
    "$b/llama-quantize" --allow-requantize "$q" "$f32.tmp" F32 > "$root/models/quantize.log" 2>&1 \
      || { tail -n 5 "$root/models/quantize.log" >&2; rm -f "$f32.tmp"; skip "llama-quantize to F32 failed"; }
    mv "$f32.tmp" "$f32"
  fi
  echo "$f32"
}

# One llama-bench test (JSON lines out): prints the best tokens/s of its $REPS repetitions.
bench_one() {
  local b=$1 model=$2 threads=$3; shift 3
  "$b/llama-bench" -m "$model" -t "$threads" -r "${REPS:-1}" -o jsonl "$@" 2>/dev/null \
    | sed -n 's/.*"samples_ts": *\[\([^]]*\)\].*/\1/p' | tr ',' '\n' \
    | awk 'NF { if ($1 + 0 > best) best = $1 + 0; n++ } END { if (!n) exit 1; printf "%.2f\n", best }'
}

run() {
  local label=${1:?} model=${2:?} threads=${3:?} b p d
  b=$(build)
  # llama-bench runs one warm-up pass per test before its timed repetitions. Decode: the
  # KV cache is filled with 128 tokens (-d 128, untimed), then 64 tokens are generated.
  p=$(bench_one "$b" "$model" "$threads" -p 128 -n 0 -d 0) || skip "llama-bench failed on $model"
  d=$(bench_one "$b" "$model" "$threads" -p 0 -n 64 -d 128) || skip "llama-bench failed on $model"
  echo "$label threads=$threads prefill_tok_s=$p decode_tok_s=$d"
}

case "${1:-}" in
  build) build ;;
  f32) to_f32 "${2:-}" ;;
  run) shift; run "$@" ;;
  commit) cat "$root/COMMIT" 2>/dev/null || echo unknown ;;
  *) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
