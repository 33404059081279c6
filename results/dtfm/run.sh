#!/bin/sh
# DT-FM's scheduler at the paper's scale (issue 11): GPT3-XL on 64 V100, DP 8 x PP 8,
# batch 1024, micro-batch 1, fp16, GPipe (configs/sim/gpt3-xl.yaml), over the five
# scenarios. One `dtbench plan` each: the plan's placement file and its table.
# Run from the repository root: sh results/dtfm/run.sh [build/dtbench]
set -e
bin=${1:-build/dtbench}
for net in dtfm-1-dc-ondemand dtfm-2-dc-spot dtfm-3-two-dcs dtfm-4-regions dtfm-5-cities; do
  "$bin" plan --preset gpt3-xl --net configs/net/$net.yaml --seed 1 --random 20 \
    --out results/dtfm/plan-$net.yaml | tee results/dtfm/plan-$net.txt
done
