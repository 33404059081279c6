#!/bin/bash
# results/verify: an honest worker and each cheat on the tiny GPT (40 steps, segments of 4,
# traces on, one kernel thread), each verified by re-executing every segment (the real hash
# comparisons), then at p = 0.3; the detection probability against p over 2000 seeds beside
# 1 - (1 - p)^m for one bad segment (m = 1) and three (m = 3). Writes table.md and
# detection-m1/m3.{gp,svg} here. Usage: results/verify/run.sh [BUILD_DIR] (about 2 minutes on 2 cores: not under the build lock, so timings carry the machine's load).
set -euo pipefail
cd "$(dirname "$0")/../.."
B=${1:-build}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
[[ -f data/fortunes.h5 ]] || "$B/dtbench" prepare >/dev/null
train() {  # NAME, then --set pairs
  local name=$1; shift
  "$B/dtbench" train --config configs/model/tiny.yaml --set train.steps=40 --set train.val_every=0 \
    --set train.threads=1 --set verify.segment=4 --set verify.trace=true --set verify.dir="$W/$name-ck" \
    --set train.results="$W/$name.h5" "$@" >"$W/$name-train.log"
}
{
  echo "# Verifying untrusted training: the tiny GPT, 40 steps in 10 segments of 4, cheats at step 13"
  echo
  echo "Made by \`results/verify/run.sh\` on $(uname -n), $(date -u +%Y-%m-%d). Columns: the verdict re-executing every"
  echo "segment (p = 1), the first differing step (0-based) and operation, bisection rounds (steps + operations),"
  echo "what the referee re-runs against the step, the verifier's re-execution time as a share of the worker's"
  echo "training (its commitments included) at p = 1 and at p = 0.3 (seed 1: caught or not), and both parties' proof bytes."
  echo
  echo "| worker | p = 1 | step | operation | rounds | referee re-runs | verifier cost p = 1 | proof bytes | p = 0.3 (seed 1) | verifier cost p = 0.3 |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for cheat in none skip_step other_data low_precision perturb_param skip_layer corrupt_checkpoint; do
    train "$cheat" --set verify.cheat="$cheat" --set verify.cheat_step=13 --set verify.cheat_layer=2
    "$B/dtbench" verify --all "$W/$cheat.h5" >"$W/$cheat-all.log" || true
    "$B/dtbench" verify -p 0.3 --seed 1 "$W/$cheat.h5" >"$W/$cheat-p01.log" || true
    all=$(grep '^row: ' "$W/$cheat-all.log" | sed 's/^row: | //; s/ |$//')
    IFS='|' read -r verdict step op rounds referee cost proof <<<"$all"
    p01=$(grep '^row: ' "$W/$cheat-p01.log" | sed 's/^row: | //; s/ |$//')
    IFS='|' read -r verdict01 _ _ _ _ cost01 _ <<<"$p01"
    echo "| $cheat | $verdict | $step | $op | $rounds | $referee | $cost | $proof | ${verdict01} | ${cost01} |"
  done
  echo
  grep '^commitment cost' "$W/none-all.log" | sed 's/^/Honest run, traces on: /'
  echo
  train notrace --set verify.trace=false
  { "$B/dtbench" verify -p 0.01 "$W/notrace.h5" || true; } | grep '^commitment cost' | sed 's/^/Honest run, traces off: /'
  echo
  echo "Detection probability against p (2000 seeds; bad segments found by re-executing all):"
  echo
  echo '```'
  { "$B/dtbench" verify "$W/perturb_param.h5" --detection 0.02,0.05,0.1,0.2,0.3,0.5,0.7,1 --seeds 2000 \
    --plot results/verify/detection-m1 || true; } | sed -n '/^# detection/,$p'
  train m3 --set verify.cheat=perturb_param --set verify.cheat_step=13 --set verify.cheat_every=12
  { "$B/dtbench" verify "$W/m3.h5" --detection 0.02,0.05,0.1,0.2,0.3,0.5,0.7,1 --seeds 2000 \
    --plot results/verify/detection-m3 || true; } | sed -n '/^# detection/,$p'
  echo '```'
} >results/verify/table.md
cat results/verify/table.md
