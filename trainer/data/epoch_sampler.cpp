#include "data/epoch_sampler.hpp"

#include <numeric>
#include <string>

#include "data/splitmix64.hpp"
#include "usage_error.hpp"

namespace dtb {
namespace {

// The epoch's shuffle draws from its own stream, never from the windows' (seed, counter).
constexpr uint64_t kEpochSalt = 0x65706f6368ULL;  // "epoch"

uint64_t checked_samples(const TokenSplit& split, int T, int64_t samples) {
  const uint64_t fit = (split.size() - 1) / uint64_t(T);
  if (samples < 0 || uint64_t(samples) > fit)
    throw UsageError(split.path() + ": data.epoch_samples = " + std::to_string(samples) + " but only " +
                     std::to_string(fit) + " disjoint sequences of T = " + std::to_string(T) +
                     " tokens fit the train split (0 = all of them)");
  return samples == 0 ? fit : uint64_t(samples);
}

}  // namespace

EpochSampler::EpochSampler(const TokenSplit& split, int T, int64_t samples)
    : split_(split), T_(T), n_(checked_samples(split, T, samples)) {}

const std::vector<uint32_t>& EpochSampler::order(uint64_t seed, uint64_t epoch) {
  if (epoch == cached_epoch_ && seed == cached_seed_) return order_;
  order_.resize(n_);
  std::iota(order_.begin(), order_.end(), 0u);
  const uint64_t stream = splitmix64_at(seed ^ kEpochSalt, epoch);
  for (uint64_t i = n_ - 1; i > 0; --i)  // Fisher-Yates: place i takes one of [0, i]
    std::swap(order_[i], order_[uniform_below(splitmix64_at(stream, i), i + 1)]);
  cached_seed_ = seed, cached_epoch_ = epoch;
  return order_;
}

EpochCursor EpochSampler::cursor(uint64_t batch_index, int B) const {
  const uint64_t p = batch_index * uint64_t(B);
  return {p / n_, p % n_};
}

void EpochSampler::batch(uint64_t seed, uint64_t batch_index, int B, int rank, int world, int32_t* inputs,
                         int32_t* targets, uint32_t* ids) {
  if (world < 1 || B % world != 0)
    throw UsageError(split_.path() + ": global batch B = " + std::to_string(B) + " does not divide into " +
                     std::to_string(world) + " data-parallel ranks");
  const int rows = B / world;
  const std::span<const uint32_t> tokens = split_.tokens();
  for (int row = 0; row < rows; ++row) {
    const uint64_t p = batch_index * uint64_t(B) + uint64_t(rank) * rows + row;
    const uint32_t id = order(seed, p / n_)[p % n_];
    const uint32_t* window = tokens.data() + size_t(id) * T_;  // (T+1)
    for (int t = 0; t < T_; ++t) {
      inputs[size_t(row) * T_ + t] = int32_t(window[t]);
      targets[size_t(row) * T_ + t] = int32_t(window[t + 1]);
    }
    ids[row] = id;
  }
}

}  // namespace dtb
