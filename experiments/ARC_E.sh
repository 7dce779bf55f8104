#!/usr/bin/env bash
# ARC_E accuracy (the artifact's scripts/ARC_E.sh); see experiments/eval_dataset.sh.
exec "$(dirname "$0")/eval_dataset.sh" ARC_E "$@"
