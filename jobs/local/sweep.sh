#!/bin/bash
# Every run of an experiment on this workstation, one after the other through mpirun; the
# same runs as jobs/slurm/sweep.sbatch's array tasks. From the repository root:
#   jobs/local/sweep.sh                                         (the quickstart)
#   jobs/local/sweep.sh configs/experiments/pair.yaml --set parallel.dp=2
#   OUT=results/quickstart-1 jobs/local/sweep.sh --skip-existing   (fill in failed runs)
# Results: results/<experiment>/ (or OUT), with report.md.

# ---- settings you may change ----
EXPERIMENT=${1:-configs/experiments/quickstart.yaml}
export DTBENCH=${DTBENCH:-build/dtbench}   # the binary

set -euo pipefail
cd "$(dirname "$0")/../.."
source jobs/common.sh
dtb_check
shift $(( $# > 0 ? 1 : 0 ))
# Ctrl-C or SIGTERM to this script: the running run stops after its step with a checkpoint
# and its results, the others do not start, exit 3 (dtb_graceful).
dtb_graceful "$DTBENCH" run "$EXPERIMENT" --launcher mpirun ${OUT:+--out "$OUT"} "$@"
