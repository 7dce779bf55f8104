#!/usr/bin/env bash
# OBQA accuracy (the artifact's scripts/OBQA.sh); see experiments/eval_dataset.sh.
exec "$(dirname "$0")/eval_dataset.sh" OBQA "$@"
