#!/bin/bash
# One training run on the decentralized profile (decentralized-1g), on this workstation through
# mpirun: RANKS ranks, DP = RANKS / (PP x TP). From the repository root:
#   jobs/local/decentralized.sh
#   RANKS=8 PP=2 jobs/local/decentralized.sh --set train.steps=200    (more dtbench run options)
# Writes results/pair-dp<DP>-pp<PP>-tp<TP>/decentralized.h5 and the folder's report;
# jobs/local/centralized.sh writes its partner (the baseline of the slowdown) beside it.

# ---- settings you may change ----
RANKS=${RANKS:-4}                          # MPI ranks = DP x PP x TP (more than cores is fine)
export PP=${PP:-1} TP=${TP:-1}             # pipeline stages, tensor-parallel ranks
export DTBENCH=${DTBENCH:-build/dtbench}   # the binary

set -euo pipefail
cd "$(dirname "$0")/../.."
source jobs/common.sh
dtb_check
dtb_pair decentralized "$RANKS" mpirun --set train.threads=1 "$@"
