#!/bin/bash
# Every run of an experiment on this workstation, one after the other through mpirun; the
# same runs as jobs/slurm/sweep.sbatch's array tasks. Results go into results/ of the
# folder you start it from (the repository root, say):
#   jobs/local/sweep.sh                                         (the quickstart)
#   jobs/local/sweep.sh configs/experiments/pair.yaml --set parallel.dp=2
#   OUT=results/quickstart-1 jobs/local/sweep.sh --skip-existing   (fill in failed runs)
# Results: results/<experiment>/ (or OUT), with report.md.

# ---- settings you may change ----
EXPERIMENT=${1:-configs/experiments/quickstart.yaml}
export DTBENCH=${DTBENCH:-}               # the binary (default: the checkout's build/dtbench, or the install's bin/dtbench)

set -euo pipefail
# dtbench's tree (jobs/common.sh, configs/, the binary): DTBENCH_HOME (the modulefile sets it),
# else the tree this script lies in (a checkout, or an install's share/dtbench).
DTB_HOME=${DTBENCH_HOME:-$(dirname "$(realpath "$0")")/../..}
source "$DTB_HOME/jobs/common.sh"
EXPERIMENT=$(dtb_find "$EXPERIMENT")
dtb_check "$EXPERIMENT"
shift $(( $# > 0 ? 1 : 0 ))
# Ctrl-C or SIGTERM to this script: the running run stops after its step with a checkpoint
# and its results, the others do not start, exit 3 (dtb_graceful).
dtb_graceful "$DTBENCH" run "$EXPERIMENT" --launcher mpirun ${OUT:+--out "$OUT"} "$@"
