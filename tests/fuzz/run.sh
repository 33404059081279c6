#!/usr/bin/env bash
# Builds the libFuzzer targets (the fuzz preset: clang, AddressSanitizer, UBSan) and runs
# each for a bounded time on a seed corpus from the repo, then replays every input in
# regressions/ (crashes found earlier, now fixed). Exits non-zero on a crash, a leak, a
# sanitizer report or a timeout. Usage: tests/fuzz/run.sh [seconds per target, default 20]
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/../.."
seconds=${1:-20}
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
bin=build-fuzz/tests/fuzz
work=$(mktemp -d)
trap 'rm -rf "$work" /tmp/dtb-fuzz-*' EXIT

# Seeds: the shipped files of each kind. The placement target's first byte is the world size.
seed() {  # seed TARGET FILES...: a corpus folder for TARGET
  local dir=$work/$1; shift
  mkdir -p "$dir"
  for f in "$@"; do cp "$f" "$dir/"; done
}
seed fuzz_config configs/model/*.yaml configs/devices/*.yaml
seed fuzz_experiment configs/experiments/*.yaml
seed fuzz_placement tests/fuzz/seeds/placement/*
mkdir -p "$work/fuzz_profile" "$work/fuzz_h5_readers"
for f in configs/net/*.yaml; do  # world size 8, then the profile
  { printf '\x07'; cat "$f"; } > "$work/fuzz_profile/$(basename "$f")"
done

for target in fuzz_config fuzz_profile fuzz_placement fuzz_experiment fuzz_h5_readers; do
  echo "== $target: ${seconds}s"
  # -rss_limit_mb: a config may ask for a big model; the readers allocate only what files hold.
  "$bin/$target" "$work/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/$target-" 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|Done)" || true
  found=("$work/$target-"*)  # crash-, leak-, timeout-, oom- files (nullglob: none, no entries)
  if (( ${#found[@]} )); then
    echo "$target: found a failing input (copy it into tests/fuzz/regressions/$target/):" >&2
    ls -l "${found[@]}" >&2
    exit 1
  fi
  kept=(tests/fuzz/regressions/$target/*)
  if (( ${#kept[@]} )); then
    "$bin/$target" "${kept[@]}" >/dev/null 2>&1 || { echo "$target: a regression input fails" >&2; exit 1; }
  fi
done
echo "fuzz: every target ran ${seconds}s with no crash, leak or sanitizer report"
