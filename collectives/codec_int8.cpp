// int8 (and int4) with a scale per bucket (QSGD-style linear quantization). Each bucket of `bucket`
// elements stores s = max|x| / 127 as a float, then one int8 q = round(x / s) per element;
// decode gives q s. Deterministic rounding (to nearest): |error| <= s / 2. Stochastic
// rounding (q = floor(x / s + u), u uniform from the seeded stream): |error| < s and the
// decoded value is unbiased, E[q s] = x, which is what error feedback and averaging over
// many steps want. A bucket of zeros has s = 0 and decodes to zeros.
// Layout per bucket: [float s][int8 q x len]; encoded_bytes(n) = n + 4 ceil(n / bucket).
// int4 is the same with 7 levels a side (s = max|x| / 7) and two q per byte (low nibble
// first, two's complement): encoded_bytes(n) = ceil(len / 2) per bucket + 4 per bucket.
// It is Streaming DiLoCo's and INTELLECT-1-style 4-bit pseudo-gradient compression.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "codec.hpp"

namespace dtb::coll {
namespace {

class IntCodec final : public Codec {
 public:
  // BITS: 8 or 4; levels = 2^(bits-1) - 1 a side.
  IntCodec(int bits, size_t bucket, bool stochastic)
      : bits_(bits), levels_(float((1 << (bits - 1)) - 1)), bucket_(bucket), stochastic_(stochastic) {}

  std::string name() const override {
    return "int" + std::to_string(bits_) + (stochastic_ ? "sr" : "") + ":" + std::to_string(bucket_);
  }
  size_t encoded_bytes(size_t n) const override {
    const size_t full = n / bucket_, tail = n % bucket_;
    return full * payload(bucket_) + (tail ? payload(tail) : 0) + sizeof(float) * detail::bucket_count(n, bucket_);
  }

  void encode(std::span<const float> in, std::span<std::byte> out, uint64_t stream) const override {
    detail::check_encoded_size(*this, in.size(), out.size());
    auto scale = [&](std::span<const float> x) {
      float max_abs = 0;
      for (float v : x) max_abs = std::max(max_abs, std::fabs(v));
      return max_abs / levels_;
    };
    detail::encode_scaled_buckets(in, out, bucket_, bits_ == 8 ? payload8 : payload4, scale,
                                  [&](std::span<const float> x, float s, size_t b0, std::byte* q) {
      if (bits_ == 4) std::fill_n(q, payload4(x.size()), std::byte{0});
      for (size_t i = 0; i < x.size(); ++i) {
        // Division, not a multiply by levels / max: integer multiples of s then divide exactly.
        const float v = s > 0 ? x[i] / s : 0.0f;
        // In double, v + u is exact (24-bit v and u), so -levels + u never rounds up.
        const float r = stochastic_ ? float(std::floor(double(v) + double(detail::uniform01(stream, b0 + i))))
                                    : std::nearbyint(v);
        const int8_t k = int8_t(std::clamp(r, -levels_, levels_));
        if (bits_ == 8) q[i] = std::byte(uint8_t(k));
        else q[i / 2] |= std::byte(uint8_t((uint8_t(k) & 0xF) << (4 * (i % 2))));
      }
    });
  }

  void decode(std::span<const std::byte> in, std::span<float> out, DecodeMode mode) const override {
    detail::check_encoded_size(*this, out.size(), in.size());
    detail::decode_scaled_buckets(in, out.size(), bucket_, bits_ == 8 ? payload8 : payload4,
                                  [&](size_t b0, size_t len, float s, const std::byte* q) {
      for (size_t i = 0; i < len; ++i) detail::apply(mode, out[b0 + i], float(level(q, i)) * s);
    });
  }

  double error_bound(double max_abs) const override { return max_abs / levels_ * (stochastic_ ? 1.0 : 0.5); }

  // levels c_r t_i with t_i in {-1, 0, 1} the same on every rank: a partial sum over ranks
  // is levels C t_i, so s = C exactly and q = +-levels or 0.
  float exact_input(int rank, size_t i) const override {
    return levels_ * float(rank + 1) * float(int(i * 7 % 3) - 1);
  }

 private:
  size_t payload(size_t len) const { return bits_ == 8 ? payload8(len) : payload4(len); }
  static size_t payload8(size_t len) { return len; }            // one int8 per element
  static size_t payload4(size_t len) { return (len + 1) / 2; }  // two per byte
  int level(const std::byte* q, size_t i) const {
    if (bits_ == 8) return int8_t(uint8_t(q[i]));
    const int nibble = (uint8_t(q[i / 2]) >> (4 * (i % 2))) & 0xF;
    return nibble >= 8 ? nibble - 16 : nibble;  // two's complement
  }
  int bits_;
  float levels_;
  size_t bucket_;
  bool stochastic_;
};

}  // namespace

std::unique_ptr<Codec> make_int8_codec(size_t bucket, bool stochastic) {
  return std::make_unique<IntCodec>(8, bucket, stochastic);
}

std::unique_ptr<Codec> make_int4_codec(size_t bucket) { return std::make_unique<IntCodec>(4, bucket, false); }

}  // namespace dtb::coll
