#!/usr/bin/env bash
# LlamaTouch accuracy (the artifact's scripts/LlamaTouch.sh); see experiments/eval_dataset.sh.
exec "$(dirname "$0")/eval_dataset.sh" LlamaTouch "$@"
