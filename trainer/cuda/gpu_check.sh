#!/usr/bin/env bash
# The CUDA backend's checks on a GPU machine that has the CUDA runtime but not this build's
# other libraries: the GPU tests (test_cuda_kernels, test_cuda_model, test_cuda_train,
# test_nccl where mpirun exists) and dtb-cuda-bench on GPT-2 124M (bf16, then fp32), every
# line they print collected in one file. Run from the repository root, with the CUDA build
# and its libraries (trainer/cuda/carry_libs.sh) carried over; see trainer/cuda/README.md.
#
#   trainer/cuda/gpu_check.sh [BUILD [OUT_FILE]]   # defaults: build-cuda, BUILD/gpu-check.txt
#
# Exit code: 0 when every GPU test passed, 1 when one failed, 77 when none could run (no GPU).
set -uo pipefail

build=${1:-build-cuda}
out=${2:-$build/gpu-check.txt}
repo=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$build" && pwd)
mkdir -p "$(dirname "$out")"
: >"$out"

# The carried libraries (packed by carry_libs.sh --tar, where the folder was too large to
# carry) first; the CUDA Toolkit's from the machine.
if [[ ! -d "$build/carry-libs" && -f "$build/carry-libs.tar.xz" ]]; then
  tar -C "$build" -xJf "$build/carry-libs.tar.xz"
fi
export LD_LIBRARY_PATH="$build/carry-libs:/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The tests' compiled-in paths are this build's on the machine that made it.
export DTB_BINARY="$build/dtbench" DTB_SOURCE_DIR="$repo"

say() { echo "$*" | tee -a "$out"; }

# A library a program cannot find would fail it for a reason that is not the GPU's: name it.
missing_libs() {
  ldd "$1" 2>&1 | grep "not found" || true
}

# Runs one program; its output goes to OUT; records PASS (0), SKIP (77) or FAIL.
failed=0 passed=0
run_test() {
  local name=$1
  shift
  local missing
  missing=$(missing_libs "$1")
  if [[ -n "$missing" ]]; then
    say "FAIL $name: libraries not found (carry them: trainer/cuda/carry_libs.sh): $(echo $missing)"
    failed=$((failed + 1))
    return
  fi
  say "== $name: $*"
  local start=$SECONDS rc
  "$@" >>"$out" 2>&1
  rc=$?
  case $rc in
    0) say "PASS $name ($((SECONDS - start)) s)"; passed=$((passed + 1)) ;;
    77) say "SKIP $name (exit 77: no usable GPU)" ;;
    *) say "FAIL $name (exit $rc)"; failed=$((failed + 1)) ;;
  esac
}

cd "$repo"
say "# gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if command -v nvidia-smi >/dev/null; then
  say "# $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
else
  say "# no nvidia-smi on this machine"
fi

run_test test_cuda_kernels "$build/tests/test_cuda_kernels"
run_test test_cuda_model "$build/tests/test_cuda_model"
run_test test_cuda_train "$build/tests/test_cuda_train"
if command -v mpirun >/dev/null; then
  run_test test_nccl_np1 mpirun --allow-run-as-root -np 1 "$build/tests/test_nccl"
else
  say "NOT RUN test_nccl: no mpirun on this machine (it needs Open MPI's launcher, not only its libraries)"
fi

if [[ $passed -eq 0 && $failed -eq 0 ]]; then
  say "# gpu_check: every test skipped: no usable GPU here, no benchmark run"
  exit 77
fi

# GPT-2 124M (the bench's defaults: B=16, T=1024, 30 timed steps), mixed precision, then fp32.
run_test bench_bf16 "$build/dtb-cuda-bench"
run_test bench_fp32 "$build/dtb-cuda-bench" --precision fp32 -b 8

figures=$(grep -E "^(summary|# device|# model)" "$out")
say "# figures"
say "$figures"
say "# gpu_check: $passed passed, $failed failed (output in $out)"
[[ $failed -eq 0 ]]
