#!/usr/bin/env bash
# experiments/check_standalone.sh — does the repository stand on its own?
#
# Clones the committed HEAD into a fresh temporary folder (nothing beside it: no
# sibling folders, no build outputs of this tree), runs the criterion suite
# there, and runs the clone's binary from another working directory on the
# bundled data: `elastilm eval --dataset Octopus --limit 5` (and LlamaTouch).
# The eval step needs SmolLM2 in $ELASTILM_CACHE (datasets/fetch.sh smollm2;
# `make test-real` fetches it); without it the step says so and is skipped.
# Uncommitted changes are not in the clone: commit first.
#
#   experiments/check_standalone.sh [--keep]     (--keep leaves the clone for inspection)
# Exit status: 0 passed, 1 a step failed (named), 2 usage.
set -euo pipefail

keep=0
case "${1:-}" in
    "") ;;
    --keep) keep=1 ;;
    *) echo "usage: $0 [--keep]" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/elastilm-standalone.XXXXXX")
if [ "$keep" = 0 ]; then trap 'rm -rf "$tmp"' EXIT; fi
clone="$tmp/elastilm"
step() { echo "standalone: $*"; }
fail() { echo "standalone: FAILED: $*" >&2; exit 1; }

step "cloning $(git -C "$here" rev-parse --short HEAD) into $clone (nothing beside it)"
git clone -q --no-local "$here" "$clone" || fail "git clone"
[ -z "$(ls -A "$tmp" | grep -v '^elastilm$' || true)" ] || fail "$tmp is not empty"
[ ! -e "$tmp/shared" ] || fail "a shared/ folder is beside the clone"

# The clone's own build and tests, with no variable pointing back at this tree.
unset ELASTILM_DATA ELASTILM_SHARED MAKEFLAGS MFLAGS MAKELEVEL
step "make test in the clone"
make -C "$clone" -j2 test || fail "make test in the clone"

model="${ELASTILM_CACHE:-$HOME/.cache/elastilm}/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$model" ]; then
    step "SmolLM2 is not in the cache ($model): eval from another directory skipped (datasets/fetch.sh smollm2)"
    exit 0
fi
elsewhere="$tmp/elsewhere"
mkdir -p "$elsewhere"
for ds in Octopus LlamaTouch; do
    step "elastilm eval --dataset $ds --limit 5 from $elsewhere"
    (cd "$elsewhere" && "$clone/elastilm" eval --model "$model" --dataset "$ds" --limit 5 --quiet) \
        || fail "eval --dataset $ds from another directory"
done
step "a missing data folder names the path and the variable"
if out=$(cd "$elsewhere" && ELASTILM_DATA="$tmp/no-such-folder" "$clone/elastilm" eval --model "$model" \
        --dataset Octopus --limit 1 --quiet 2>&1); then
    fail "eval with ELASTILM_DATA=$tmp/no-such-folder succeeded"
fi
case "$out" in
    *"$tmp/no-such-folder/elastilm-artifact/Octopus_refined/val/android_benchmark.csv"*ELASTILM_DATA*) ;;
    *) fail "unexpected message: $out" ;;
esac
step "passed"
