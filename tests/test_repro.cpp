// train.kernels = reproducible (cpu/kernel_set.hpp). Against independent references: glibc's
// exp, log, cos and pow (within an ulp or two), a gemm written out here in the documented
// order (bitwise), the same kernels' files built a second time for plain x86-64 without AVX
// (tests/CMakeLists.txt: namespace dtb::repro_generic; bitwise), the fast kernels (the same
// math, within a tolerance), and whole `dtbench train` runs at 1 and 2 threads (bitwise),
// whose commitments `dtbench verify` re-runs on another thread count.
#include <catch2/catch.hpp>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <random>
#include <vector>

#include "cpu/kernel_set.hpp"
#include "cpu/repro_math.hpp"
#include "dtbench_runner.hpp"
#include "h5file.hpp"
#include "model/gpt2.hpp"
#include "optim/adamw.hpp"
#include "train/checkpoint.hpp"

// The second build of cpu/repro_kernels.cpp and optim/adamw_repro.cpp (-march=x86-64).
namespace dtb::repro_generic {
template <typename Real>
const dtb::CpuKernels<Real>& kernels();
const char* isa();
const OptimMath& optim_math();
}  // namespace dtb::repro_generic

namespace {

using dtb::KernelMode;
using dtb::CpuKernels;
using dtb::OptimMath;

// Distance in units in the last place between two finite numbers of the same sign.
template <typename Real>
int64_t ulps(Real a, Real b) {
  using Bits = std::conditional_t<sizeof(Real) == 4, int32_t, int64_t>;
  Bits ia, ib;
  std::memcpy(&ia, &a, sizeof a);
  std::memcpy(&ib, &b, sizeof b);
  return ia > ib ? int64_t(ia) - int64_t(ib) : int64_t(ib) - int64_t(ia);
}

template <typename Real>
bool same_bits(const std::vector<Real>& a, const std::vector<Real>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(Real)) == 0;
}

TEST_CASE("repro_math: exp, log, cos(pi t) and b^n within an ulp or two of glibc", "[repro]") {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> wide(-100, 100), pos(-300, 300);
  int64_t worst_expf = 0, worst_exp = 0, worst_logf = 0, worst_log = 0;
  for (int i = 0; i < 200000; ++i) {
    const double x = wide(rng);
    worst_expf = std::max(worst_expf, ulps(dtb::repro_math::exp(float(x)), std::exp(float(x))));
    worst_exp = std::max(worst_exp, ulps(dtb::repro_math::exp(x), std::exp(x)));
    const double y = std::exp(pos(rng));  // positive, over 260 binades
    worst_logf = std::max(worst_logf, ulps(dtb::repro_math::log(float(y)), std::log(float(y))));
    worst_log = std::max(worst_log, ulps(dtb::repro_math::log(y), std::log(y)));
  }
  INFO("worst ulps: expf " << worst_expf << ", exp " << worst_exp << ", logf " << worst_logf << ", log " << worst_log);
  CHECK(worst_expf <= 1);
  CHECK(worst_exp <= 2);
  CHECK(worst_logf <= 1);
  CHECK(worst_log <= 2);
  // The edges: underflow to 0, overflow to inf, exact values, NaN through.
  CHECK(dtb::repro_math::exp(0.0f) == 1.0f);
  CHECK(dtb::repro_math::exp(-200.0f) == 0.0f);
  CHECK(std::isinf(dtb::repro_math::exp(100.0f)));
  CHECK(std::isinf(dtb::repro_math::exp(800.0)));
  CHECK(dtb::repro_math::exp(-std::numeric_limits<float>::infinity()) == 0.0f);
  CHECK(std::isnan(dtb::repro_math::exp(std::numeric_limits<float>::quiet_NaN())));
  CHECK(ulps(dtb::repro_math::exp(-740.0), std::exp(-740.0)) <= 1);  // subnormal result
  CHECK(dtb::repro_math::log(1.0f) == 0.0f);
  CHECK(dtb::repro_math::log(0.0) == -std::numeric_limits<double>::infinity());
  CHECK(std::isnan(dtb::repro_math::log(-1.0)));
  CHECK(ulps(dtb::repro_math::log(4e-320), std::log(4e-320)) <= 2);  // subnormal argument
  for (double t = 0; t <= 1.0; t += 1.0 / 64)
    CHECK(std::abs(dtb::repro_math::cos_pi(t) - std::cos(std::numbers::pi * t)) < 4e-16);
  // Binary powering: each squaring doubles the relative error, about n ulps in all.
  for (int64_t n : {1, 2, 7, 100, 5000})
    CHECK(std::abs(dtb::repro_math::powi(0.95, n) / std::pow(0.95, double(n)) - 1) < 4e-16 * double(n));
}

