#!/usr/bin/env bash
# PIQA accuracy (the artifact's scripts/PIQA.sh); see experiments/eval_dataset.sh.
exec "$(dirname "$0")/eval_dataset.sh" PIQA "$@"
