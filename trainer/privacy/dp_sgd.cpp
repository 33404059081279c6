#include "privacy/dp_sgd.hpp"

#include <algorithm>
#include <cmath>

#include "data/splitmix64.hpp"

namespace dtb::privacy {
namespace {
constexpr uint64_t kNoiseSalt = 0x6470736764ULL;  // "dpsgd": the noise's stream, apart from data and init
}

double clip_factor(double norm, double clip_norm) { return std::min(1.0, clip_norm / (norm + 1e-6)); }

double gaussian_at(uint64_t seed, int64_t step, uint64_t index) {
  const uint64_t key = splitmix64_at(seed ^ kNoiseSalt, uint64_t(step));
  // u1 in (0, 1] so the log is finite; 53 bits each.
  const double u1 = double((splitmix64_at(key, 2 * index) >> 11) + 1) * 0x1p-53;
  const double u2 = double(splitmix64_at(key, 2 * index + 1) >> 11) * 0x1p-53;
  return std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
}

void add_gaussian_noise(std::span<float> grads, const std::vector<ShardRun>& runs, uint64_t seed, int64_t step,
                        double stddev) {
  for (const ShardRun& r : runs)
    for (size_t i = 0; i < r.len; ++i)
      grads[r.local + i] += float(stddev * gaussian_at(seed, step, r.global + i));
}

}  // namespace dtb::privacy
