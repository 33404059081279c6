#!/bin/sh
# The collective benchmarks of issue 3, on this host (figures in collectives/README.md):
#   1. unshaped ring allreduce vs MPI_Allreduce, bus bandwidth at 4 MiB and up, 4 ranks;
#   2. the timing layer's overhead on the unshaped profile: timed vs raw transport, ring;
#   3. shaping accuracy on 1 Gbps / 50 ms: measured wall time vs the cost formula.
# 1 and 2 come from coll_pair_bench, which runs the variants back to back in every
# iteration: on a small shared host the load changes between two mpiruns by more than
# the differences measured. Usage: collectives/bench.sh [BUILD_DIR]   (default: build)
set -eu
build=${1:-build}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi="mpirun --oversubscribe --mca mpi_yield_when_idle 1"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "# 1 and 2: ring vs MPI_Allreduce, timed vs raw transport"
$mpi -np 4 "$build/coll_pair_bench" 1048576 33554432 50

echo "# 3. shaping accuracy: configs/net/wan-1g-50ms.yaml, wall clock; time us vs the formula"
net="--net configs/net/wan-1g-50ms.yaml --clock wall -b 1M -e 16M -f 4 -n 3 -w 1 --out $out/r.h5"
for run in "2 --op broadcast --algo tree" "4 --algo ring"; do
  set -- $run
  np=$1
  shift
  $mpi -np "$np" "$build/dtbench" coll $net "$@" |
    awk -v l="$*, $np ranks" '!/^#/ && NF == 10 {
      printf "%-36s %10d B  measured %.0f  formula %.0f  error %+.2f%%\n", l, $1, $6, $9, 100 * ($6 / $9 - 1) }'
done
