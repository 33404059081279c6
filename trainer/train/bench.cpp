#include "train/bench.hpp"

#include <cblas.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "cpu/kernels.hpp"
#include "optim/adamw.hpp"
#include "usage_error.hpp"

namespace dtb {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int kWarmupSteps = 2;
constexpr int kGemmReps = 5;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::vector<int32_t> random_tokens(size_t n, int V, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> t(n);
  for (int32_t& x : t) x = int32_t(rng() % uint64_t(V));
  return t;
}

std::vector<float> random_floats(size_t n, std::mt19937_64& rng) {
  std::vector<float> v(n);
  for (float& x : v) x = float(double(rng() >> 11) * 0x1p-53 - 0.5);
  return v;
}

// Distinct gemm shapes of one training step, with the number of calls to each.
std::vector<std::pair<GemmShape, int>> step_gemms(const GPTConfig& cfg, int B, int T) {
  std::vector<std::pair<GemmShape, int>> out;
  for (const LinearShape& l : linear_shapes(cfg))
    for (const GemmShape& s : matmul_gemms(B * T, l.in, l.out, l.bias)) {
      auto it = out.begin();
      while (it != out.end() && !(it->first == s)) ++it;
      if (it == out.end())
        out.push_back({s, l.count});
      else
        it->second += l.count;
    }
  return out;
}

// Mean and fastest seconds of one gemm of shape s, after one untimed call.
std::pair<double, double> time_gemm(const GemmShape& s, int reps, bool blas_threads,
                                    std::mt19937_64& rng) {
  const std::vector<float> a = random_floats(size_t(s.m) * s.k, rng);
  const std::vector<float> b = random_floats(size_t(s.k) * s.n, rng);
  std::vector<float> c = random_floats(size_t(s.m) * s.n, rng);
  auto run = [&] {
    if (blas_threads)
      blas_gemm(s, a.data(), b.data(), c.data());
    else
      gemm(s, a.data(), b.data(), c.data());
  };
  run();
  double sum = 0, best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    run();
    const double t = ms_since(t0) * 1e-3;
    sum += t;
    best = std::min(best, t);
  }
  return {sum / reps, best};
}

double mb(size_t bytes) { return double(bytes) * 1e-6; }

template <typename... Args>
void print(std::ostream& out, const char* format, Args... args) {
  char line[512];
  std::snprintf(line, sizeof line, format, args...);
  out << line;
}

void report(std::ostream& out, const GPT<float>& model, int steps, const StepTiming& t,
            const GemmReference& ref, const GemmReference& own, size_t rss) {
  const GPTConfig& c = model.config();
  const int B = model.batch(), T = model.seq_len();
  const double tokens = double(B) * T, step_flops = model.flops_per_token() * tokens;
  const double mean = step_flops / (t.step_ms() * 1e-3) * 1e-9;
  const double best = step_flops / (t.best_step_ms * 1e-3) * 1e-9;
  print(out,
        "train bench: GPT L=%d NH=%d C=%d V=%d (%.1fM params) | B=%d T=%d | %d threads | "
        "%d steps after %d warm-up\n",
        c.n_layer, c.n_head, c.n_embd, c.vocab_size, model.num_params() * 1e-6, B, T, num_threads(),
        steps, kWarmupSteps);
  print(out,
        "step     %8.1f ms mean (forward %.1f, zero_grad+backward %.1f, AdamW %.1f) | fastest "
        "%.1f ms | %.0f tok/s\n",
        t.step_ms(), t.forward_ms, t.backward_ms, t.optimizer_ms, t.best_step_ms,
        tokens / (t.step_ms() * 1e-3));
  print(out,
        "model    %8.1f GFLOP/s mean | %.1f fastest  (6N+6LCT = %.3f GFLOP/token, %.1f "
        "GFLOP/step)\n",
        mean, best, model.flops_per_token() * 1e-9, step_flops * 1e-9);
  print(out,
        "sgemm    %8.1f GFLOP/s mean | %.1f fastest  OpenBLAS on %d threads, the step's %d "
        "gemm calls (%d shapes, %.1f GFLOP)\n",
        ref.gflops(), ref.best_gflops(), num_threads(), ref.calls_per_step, ref.distinct_shapes,
        ref.flops_per_step * 1e-9);
  print(out,
        "         %8.1f GFLOP/s mean | %.1f fastest  the same calls as the model makes them "
        "(OpenMP blocks)\n",
        own.gflops(), own.best_gflops());
  print(out, "ratio    %8.1f %% of sgemm mean | %.1f %% fastest\n", 100.0 * mean / ref.gflops(),
        100.0 * best / ref.best_gflops());
  const MemoryBreakdown m = memory_breakdown(c, B, T, sizeof(float));
  print(out,
        "memory   params %.1f MB | grads %.1f MB | AdamW m %.1f MB + v %.1f MB | activations "
        "%.1f MB | activation grads %.1f MB = %.1f MB\n",
        mb(m.params), mb(m.grads), mb(m.adam_m), mb(m.adam_v), mb(m.activations),
        mb(m.activation_grads), mb(m.total()));
  print(out, "peak RSS %8.1f MB = %.2fx what the step needs\n", mb(rss),
        double(rss) / double(m.total()));
}

