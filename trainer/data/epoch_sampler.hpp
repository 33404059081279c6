#pragma once
// The epoch sampler (data.sampler = epoch): a fixed set of training sequences, each with an
// id, visited once per epoch in an order shuffled from (seed, epoch). AQ-SGD keys its
// activation buffers by these ids (parallel/pp_compress.hpp), so a sample must come back.
//
// Sequence i is the window of T+1 tokens starting at token i T (inputs tokens[iT, iT+T),
// targets shifted by one): N = min(data.epoch_samples, (size - 1) / T) disjoint inputs.
// Like TokenSplit::batch it is counter based: global batch b, row r is the sample at
// position p = b B + r of the endless sequence of epochs, epoch p / N, place p % N of that
// epoch's permutation. (seed, batch index) is its whole state, so a checkpoint's
// data_cursor resumes it bitwise in the middle of an epoch, on any layout.
#include <cstdint>
#include <vector>

#include "data/dataset.hpp"

namespace dtb {

// Where the global batch BATCH_INDEX starts in the epochs: for checkpoints and logs.
struct EpochCursor {
  uint64_t epoch = 0, position = 0;  // position: samples of that epoch already drawn
};

class EpochSampler {
 public:
  // SAMPLES = 0 takes every disjoint window of SPLIT; more than fit throws UsageError.
  EpochSampler(const TokenSplit& split, int T, int64_t samples);
  uint64_t size() const { return n_; }  // N, the samples per epoch

  // As TokenSplit::batch (rows [rank B/world, (rank+1) B/world) of global batch
  // BATCH_INDEX), plus each row's sample id in IDS (B/world of them).
  void batch(uint64_t seed, uint64_t batch_index, int B, int rank, int world, int32_t* inputs, int32_t* targets,
             uint32_t* ids);
  EpochCursor cursor(uint64_t batch_index, int B) const;
  // The permutation of [0, N) that epoch EPOCH visits (a Fisher-Yates shuffle drawn from
  // splitmix64_at(seed ^ epoch salt, ...)); kept for the current epoch.
  const std::vector<uint32_t>& order(uint64_t seed, uint64_t epoch);

 private:
  const TokenSplit& split_;
  int T_;
  uint64_t n_;
  uint64_t cached_seed_ = 0, cached_epoch_ = UINT64_MAX;
  std::vector<uint32_t> order_;
};

}  // namespace dtb