// c(i, j) [+]= sum over p in increasing order, one float accumulator: the order the
// reproducible gemm documents, written out (this file has no FMA contraction:
// tests/CMakeLists.txt builds it with -ffp-contract=off).
void reference_gemm(const dtb::GemmShape& s, const float* a, const float* b, float* c) {
  for (int i = 0; i < s.m; ++i)
    for (int j = 0; j < s.n; ++j) {
      float acc = 0;
      for (int p = 0; p < s.k; ++p)
        acc += (s.trans_a ? a[size_t(p) * s.m + i] : a[size_t(i) * s.k + p]) *
               (s.trans_b ? b[size_t(j) * s.k + p] : b[size_t(p) * s.n + j]);
      float& out = c[size_t(i) * s.n + j];
      out = s.accumulate ? out + acc : acc;
    }
}

std::vector<float> random_floats(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0, 1);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

TEST_CASE("reproducible gemm: the documented order, bitwise, at 1, 2 and 3 threads, both builds", "[repro]") {
  const CpuKernels<float>& native = dtb::cpu_kernels<float>(KernelMode::kReproducible);
  const CpuKernels<float>& generic = dtb::repro_generic::kernels<float>();
  // Edges that are not whole tiles (4 x 16) or row blocks (256), every transpose, both
  // assignments; 301 x 70 x 200 is above the size that runs on several threads.
  for (const auto& [m, n, k] : {std::array{301, 70, 200}, std::array{5, 17, 3}, std::array{37, 45, 29}})
    for (int variant = 0; variant < 8; ++variant) {
      const dtb::GemmShape s{bool(variant & 1), bool(variant & 2), m, n, k, bool(variant & 4)};
      const auto a = random_floats(size_t(m) * k, 1), b = random_floats(size_t(k) * n, 2);
      const auto c0 = random_floats(size_t(m) * n, 3);
      std::vector<float> want = c0;
      reference_gemm(s, a.data(), b.data(), want.data());
      for (int threads : {1, 2, 3})
        for (const CpuKernels<float>* set : {&native, &generic}) {
          omp_set_num_threads(threads);
          std::vector<float> got = c0;
          set->gemm(s, a.data(), b.data(), got.data());
          INFO("m " << m << " n " << n << " k " << k << " variant " << variant << " threads " << threads
                    << (set == &native ? " native" : " generic"));
          CHECK(same_bits(got, want));
        }
    }
  omp_set_num_threads(2);
}

// What one training step on one rank leaves: its loss, gradient norm and parameters.
struct Steps {
  std::vector<float> losses;
  std::vector<double> norms;
  std::vector<float> params;
};

