#include "privacy/masked_buckets.hpp"

namespace dtb::privacy {

MaskedBuckets::MaskedBuckets(SecureAggregator& agg, const std::vector<par::Range>& buckets) : agg_(agg) {
  for (const par::Range& b : buckets) wire_.emplace_back(SecureAggregator::wire_size(b.size));
}

std::span<float> MaskedBuckets::mask(size_t bucket, std::span<const float> grads) {
  std::vector<float>& w = wire_[bucket];
  agg_.mask(uint64_t(step_), uint32_t(bucket), grads, w);
  return w;
}

// On the comm thread: a refused sum leaves the gradient as it was and is reported after
// the join (the loop stops there, on every rank, since every rank sees the same sum).
void MaskedBuckets::unmask(size_t bucket, std::span<float> grads) {
  if (!agg_.unmask(wire_[bucket], grads)) {
    int none = -1;
    refused_.compare_exchange_strong(none, SecureAggregator::parties_in(wire_[bucket]));
  }
}

size_t MaskedBuckets::wire_floats() const {
  size_t n = 0;
  for (const auto& w : wire_) n += w.size();
  return n;
}

}  // namespace dtb::privacy
