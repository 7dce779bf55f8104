#!/usr/bin/env bash
# Octopus accuracy (the artifact's scripts/Octopus.sh); see experiments/eval_dataset.sh.
exec "$(dirname "$0")/eval_dataset.sh" Octopus "$@"