// STEPS training steps of a small GPT (odd vocabulary; the LM head's gemms large enough to
// run on several threads) with kernel set K and optimizer M on THREADS threads.
Steps train_steps(const CpuKernels<float>& k, const OptimMath& m, int threads, int steps = 3) {
  omp_set_num_threads(threads);
  const dtb::GPTConfig cfg{301, 32, 2, 4, 64, true};
  const int B = 4, T = 32;
  const auto set = dtb::make_cpu_kernel_set(k);
  dtb::GPT<float> model(cfg, B, T, *set);
  model.init_weights(7);
  std::mt19937_64 rng(11);
  std::vector<int32_t> tokens(size_t(B) * T + 1);
  for (int32_t& t : tokens) t = int32_t(rng() % uint64_t(cfg.vocab_size));
  const size_t n = model.num_params();
  std::vector<float> adam_m(n, 0.0f), adam_v(n, 0.0f);
  const dtb::ParamSegment all{0, n, true};
  const dtb::OptimSettings o{1e-3, 0.1, 0.9, 0.95, 1e-8, 0.1, 1.0, 1};
  Steps r;
  for (int step = 0; step < steps; ++step) {
    r.losses.push_back(model.forward(tokens.data(), tokens.data() + 1));
    model.zero_grad();
    model.backward();
    const double norm = std::sqrt(m.sum_of_squares(model.grads(), n));
    r.norms.push_back(norm);
    m.adamw_update(model.params(), model.grads(), adam_m.data(), adam_v.data(), {&all, 1}, o,
                   m.learning_rate(o, step, steps), step + 1, dtb::clip_scale(norm, o.grad_clip));
  }
  r.params.assign(model.params(), model.params() + n);
  omp_set_num_threads(2);
  return r;
}

TEST_CASE("reproducible kernels: the same bits built with and without AVX, at 1 and 2 threads", "[repro]") {
  INFO("native build: " << dtb::repro::isa() << ", generic build: " << dtb::repro_generic::isa());
  CHECK(std::string(dtb::repro_generic::isa()) == "sse2");
  if (__builtin_cpu_supports("avx2")) CHECK(std::string(dtb::repro::isa()) != "sse2");  // two code paths
  const Steps want = train_steps(dtb::cpu_kernels<float>(KernelMode::kReproducible), dtb::optim_math(KernelMode::kReproducible), 1);
  for (int threads : {1, 2}) {
    const Steps native = train_steps(dtb::cpu_kernels<float>(KernelMode::kReproducible), dtb::optim_math(KernelMode::kReproducible), threads);
    const Steps generic = train_steps(dtb::repro_generic::kernels<float>(), dtb::repro_generic::optim_math(), threads);
    INFO("threads " << threads);
    CHECK(same_bits(native.losses, want.losses));
    CHECK(same_bits(native.norms, want.norms));
    CHECK(same_bits(native.params, want.params));
    CHECK(same_bits(generic.losses, want.losses));
    CHECK(same_bits(generic.norms, want.norms));
    CHECK(same_bits(generic.params, want.params));
  }
}

TEST_CASE("reproducible and fast kernels compute the same training steps within rounding", "[repro]") {
  const Steps fast = train_steps(dtb::cpu_kernels<float>(KernelMode::kFast), dtb::optim_math(KernelMode::kFast), 2);
  const Steps repro = train_steps(dtb::cpu_kernels<float>(KernelMode::kReproducible), dtb::optim_math(KernelMode::kReproducible), 2);
  for (size_t i = 0; i < fast.losses.size(); ++i) {
    CHECK(repro.losses[i] == Approx(fast.losses[i]).epsilon(1e-5));
    CHECK(repro.norms[i] == Approx(fast.norms[i]).epsilon(1e-3));
  }
  double maxdiff = 0;
  for (size_t i = 0; i < fast.params.size(); ++i)
    maxdiff = std::max(maxdiff, double(std::abs(repro.params[i] - fast.params[i])));
  INFO("maxdiff " << maxdiff);
  // Three AdamW steps of lr 1e-3 move a weight by up to ~3e-3; rounding differences in the
  // gradients may flip only the smallest updates' last bits.
  CHECK(maxdiff < 1e-4);
  CHECK(maxdiff > 0);  // two different kernel sets, not one run twice
  // The layer kernels the stage reaches only with vocabulary-parallel TP, on one row set.
  const CpuKernels<float>& f = dtb::cpu_kernels<float>(KernelMode::kFast);
  const CpuKernels<float>& r = dtb::cpu_kernels<float>(KernelMode::kReproducible);
  const CpuKernels<float>& g = dtb::repro_generic::kernels<float>();
  const int N = 6, V = 37;
  const auto logits = random_floats(size_t(N) * V, 4);
  const std::vector<int32_t> targets = {0, 5, 36, 12, 20, 1};
  auto lse_of = [&](const CpuKernels<float>& k) {
    std::vector<float> stats(size_t(N) * 3), losses(N), lse(N), probs(size_t(N) * V);
    k.crossentropy_partial(stats.data(), logits.data(), targets.data(), N, dtb::VocabSlice{0, V});
    k.crossentropy_combine(losses.data(), lse.data(), stats.data(), 1, N);
    k.softmax_from_lse(probs.data(), logits.data(), lse.data(), N, V);
    lse.insert(lse.end(), probs.begin(), probs.end());
    return lse;
  };
  const auto lf = lse_of(f), lr = lse_of(r), lg = lse_of(g);
  CHECK(same_bits(lr, lg));
  for (size_t i = 0; i < lf.size(); ++i) CHECK(lr[i] == Approx(lf[i]).epsilon(1e-6));
}