// The reproducible kernels' step beside the fast one (train.kernels), timed in the same run.
void report_kernels(std::ostream& out, const StepTiming& fast, const StepTiming& repro) {
  print(out,
        "kernels  fast %.1f ms mean, %.1f fastest | reproducible %.1f ms mean (forward %.1f, "
        "backward %.1f, AdamW %.1f), %.1f fastest | reproducible / fast %.2fx mean, %.2fx fastest\n",
        fast.step_ms(), fast.best_step_ms, repro.step_ms(), repro.forward_ms, repro.backward_ms,
        repro.optimizer_ms, repro.best_step_ms, repro.step_ms() / fast.step_ms(),
        repro.best_step_ms / fast.best_step_ms);
}

}  // namespace

StepTiming time_train_steps(GPT<float>& model, int steps, int warmup, KernelMode mode) {
  const size_t n = size_t(model.batch()) * model.seq_len();
  const int V = model.config().vocab_size;
  const std::vector<int32_t> inputs = random_tokens(n, V, 1), targets = random_tokens(n, V, 2);
  const size_t n_params = model.num_params();
  std::vector<float> adam_m(n_params, 0.0f), adam_v(n_params, 0.0f);
  const ParamSegment all{0, n_params, true};
  const OptimSettings optim{6e-4, 0.1, 0.9, 0.95, 1e-8, 0.1, 1.0, 0};
  const OptimMath& math = optim_math(mode);  // the optimizer of the model's kernel mode
  StepTiming sum{0, 0, 0, 1e300};
  for (int i = 0; i < warmup + steps; ++i) {
    const auto t0 = Clock::now();
    model.forward(inputs.data(), targets.data());
    const double fwd = ms_since(t0);
    const auto t1 = Clock::now();
    model.zero_grad();
    model.backward();
    const double bwd = ms_since(t1);
    const auto t2 = Clock::now();
    const double norm = std::sqrt(math.sum_of_squares(model.grads(), n_params));
    math.adamw_update(model.params(), model.grads(), adam_m.data(), adam_v.data(), {&all, 1}, optim,
                      optim.lr, i + 1, clip_scale(norm, optim.grad_clip));
    const double opt = ms_since(t2);
    if (i >= warmup)
      sum = {sum.forward_ms + fwd, sum.backward_ms + bwd, sum.optimizer_ms + opt,
             std::min(sum.best_step_ms, fwd + bwd + opt)};
  }
  return {sum.forward_ms / steps, sum.backward_ms / steps, sum.optimizer_ms / steps,
          sum.best_step_ms};
}

GemmReference time_step_gemms(const GPTConfig& cfg, int B, int T, int reps, bool blas_threads) {
  // gemm() sets OpenBLAS back to one thread on its next call.
  if (blas_threads) openblas_set_num_threads(num_threads());
  std::mt19937_64 rng(3);
  GemmReference ref{0, 0, 0, 0, 0};
  for (const auto& [shape, count] : step_gemms(cfg, B, T)) {
    const auto [mean, best] = time_gemm(shape, reps, blas_threads, rng);
    ref.distinct_shapes += 1;
    ref.calls_per_step += count;
    ref.flops_per_step += count * shape.flops();
    ref.seconds_per_step += count * mean;
    ref.best_seconds_per_step += count * best;
  }
  return ref;
}

double gemm_gflops(const GemmShape& s, int reps) {
  std::mt19937_64 rng(7);
  return s.flops() / time_gemm(s, reps, false, rng).second * 1e-9;
}

size_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return size_t(u.ru_maxrss) * 1024;  // Linux reports kilobytes
}

int run_train_bench(const GPTConfig& cfg, int B, int T, int steps, int threads, std::ostream& out) {
  if (steps < 1) throw UsageError("bench train: steps must be >= 1, got " + std::to_string(steps));
  set_num_threads(threads);
  // The model is built and timed first, so that the peak RSS is the model's and not the
  // gemm reference's buffers.
  std::unique_ptr<GPT<float>> model;
  try {
    model = std::make_unique<GPT<float>>(cfg, B, T);
  } catch (const std::invalid_argument& e) {
    throw UsageError(std::string("bench train: ") + e.what());
  }
  model->init_weights(1);
  const StepTiming timing = time_train_steps(*model, steps, kWarmupSteps);
  const size_t rss = peak_rss_bytes();
  const GemmReference own = time_step_gemms(cfg, B, T, kGemmReps, false);
  const GemmReference ref = time_step_gemms(cfg, B, T, kGemmReps, true);
  report(out, *model, steps, timing, ref, own, rss);
  model.reset();
  GPT<float> repro(cfg, B, T, cpu_kernel_set<float>(KernelMode::kReproducible));
  repro.init_weights(1);
  report_kernels(out, timing, time_train_steps(repro, steps, kWarmupSteps, KernelMode::kReproducible));
  return 0;
}

}  // namespace dtb
