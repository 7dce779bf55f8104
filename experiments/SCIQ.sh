#!/usr/bin/env bash
# SCIQ accuracy (the artifact's scripts/SCIQ.sh); see experiments/eval_dataset.sh.
exec "$(dirname "$0")/eval_dataset.sh" SCIQ "$@"
