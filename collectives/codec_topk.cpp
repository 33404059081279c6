// top-k sparsification: the k = ceil(ratio n) elements of largest magnitude are sent
// exactly (as uint32 index + float value), the others as 0. Per element the error is
// |x_i| for a dropped element (so <= the k-th largest magnitude <= max |x|), and the
// dropped mass is the smallest: ||error||^2 <= (1 - k/n) ||x||^2. Without error feedback
// small gradients would never be sent; with it they accumulate until they are.
// Ties are broken by the lower index, so the selection is deterministic.
// Layout: [uint32 index x k][float value x k], indices ascending.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "codec.hpp"

namespace dtb::coll {
namespace {

class TopkCodec final : public Codec {
 public:
  explicit TopkCodec(double ratio) : ratio_(ratio) {}

  std::string name() const override {
    char buf[32];
    std::snprintf(buf, sizeof buf, "topk:%g", ratio_);
    return buf;
  }
  size_t encoded_bytes(size_t n) const override { return keep(n) * (sizeof(uint32_t) + sizeof(float)); }

  void encode(std::span<const float> in, std::span<std::byte> out, uint64_t) const override {
    detail::check_encoded_size(*this, in.size(), out.size());
    if (in.size() > UINT32_MAX) throw std::length_error("topk: chunks are limited to 2^32 elements");
    const size_t k = keep(in.size());
    if (k == 0) return;
    std::vector<uint32_t> index(in.size());
    std::iota(index.begin(), index.end(), 0u);
    auto larger = [&](uint32_t a, uint32_t b) {
      const float fa = std::fabs(in[a]), fb = std::fabs(in[b]);
      return fa > fb || (fa == fb && a < b);
    };
    std::nth_element(index.begin(), index.begin() + ptrdiff_t(k), index.end(), larger);
    index.resize(k);
    std::sort(index.begin(), index.end());
    std::memcpy(out.data(), index.data(), k * sizeof(uint32_t));
    std::byte* values = out.data() + k * sizeof(uint32_t);
    for (size_t j = 0; j < k; ++j) std::memcpy(values + j * sizeof(float), &in[index[j]], sizeof(float));
  }

  void decode(std::span<const std::byte> in, std::span<float> out, DecodeMode mode) const override {
    detail::check_encoded_size(*this, out.size(), in.size());
    if (mode == DecodeMode::kAssign) std::fill(out.begin(), out.end(), 0.0f);
    const size_t k = keep(out.size());
    const std::byte* values = in.data() + k * sizeof(uint32_t);
    for (size_t j = 0; j < k; ++j) {
      uint32_t i;
      float v;
      std::memcpy(&i, in.data() + j * sizeof(uint32_t), sizeof i);
      std::memcpy(&v, values + j * sizeof(float), sizeof v);
      if (i >= out.size()) throw std::runtime_error("topk: corrupt index in a received chunk");
      detail::apply(mode == DecodeMode::kAssign ? DecodeMode::kAdd : mode, out[i], v);
    }
  }

  double error_bound(double max_abs) const override { return max_abs; }

  // Raw-family values on every m-th element only, m = ceil(1 / ratio): a chunk of n
  // elements then holds at most ceil(n / m) <= k nonzeros, in every rank's input and in
  // every partial sum, so all of them are kept.
  float exact_input(int rank, size_t i) const override {
    const size_t m = size_t(std::ceil(1.0 / ratio_));
    return i % m == 0 ? coll::exact_input(nullptr, rank, i) : 0.0f;
  }

 private:
  size_t keep(size_t n) const { return n == 0 ? 0 : std::min(n, size_t(std::ceil(ratio_ * double(n)))); }
  double ratio_;
};

}  // namespace

std::unique_ptr<Codec> make_topk_codec(double ratio) { return std::make_unique<TopkCodec>(ratio); }

}  // namespace dtb::coll
