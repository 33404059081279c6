#include "parallel/grad_sync.hpp"

#include <algorithm>

#include "algorithms.hpp"
#include "partition.hpp"

namespace dtb::par {

GradSync::GradSync(size_t count, size_t bucket_elems, coll::Communicator* dp, bool zero1,
                   const std::string& algo, const std::string& codec, const coll::CollParams& params,
                   coll::CodecScope scope, bool error_feedback)
    : dp_(dp), zero1_(zero1), algo_(&coll::find_algorithm(coll::Op::kAllreduce, algo)), params_(params),
      codec_(coll::make_codec(codec)), scope_(scope) {
  if (bucket_elems == 0) bucket_elems = std::max<size_t>(count, 1);
  for (size_t hi = count; hi > 0;) {
    const size_t lo = hi > bucket_elems ? hi - bucket_elems : 0;
    buckets_.push_back({lo, hi - lo});
    hi = lo;
  }
  const int p = dp ? dp->size() : 1, r = dp ? dp->rank() : 0;
  for (const Range& b : buckets_) {
    const coll::Range blk = coll::block_range(b.size, p, r);
    blocks_.push_back({b.offset + blk.offset, blk.count});
  }
  codec_state_.resize(buckets_.size());
  for (coll::CodecState& st : codec_state_) st.error_feedback = error_feedback;
}

size_t GradSync::state_size() const {
  if (!zero1_) return buckets_.empty() ? 0 : buckets_.front().offset + buckets_.front().size;
  size_t n = 0;
  for (const Range& b : blocks_) n += b.size;
  return n;
}

void GradSync::sync_bucket(float* grads, size_t b) {
  if (!dp_ || dp_->size() == 1) return;
  const std::span<float> data(grads + buckets_[b].offset, buckets_[b].size);
  const coll::Compression z{codec_.get(), codec_ ? &codec_state_[b] : nullptr, scope_};
  if (zero1_) coll::ring_reduce_scatter(*dp_, data, z);
  else algo_->run(*dp_, data, params_, z);
}

void GradSync::ready(size_t lo, float* grads, const std::function<void(const std::function<void()>&)>& launch) {
  for (; launched_ < buckets_.size() && buckets_[launched_].offset >= lo; ++launched_) {
    const size_t b = launched_;
    if (masker_ && dp_ && dp_->size() > 1) {
      const std::span<float> data(grads + buckets_[b].offset, buckets_[b].size);
      const std::span<float> wire = masker_->mask(b, data);
      launch([this, data, wire, b] {
        algo_->run(*dp_, wire, params_, {});
        masker_->unmask(b, data);
      });
      continue;
    }
    launch([this, grads, b] { sync_bucket(grads, b); });
  }
}

void GradSync::allgather_params(float* params) {
  if (!zero1_ || !dp_ || dp_->size() == 1) return;
  for (const Range& b : buckets_) coll::ring_allgather(*dp_, std::span<float>(params + b.offset, b.size));
}

std::vector<float> GradSync::gather_state(const std::vector<float>& shard) {
  if (!zero1_) return shard;
  const size_t n = buckets_.empty() ? 0 : buckets_.front().offset + buckets_.front().size;
  std::vector<float> full(n, 0.0f);
  size_t k = 0;
  for (const Range& blk : blocks_) {
    std::copy_n(shard.begin() + ptrdiff_t(k), blk.size, full.begin() + ptrdiff_t(blk.offset));
    k += blk.size;
  }
  if (dp_ && dp_->size() > 1)
    for (const Range& b : buckets_) coll::ring_allgather(*dp_, std::span<float>(full.data() + b.offset, b.size));
  return full;
}

std::vector<float> GradSync::shard_state(const std::vector<float>& full) const {
  if (!zero1_) return full;
  std::vector<float> shard;
  for (const Range& blk : blocks_)
    shard.insert(shard.end(), full.begin() + ptrdiff_t(blk.offset), full.begin() + ptrdiff_t(blk.offset + blk.size));
  return shard;
}

// Plain DP: every segment, moments laid out like the parameters. ZeRO-1: the segments cut
// to this rank's blocks, moments packed block after block.
std::vector<UpdatePiece> GradSync::update_pieces(const std::vector<ParamSegment>& segments) const {
  std::vector<UpdatePiece> out;
  if (!zero1_) {
    for (const ParamSegment& s : segments) out.push_back({s.offset, s.size, s.offset, s.decay});
    return out;
  }
  size_t state = 0;
  for (const Range& blk : blocks_) {
    for (const ParamSegment& s : segments) {
      const size_t lo = std::max(s.offset, blk.offset), hi = std::min(s.offset + s.size, blk.offset + blk.size);
      if (lo < hi) out.push_back({lo, hi - lo, state + (lo - blk.offset), s.decay});
    }
    state += blk.size;
  }
  return out;
}

namespace {
// The elements of OWNED inside each of PARTS, part by part.
std::vector<Range> owned_in(const std::vector<Range>& parts, const std::vector<Range>& owned) {
  std::vector<Range> out;
  for (const Range& part : parts)
    for (const Range& o : owned) {
      const size_t lo = std::max(o.offset, part.offset), hi = std::min(o.offset + o.size, part.offset + part.size);
      if (lo < hi) out.push_back({lo, hi - lo});
    }
  return out;
}
}  // namespace

std::vector<Range> GradSync::owned_blocks(const std::vector<Range>& owned) const { return owned_in(blocks_, owned); }
std::vector<Range> GradSync::owned_buckets(const std::vector<Range>& owned) const { return owned_in(buckets_, owned); }

}  // namespace dtb::par