// ------------------------------------------------------------------ through dtbench

std::filesystem::path scratch() {
  static dtb::test::ScratchDir dir("test_repro");
  return dir.path;
}

// The wall clock: the virtual one charges one thread's CPU time and takes train.threads = 1.
std::string train_command(const std::string& name, int threads, const std::string& extra) {
  static const std::string data = dtb::test::prepared_fortunes(scratch());
  const std::string base = (scratch() / name).string();
  return dtb::test::dtbench_binary() + " train --config " + DTB_SOURCE_DIR + "/configs/model/tiny.yaml" +
         " --set data.path=" + data + " --set model.n_layer=2 --set model.n_embd=64 --set train.batch_size=8" +
         " --set train.seq_len=64 --set train.steps=6 --set train.val_every=0 --set train.log_every=100" +
         " --set train.kernels=reproducible --set net.clock=wall --set train.threads=" + std::to_string(threads) +
         " --set train.results=" + base + ".h5 --set train.checkpoint=" + base + "-final.h5" + extra;
}

TEST_CASE("dtbench train, reproducible kernels: bitwise the same losses and parameters at 1 and 2 threads, "
          "and verify re-runs the commitments on 2 threads",
          "[repro]") {
  const std::string ck = (scratch() / "seg").string();
  for (const auto& [name, threads] : {std::pair{"t1", 1}, std::pair{"t2", 2}}) {
    const std::string extra = threads == 1 ? " --set verify.segment=3 --set verify.dir=" + ck : "";
    const auto o = dtb::test::run_shell(train_command(name, threads, extra), scratch());
    INFO(o.err);
    REQUIRE(o.exit_code == 0);
  }
  auto losses = [](const std::string& name) {
    return dtb::h5::File::open_read((scratch() / (name + ".h5")).string()).read<double>("steps/loss");
  };
  const auto l1 = losses("t1"), l2 = losses("t2");
  REQUIRE(l1.size() == 6);
  CHECK(same_bits(l1, l2));
  const auto c1 = dtb::load_checkpoint((scratch() / "t1-final.h5").string());
  const auto c2 = dtb::load_checkpoint((scratch() / "t2-final.h5").string());
  CHECK(same_bits(c1.params, c2.params));
  CHECK(same_bits(c1.adam_v, c2.adam_v));
  // The commitments name the mode, and a verifier on another thread count agrees with them.
  const auto v = dtb::test::run_dtbench("verify --all " + (scratch() / "t1.h5").string() + " --set train.threads=2",
                                        scratch());
  INFO(v.out << v.err);
  CHECK(v.exit_code == 0);
  CHECK(v.out.find("mode reproducible") != std::string::npos);
}

}  // namespace
