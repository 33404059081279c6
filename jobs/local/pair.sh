#!/bin/bash
# The centralized/decentralized pair on this workstation through mpirun: RANKS ranks,
# DP = RANKS / (PP x TP), on centralized-25g (the slowdown's baseline) and decentralized-1g.
# From the repository root:
#   jobs/local/pair.sh                        both runs, centralized first
#   jobs/local/pair.sh decentralized          one of them (centralized or decentralized)
#   RANKS=8 PP=2 jobs/local/pair.sh decentralized --set train.steps=200   (more dtbench run options)
# Writes results/pair-dp<DP>-pp<PP>-tp<TP>/{centralized,decentralized}.h5 and the folder's report.
# Ctrl-C or SIGTERM: the running run stops after its step with a checkpoint and its results,
# the other does not start, exit 3 (dtb_graceful in jobs/common.sh).

# ---- settings you may change ----
RANKS=${RANKS:-4}                          # MPI ranks = DP x PP x TP (more than cores is fine)
export PP=${PP:-1} TP=${TP:-1}             # pipeline stages, tensor-parallel ranks
export DTBENCH=${DTBENCH:-build/dtbench}   # the binary

set -euo pipefail
cd "$(dirname "$0")/../.."
source jobs/common.sh
dtb_check
runs=(centralized decentralized)
if [[ $# -gt 0 && $1 != -* ]]; then
  [[ $1 == centralized || $1 == decentralized ]] ||
    dtb_fail "unknown run '$1': give centralized or decentralized (or none for both), then dtbench run options"
  runs=("$1")
  shift
fi
for run in "${runs[@]}"; do
  dtb_pair "$run" "$RANKS" mpirun --set train.threads=1 "$@"
done
