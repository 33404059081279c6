#!/bin/sh
# DT-FM's scheduler in emulation (issue 11): the tiny GPT as DP 4 x PP 4 on 16 ranks of
# the eight-city profile (two per city), virtual clock, a 15.7 TFLOP/s device at 50%
# (a V100's fp32 peak), GPipe, 4 micro-batches of 1. The plan, the slowest of 20 random
# placements and Megatron's order, each run by the trainer for 4 steps, beside the
# simulator's prediction for the same placement.
# Run from the repository root after `dtbench prepare`: sh results/dtfm/emulate.sh
set -e
bin=${1:-build/dtbench}
keys="--config configs/model/tiny.yaml --set parallel.dp=4 --set parallel.pp=4 --set train.batch_size=16
  --set parallel.microbatches=4 --set parallel.schedule=gpipe --set net.profile=configs/net/dtfm-5-cities.yaml
  --set device.peak_gflops=15700 --set device.efficiency=0.5"
"$bin" plan $keys --seed 1 --random 20 --out results/dtfm/emu-plan.yaml --out-random results/dtfm/emu-random.yaml \
  | tee results/dtfm/emu-plan.txt
for p in plan random megatron; do
  place=""
  [ $p != megatron ] && place="--set parallel.placement=results/dtfm/emu-$p.yaml"
  echo "== $p: trainer (virtual clock), then simulator"
  mpirun -np 16 --oversubscribe --mca mpi_yield_when_idle 1 "$bin" train $keys $place --set net.clock=virtual \
    --set train.steps=4 --set train.threads=1 --set train.val_every=0 --set train.log_every=1 \
    --set train.results=${TMPDIR:-/tmp}/dtfm-emu-$p.h5 | grep '^step'
  "$bin" sim $keys $place --out none | grep -E '^  step '
done 2>&1 | tee results/dtfm/emu-runs.txt
