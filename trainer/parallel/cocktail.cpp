#include "parallel/cocktail.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "codec.hpp"
#include "partition.hpp"

namespace dtb::par {

namespace {

// The scale goes on the wire as fp16, as the reference's scale.half(): the collectives' fp16
// codec rounds it (round to nearest even).
const coll::Codec& fp16() {
  static const std::unique_ptr<coll::Codec> codec = coll::make_codec("fp16");
  return *codec;
}

void put_fp16(float s, std::byte* out) { fp16().encode(std::span<const float>(&s, 1), std::span(out, 2), 0); }
float get_fp16(const std::byte* in) {
  float s = 0;
  fp16().decode(std::span(in, 2), std::span<float>(&s, 1), coll::DecodeMode::kAssign);
  return s;
}

// B-bit fields, little-endian within a byte stream (value i at bits [i B, (i + 1) B)).
void put_bits(std::byte* out, size_t i, int b, uint32_t v) {
  for (int j = 0; j < b; ++j)
    if ((v >> j) & 1u) out[(i * size_t(b) + size_t(j)) / 8] |= std::byte(1u << ((i * size_t(b) + size_t(j)) % 8));
}
uint32_t get_bits(const std::byte* in, size_t i, int b) {
  uint32_t v = 0;
  for (int j = 0; j < b; ++j) {
    const size_t bit = i * size_t(b) + size_t(j);
    v |= uint32_t((std::to_integer<unsigned>(in[bit / 8]) >> (bit % 8)) & 1u) << j;
  }
  return v;
}

size_t mask_bytes(size_t m) { return (m + 7) / 8; }

}  // namespace

size_t CocktailCodec::stride() const { return std::max<size_t>(1, size_t(1.0 / random_ratio)); }
size_t CocktailCodec::subset_size(size_t n) const { return (n + stride() - 1) / stride(); }
size_t CocktailCodec::kept(size_t m) const { return m == 0 ? 0 : std::clamp<size_t>(size_t(topk_ratio * double(m)), 1, m); }

size_t CocktailCodec::wire_bytes(size_t n) const { return message_bytes(subset_size(n)); }

size_t CocktailCodec::message_bytes(size_t m) const {
  const size_t k = kept(m);
  if (bits == 32) return mask_bytes(m) + 4 * k;
  return mask_bytes(m) + (k * size_t(bits) + 7) / 8 + 2 * coll::detail::bucket_count(k, kBucket);
}

// The reference's rolling mask: every s-th element, rolled by one per sync (torch.roll(1)).
std::vector<uint32_t> CocktailCodec::subset(size_t n, uint64_t t) const {
  std::vector<uint32_t> out;
  if (n == 0) return out;
  const size_t s = stride(), shift = size_t(t % n);
  for (size_t j = 0; j < n; j += s) out.push_back(uint32_t((j + shift) % n));
  std::sort(out.begin(), out.end());
  return out;
}

// Layout: the mask (m bits), then b < 32: the fp16 scales of the ceil(k / 128) buckets and
// the k values of b bits each; b = 32: the k fp32 values.
std::vector<std::byte> CocktailCodec::encode(std::span<const float> x) const {
  const size_t m = x.size(), k = kept(m);
  std::vector<std::byte> out(message_bytes(m), std::byte{0});
  // Top-k: the k largest |x|, ties to the lower index, then in index order.
  std::vector<uint32_t> order(m);
  std::iota(order.begin(), order.end(), 0u);
  std::partial_sort(order.begin(), order.begin() + ptrdiff_t(k), order.end(), [&](uint32_t a, uint32_t b) {
    const float fa = std::fabs(x[a]), fb = std::fabs(x[b]);
    return fa != fb ? fa > fb : a < b;
  });
  order.resize(k);
  std::sort(order.begin(), order.end());
  std::vector<float> values(k);
  for (size_t i = 0; i < k; ++i) {
    values[i] = x[order[i]];
    out[order[i] / 8] |= std::byte(1u << (order[i] % 8));
  }
  std::byte* p = out.data() + mask_bytes(m);
  if (bits == 32) {
    std::memcpy(p, values.data(), 4 * k);
    return out;
  }
  const int fbits = bits - 1;
  const float lo = -float(1 << fbits), hi = float((1 << fbits) - 1);
  std::byte* q = p + 2 * coll::detail::bucket_count(k, kBucket);
  for (size_t b0 = 0; b0 < k; b0 += kBucket) {
    const size_t len = std::min(kBucket, k - b0);
    float peak = 0;
    for (size_t i = b0; i < b0 + len; ++i) peak = std::max(peak, std::fabs(values[i]));
    put_fp16(peak, p + 2 * (b0 / kBucket));
    const float scale = get_fp16(p + 2 * (b0 / kBucket)) + 1e-6f;
    for (size_t i = b0; i < b0 + len; ++i) {
      const float v = std::clamp(std::nearbyint(std::ldexp(values[i] / scale, fbits)), lo, hi);
      put_bits(q, i, bits, uint32_t(int32_t(v) - int32_t(lo)));
    }
  }
  return out;
}

std::vector<float> CocktailCodec::decode(std::span<const std::byte> in, size_t m) const {
  const size_t k = kept(m);
  if (in.size() != message_bytes(m)) throw std::logic_error("CocktailCodec::decode: wrong message size");
  std::vector<float> out(m, 0.0f);
  std::vector<uint32_t> idx;
  for (uint32_t j = 0; j < m; ++j)
    if ((std::to_integer<unsigned>(in[j / 8]) >> (j % 8)) & 1u) idx.push_back(j);
  if (idx.size() != k) throw std::logic_error("CocktailCodec::decode: mask does not hold k elements");
  const std::byte* p = in.data() + mask_bytes(m);
  if (bits == 32) {
    for (size_t i = 0; i < k; ++i) std::memcpy(&out[idx[i]], p + 4 * i, 4);
    return out;
  }
  const int fbits = bits - 1;
  const std::byte* q = p + 2 * coll::detail::bucket_count(k, kBucket);
  for (size_t i = 0; i < k; ++i) {
    const float scale = get_fp16(p + 2 * (i / kBucket));
    const float v = float(int32_t(get_bits(q, i, bits)) - (1 << fbits));
    out[idx[i]] = v / float(1 << fbits) * scale;  // the reference's x / (clip_max + 1) * scale
  }
  return out;
}

}  // namespace dtb::par

