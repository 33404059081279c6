#pragma once
// Secure aggregation on the trainer's DP buckets (parallel/grad_sync.hpp's BucketMasker):
// each bucket is masked on the compute thread, allreduced as limbs, unmasked where the sum
// lands. The step and the bucket index pick the masks, so every DP rank masks the same
// bucket with the same pairwise streams.
#include <atomic>
#include <vector>

#include "parallel/grad_sync.hpp"
#include "privacy/secure_agg.hpp"

namespace dtb::privacy {

class MaskedBuckets final : public par::BucketMasker {
 public:
  MaskedBuckets(SecureAggregator& agg, const std::vector<par::Range>& buckets);
  void begin_step(int64_t step) { step_ = step; }
  std::span<float> mask(size_t bucket, std::span<const float> grads) override;
  void unmask(size_t bucket, std::span<float> grads) override;
  // After the DP sync: the rank count of the first refused sum (-1: every sum was whole).
  int refused_count() const { return refused_.load(); }
  size_t wire_floats() const;  // floats sent per step per allreduce input (all buckets)

 private:
  SecureAggregator& agg_;
  std::vector<std::vector<float>> wire_;  // per bucket
  int64_t step_ = 0;
  std::atomic<int> refused_{-1};
};

}  // namespace dtb::privacy
