#pragma once
// What the GPU tests share: the skip rule (exit code 77 with the reason where no GPU can
// run them; ctest reports SKIPPED), fresh random inputs with the seed printed, moving
// float vectors to and from the device in the compute type, and the per-tensor comparison
// with a named tolerance that prints `OK name normerr=... maxdiff=...` (llm.c's test
// style) and counts failures. Every test program exits non-zero on any mismatch.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "cuda/availability.hpp"
#include "cuda/check.hpp"
#include "cuda/context.hpp"
#include "cuda/kernels.hpp"

namespace dtb::cuda::test {

constexpr int kSkip = 77;

// Where the GPU cannot be used: prints why and returns true (the caller exits kSkip).
inline bool skip_without_gpu(const char* program) {
  const std::string why = unavailable_reason();
  if (why.empty()) return false;
  std::printf("SKIP %s: %s\n", program, why.c_str());
  return true;
}

// Fresh inputs every run; DTB_TEST_SEED=<n> repeats a run.
inline uint64_t test_seed() {
  if (const char* s = std::getenv("DTB_TEST_SEED")) return std::strtoull(s, nullptr, 10);
  return std::random_device{}() * 0x100000001ULL ^ std::random_device{}();
}

class Random {
 public:
  explicit Random(uint64_t seed) : gen_(seed) {}
  std::vector<double> normal(size_t n, double stddev = 1.0) {
    std::normal_distribution<double> d(0.0, stddev);
    std::vector<double> v(n);
    for (double& x : v) x = d(gen_);
    return v;
  }
  std::vector<int32_t> tokens(size_t n, int vocab) {
    std::uniform_int_distribution<int32_t> d(0, vocab - 1);
    std::vector<int32_t> v(n);
    for (int32_t& x : v) x = d(gen_);
    return v;
  }

 private:
  std::mt19937_64 gen_;
};

// The value a float takes when stored as floatX: the CPU reference gets the inputs the
// GPU sees, so only the computation's own rounding differs.
template <typename floatX>
double stored(double x) {
  if constexpr (sizeof(floatX) == 4)
    return double(float(x));
  else
    return double(__bfloat162float(__float2bfloat16_rn(float(x))));
}
template <typename floatX>
std::vector<double> stored(std::vector<double> v) {
  for (double& x : v) x = stored<floatX>(x);
  return v;
}

// Every transfer goes on the kernels' stream and is waited for: the context's stream is
// non-blocking, so plain cudaMemcpy (the legacy stream) would not be ordered with it.

// A device copy of V in floatX.
template <typename floatX>
DeviceBuffer<floatX> upload(const std::vector<double>& v, cudaStream_t stream) {
  std::vector<float> f(v.begin(), v.end());
  DeviceBuffer<float> staging(f.size());
  DeviceBuffer<floatX> out(f.size());
  cuda_check(cudaMemcpyAsync(staging.get(), f.data(), f.size() * sizeof(float), cudaMemcpyHostToDevice, stream));
  convert(out.get(), staging.get(), f.size(), stream);
  cuda_check(cudaStreamSynchronize(stream));
  return out;
}
inline DeviceBuffer<int32_t> upload_ints(const std::vector<int32_t>& v, cudaStream_t stream) {
  DeviceBuffer<int32_t> out(v.size());
  cuda_check(cudaMemcpyAsync(out.get(), v.data(), v.size() * sizeof(int32_t), cudaMemcpyHostToDevice, stream));
  cuda_check(cudaStreamSynchronize(stream));
  return out;
}

// COUNT elements (all when 0) of a device buffer, as doubles.
template <typename floatX>
std::vector<double> download(const floatX* p, size_t count, cudaStream_t stream) {
  DeviceBuffer<float> staging(count);
  convert(staging.get(), p, count, stream);
  std::vector<float> f(count);
  cuda_check(cudaMemcpyAsync(f.data(), staging.get(), count * sizeof(float), cudaMemcpyDeviceToHost, stream));
  cuda_check(cudaStreamSynchronize(stream));
  return {f.begin(), f.end()};
}
template <typename floatX>
std::vector<double> download(const DeviceBuffer<floatX>& b, cudaStream_t stream) {
  return download(b.get(), b.size(), stream);
}

// Named tolerances: normalized error ||got - want|| / ||want|| (2-norms).
constexpr double kTolFp32 = 1e-6;
constexpr double kTolBf16 = 1e-2;
template <typename floatX>
constexpr double tolerance() {
  return sizeof(floatX) == 4 ? kTolFp32 : kTolBf16;
}
template <typename floatX>
constexpr const char* type_name() {
  return sizeof(floatX) == 4 ? "fp32" : "bf16";
}

class Checker {
 public:
  // Compares GOT with WANT; prints one line; returns whether it passed.
  bool check(const std::string& name, const std::vector<double>& got, const std::vector<double>& want, double tol) {
    double num = 0, den = 0, maxdiff = 0;
    bool finite = got.size() == want.size();
    for (size_t i = 0; finite && i < got.size(); ++i) {
      if (!std::isfinite(got[i])) finite = false;
      const double d = got[i] - want[i];
      num += d * d;
      den += want[i] * want[i];
      maxdiff = std::max(maxdiff, std::abs(d));
    }
    const double err = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
    const bool ok = finite && err <= tol;
    std::printf("%s %-44s normerr=%.3e maxdiff=%.3e (tol %.0e)%s\n", ok ? "OK  " : "FAIL", name.c_str(), err, maxdiff,
                tol,
                finite                      ? ""
                : got.size() != want.size() ? " size mismatch"
                                            : " non-finite");
    if (!ok) ++failures_;
    ++checks_;
    return ok;
  }
  void fail(const std::string& what) {
    std::printf("FAIL %s\n", what.c_str());
    ++failures_;
    ++checks_;
  }
  // The exit code: 0 when every check passed.
  int finish(const char* program) const {
    std::printf("%s: %d checks, %d failed\n", program, checks_, failures_);
    return failures_ == 0 ? 0 : 1;
  }

 private:
  int checks_ = 0, failures_ = 0;
};

}  // namespace dtb::cuda::test
