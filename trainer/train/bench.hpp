#pragma once
// `dtbench bench train`: how fast one training step of GPT<float> runs on this CPU, next to
// how fast OpenBLAS runs the very matmuls that step is made of. The ratio says how much of
// the BLAS speed the whole model (LayerNorm, attention, GELU, softmax, memory traffic)
// keeps. Times the whole step: forward, zero_grad + backward, and the optimizer (global
// grad norm, clipping, AdamW).
#include <cstddef>
#include <iosfwd>

#include "cpu/kernels.hpp"
#include "model/gpt2.hpp"

namespace dtb {

struct StepTiming {
  double forward_ms, backward_ms, optimizer_ms;  // means; backward includes zero_grad
  double best_step_ms;  // the fastest step: what a quiet machine gives
  double step_ms() const { return forward_ms + backward_ms + optimizer_ms; }
};

// Runs `warmup` untimed and then `steps` timed steps on synthetic random tokens, each
// with an AdamW update (its moments allocated here, as in training).
StepTiming time_train_steps(GPT<float>& model, int steps, int warmup, KernelMode mode = KernelMode::kFast);

// The BLAS reference: every gemm of one training step at batch B x T (matmul_gemms() of
// each linear layer, forward and backward), each distinct shape timed on its own and
// weighted by how often the step calls it. With blas_threads, as one cblas_sgemm on
// OpenBLAS's own threads (the reference); without, through gemm() as the model runs them.
struct GemmReference {
  int distinct_shapes, calls_per_step;
  double flops_per_step;         // of the gemms alone
  double seconds_per_step;       // from each shape's mean time
  double best_seconds_per_step;  // from each shape's fastest call
  double gflops() const { return flops_per_step / seconds_per_step * 1e-9; }
  double best_gflops() const { return flops_per_step / best_seconds_per_step * 1e-9; }
};
GemmReference time_step_gemms(const GPTConfig& cfg, int B, int T, int reps, bool blas_threads);

// The fastest of REPS calls of one gemm of shape S through gemm() (as the model runs it,
// on the OpenMP threads), in GFLOP/s.
double gemm_gflops(const GemmShape& s, int reps);

// Peak resident set size of this process so far (getrusage), in bytes.
size_t peak_rss_bytes();

// The whole benchmark with its report on `out`. threads <= 0 uses every core. Bad
// arguments throw UsageError. Returns 0.
int run_train_bench(const GPTConfig& cfg, int B, int T, int steps, int threads, std::ostream& out);

}  // namespace dtb
