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
# The same search with DT-FM's scheduler code's volumes (scheduler/heuristic_evolutionary_solver/
# config.py: send_gradient_size / send_activation_size, in GB of 1e9 bytes) in place of the
# model's: scenario 1 (its case 0) 1 GB / 288/1024 GB, scenario 5 (its case 4) 0.9 / 0.5 GB.
"$bin" plan --preset gpt3-xl --net configs/net/dtfm-1-dc-ondemand.yaml --seed 1 --random 20 --c-dp 1GB --c-pp 281.25MB \
  --out results/dtfm/plan-code-dtfm-1-dc-ondemand.yaml | tee results/dtfm/plan-code-dtfm-1-dc-ondemand.txt
"$bin" plan --preset gpt3-xl --net configs/net/dtfm-5-cities.yaml --seed 1 --random 20 --c-dp 0.9GB --c-pp 0.5GB \
  --out results/dtfm/plan-code-dtfm-5-cities.yaml | tee results/dtfm/plan-code-dtfm-5-cities.txt