namespace dtb::par {

double cocktail_bytes_per_rank(const CocktailCodec& codec, double n, int p) {
  if (p <= 1) return 0.0;
  return 2.0 * (p - 1) * double(codec.wire_bytes(size_t(std::ceil(n / p))));
}

CocktailSGD::CocktailSGD(const StrategySettings& s, coll::Communicator& dp, bool error_feedback,
                         std::span<const float> start)
    : codec_{s.random_ratio, s.topk_ratio, s.bits},
      dp_(dp),
      error_feedback_(error_feedback),
      global_(start.begin(), start.end()),
      server_error_(start.size(), 0.0f),
      pending_(start.size(), 0.0f),
      out_(size_t(dp.size())) {
  for (int i = 0; i < dp.size(); ++i) {
    const coll::Range r = coll::block_range(start.size(), dp.size(), i);
    chunks_.push_back({r.offset, r.count});
  }
}

void CocktailSGD::take(std::span<float> params) {
  if (params.size() != global_.size()) throw std::logic_error("CocktailSGD: parameter count changed");
  for (size_t i = 0; i < chunks_.size(); ++i) {
    const Chunk& c = chunks_[i];
    const std::vector<uint32_t> sub = codec_.subset(c.size, syncs_);
    std::vector<float> x(sub.size());
    for (size_t j = 0; j < sub.size(); ++j) x[j] = params[c.offset + sub[j]] - global_[c.offset + sub[j]];
    out_[i] = codec_.encode(x);
    const std::vector<float> sent = codec_.decode(out_[i], sub.size());
    // Error feedback: params - global keeps what was not sent (without: what was lost is dropped).
    for (size_t j = 0; j < sub.size(); ++j) params[c.offset + sub[j]] -= error_feedback_ ? sent[j] : x[j];
  }
  ++syncs_;
  in_flight_ = true;
}

std::vector<std::byte> CocktailSGD::serve(const CocktailCodec& codec, const std::vector<std::vector<std::byte>>& messages,
                                          std::span<const uint32_t> subset, std::span<float> residual,
                                          bool error_feedback) {
  const size_t m = subset.size();
  const float p = float(messages.size());
  std::vector<float> avg(m, 0.0f);
  for (const std::vector<std::byte>& msg : messages) {
    const std::vector<float> d = codec.decode(msg, m);
    for (size_t j = 0; j < m; ++j) avg[j] += d[j] / p;
  }
  if (error_feedback)
    for (size_t j = 0; j < m; ++j) avg[j] += residual[subset[j]];
  std::vector<std::byte> reply = codec.encode(avg);
  if (error_feedback) {
    const std::vector<float> sent = codec.decode(reply, m);
    for (size_t j = 0; j < m; ++j) residual[subset[j]] = avg[j] - sent[j];
  }
  return reply;
}

// The parameter server with p servers (collectives/param_server.cpp's rounds): pushes in
// the staggered order (rank r starts with chunk r + 1), then each server's reply to all.
void CocktailSGD::exchange() {
  const int p = dp_.size(), r = dp_.rank();
  const uint64_t t = syncs_ - 1;  // the sync take() prepared
  const Chunk& own = chunks_[size_t(r)];
  const std::vector<uint32_t> own_subset = codec_.subset(own.size, t);
  std::vector<std::vector<std::byte>> pushed(static_cast<size_t>(p));
  std::vector<coll::Request> requests;
  for (int s = 0; s < p; ++s)
    if (s != r) {
      pushed[size_t(s)].resize(codec_.message_bytes(own_subset.size()));
      requests.push_back(dp_.irecv(s, pushed[size_t(s)]));
    }
  for (int i = 1; i < p; ++i) requests.push_back(dp_.isend((r + i) % p, out_[size_t((r + i) % p)]));
  dp_.wait_all(requests);
  pushed[size_t(r)] = out_[size_t(r)];
  std::vector<std::vector<std::byte>> replies(static_cast<size_t>(p));
  replies[size_t(r)] = serve(codec_, pushed, own_subset,
                             std::span(server_error_).subspan(own.offset, own.size), error_feedback_);
  requests.clear();
  for (int j = 0; j < p; ++j)
    if (j != r) {
      replies[size_t(j)].resize(codec_.wire_bytes(chunks_[size_t(j)].size));
      requests.push_back(dp_.irecv(j, replies[size_t(j)]));
    }
  for (int i = 1; i < p; ++i) requests.push_back(dp_.isend((r + i) % p, replies[size_t(r)]));
  dp_.wait_all(requests);
  for (int j = 0; j < p; ++j) {
    const Chunk& c = chunks_[size_t(j)];
    const std::vector<uint32_t> sub = j == r ? own_subset : codec_.subset(c.size, t);
    const std::vector<float> avg = codec_.decode(replies[size_t(j)], sub.size());
    for (size_t i = 0; i < sub.size(); ++i) pending_[c.offset + sub[i]] = avg[i];
  }
}

void CocktailSGD::land(std::span<float> params) {
  for (size_t i = 0; i < params.size(); ++i) {
    params[i] += pending_[i];
    global_[i] += pending_[i];
  }
  std::fill(pending_.begin(), pending_.end(), 0.0f);
  in_flight_ = false;
}

void CocktailSGD::restore(std::vector<float> global, std::vector<float> server_residual, std::vector<float> pending,
                          int64_t steps_done) {
  const size_t n = global_.size();
  if (global.size() != n || server_residual.size() != n || pending.size() != n)
    throw std::logic_error("CocktailSGD::restore: state of the wrong size");
  global_ = std::move(global);
  server_error_ = std::move(server_residual);
  pending_ = std::move(pending);
  syncs_ = uint64_t(steps_done);  // one sync taken after every step
  in_flight_ = steps_done > 0;
}

}  // namespace dtb::par
