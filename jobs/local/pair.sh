#!/bin/bash
# The centralized/decentralized pair on this workstation through mpirun: RANKS ranks,
# DP = RANKS / (PP x TP), on centralized-25g (the slowdown's baseline) and decentralized-1g.
# Results go into results/ of the folder you start it from (the repository root, say):
#   jobs/local/pair.sh                        both runs, centralized first
#   jobs/local/pair.sh decentralized          one of them (centralized or decentralized)
#   RANKS=8 PP=2 jobs/local/pair.sh decentralized --set train.steps=200   (more dtbench run options)
# Writes results/pair-dp<DP>-pp<PP>-tp<TP>/{centralized,decentralized}.h5 and the folder's report.
# Ctrl-C or SIGTERM: the running run stops after its step with a checkpoint and its results,
# the other does not start, exit 3 (dtb_graceful in jobs/common.sh).

# ---- settings you may change ----
RANKS=${RANKS:-4}                          # MPI ranks = DP x PP x TP (more than cores is fine)
export PP=${PP:-1} TP=${TP:-1}             # pipeline stages, tensor-parallel ranks
export DTBENCH=${DTBENCH:-}               # the binary (default: the checkout's build/dtbench, or the install's bin/dtbench)

set -euo pipefail
# dtbench's tree (jobs/common.sh, configs/, the binary): DTBENCH_HOME (the modulefile sets it),
# else the tree this script lies in (a checkout, or an install's share/dtbench).
DTB_HOME=${DTBENCH_HOME:-$(dirname "$(realpath "$0")")/../..}
source "$DTB_HOME/jobs/common.sh"
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
