#pragma once
// Data-parallel gradient sync in buckets, and the optimizer's share of the buffer.
//
// Buckets are contiguous slices of the flat gradient buffer, cut from its end (which the
// backward finishes first, see stage_model.hpp), at most parallel.bucket_mb each. During
// the last micro-batch's backward each bucket is launched as soon as every gradient in it
// is final. Plain DP allreduces a bucket with the configured algorithm and codec; ZeRO-1
// reduce-scatters it (ring), so DP rank d holds the sum of block d of every bucket
// (collectives/partition.hpp), updates only those elements with moments of its own, and
// allgathers the parameters afterwards.
#include <cstddef>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "codec.hpp"
#include "communicator.hpp"
#include "optim/adamw.hpp"
#include "parallel/stage_model.hpp"
#include "registry.hpp"

namespace dtb::par {

struct Range {
  size_t offset, size;
};

// A piece of the buffer the optimizer updates: OFFSET in params/grads, STATE in the moments.
struct UpdatePiece {
  size_t offset, size, state;
  bool decay;
};

// What a bucket's allreduce carries instead of its floats (secure aggregation,
// privacy/masked_buckets.hpp): mask() runs on the compute thread as the bucket is launched
// (its cost is compute), the allreduce sums the returned wire, unmask() writes the sum back.
class BucketMasker {
 public:
  virtual ~BucketMasker() = default;
  virtual std::span<float> mask(size_t bucket, std::span<const float> grads) = 0;
  virtual void unmask(size_t bucket, std::span<float> grads) = 0;
};

class GradSync {
 public:
  // BUCKET_ELEMS 0 = one bucket; PARAMS: ps servers and gossip rounds.
  // SCOPE: where the codec applies (codec.hpp); ERROR_FEEDBACK: whether it carries its losses.
  GradSync(size_t count, size_t bucket_elems, coll::Communicator* dp, bool zero1,
           const std::string& algo, const std::string& codec, const coll::CollParams& params,
           coll::CodecScope scope = coll::CodecScope::kEverywhere, bool error_feedback = true);

  const std::vector<Range>& buckets() const { return buckets_; }  // from the buffer's end
  // Elements this DP rank reduces (ZeRO: the only ones it holds summed): its block of each bucket.
  const std::vector<Range>& dp_blocks() const { return blocks_; }
  size_t state_size() const;  // moment elements this rank keeps

  void begin_step() { launched_ = 0; }
  void set_masker(BucketMasker* masker) { masker_ = masker; }  // null: plain floats
  // Launches, through LAUNCH (the timeline), every bucket not yet launched that starts at
  // or after LO. READY(0) launches the rest.
  void ready(size_t lo, float* grads, const std::function<void(const std::function<void()>&)>& launch);
  // ZeRO-1: every rank's updated blocks to every DP rank.
  void allgather_params(float* params);
  // ZeRO-1: the full moment vector from the per-rank shards (checkpoints), or back.
  std::vector<float> gather_state(const std::vector<float>& shard);
  std::vector<float> shard_state(const std::vector<float>& full) const;

  std::vector<UpdatePiece> update_pieces(const std::vector<ParamSegment>& segments) const;
  // The elements of this rank's DP blocks that are in OWNED, block by block (the norm's share
  // where it is summed over the world), or of every bucket (where each replica holds them all).
  std::vector<Range> owned_blocks(const std::vector<Range>& owned) const;
  std::vector<Range> owned_buckets(const std::vector<Range>& owned) const;

 private:
  void sync_bucket(float* grads, size_t b);

  std::vector<Range> buckets_, blocks_;
  coll::Communicator* dp_;
  bool zero1_;
  const coll::Algorithm* algo_;
  coll::CollParams params_;
  std::unique_ptr<coll::Codec> codec_;
  coll::CodecScope scope_;
  std::vector<coll::CodecState> codec_state_;  // error feedback, one per bucket
  size_t launched_ = 0;
  BucketMasker* masker_ = nullptr;
};

}  // namespace dtb::par
