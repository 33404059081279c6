// int8 with a scale per bucket (QSGD-style linear quantization). Each bucket of `bucket`
// elements stores s = max|x| / 127 as a float, then one int8 q = round(x / s) per element;
// decode gives q s. Deterministic rounding (to nearest): |error| <= s / 2. Stochastic
// rounding (q = floor(x / s + u), u uniform from the seeded stream): |error| < s and the
// decoded value is unbiased, E[q s] = x, which is what error feedback and averaging over
// many steps want. A bucket of zeros has s = 0 and decodes to zeros.
// Layout per bucket: [float s][int8 q x len]; encoded_bytes(n) = n + 4 ceil(n / bucket).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "codec.hpp"

namespace dtb::coll {
namespace {

class Int8Codec final : public Codec {
 public:
  Int8Codec(size_t bucket, bool stochastic) : bucket_(bucket), stochastic_(stochastic) {}

  std::string name() const override {
    return std::string(stochastic_ ? "int8sr" : "int8") + ":" + std::to_string(bucket_);
  }
  size_t encoded_bytes(size_t n) const override { return n + sizeof(float) * detail::bucket_count(n, bucket_); }

  void encode(std::span<const float> in, std::span<std::byte> out, uint64_t stream) const override {
    detail::check_encoded_size(*this, in.size(), out.size());
    auto scale = [](std::span<const float> x) {
      float max_abs = 0;
      for (float v : x) max_abs = std::max(max_abs, std::fabs(v));
      return max_abs / 127.0f;
    };
    detail::encode_scaled_buckets(in, out, bucket_, payload_bytes, scale,
                                  [&](std::span<const float> x, float s, size_t b0, std::byte* q) {
      for (size_t i = 0; i < x.size(); ++i) {
        // Division, not a multiply by 127 / max: integer multiples of s then divide exactly.
        const float v = s > 0 ? x[i] / s : 0.0f;
        // In double, v + u is exact (24-bit v and u), so -127 + u never rounds up to -126.
        const float r = stochastic_ ? float(std::floor(double(v) + double(detail::uniform01(stream, b0 + i))))
                                    : std::nearbyint(v);
        q[i] = std::byte(uint8_t(int8_t(std::clamp(r, -127.0f, 127.0f))));
      }
    });
  }

  void decode(std::span<const std::byte> in, std::span<float> out, DecodeMode mode) const override {
    detail::check_encoded_size(*this, out.size(), in.size());
    detail::decode_scaled_buckets(in, out.size(), bucket_, payload_bytes,
                                  [&](size_t b0, size_t len, float s, const std::byte* q) {
      for (size_t i = 0; i < len; ++i) detail::apply(mode, out[b0 + i], float(int8_t(uint8_t(q[i]))) * s);
    });
  }

  double error_bound(double max_abs) const override { return max_abs / 127.0 * (stochastic_ ? 1.0 : 0.5); }

  // 127 c_r t_i with t_i in {-1, 0, 1} the same on every rank: a partial sum over ranks is
  // 127 C t_i, so s = C exactly and q = +-127 or 0.
  float exact_input(int rank, size_t i) const override {
    return 127.0f * float(rank + 1) * float(int(i * 7 % 3) - 1);
  }

 private:
  static size_t payload_bytes(size_t len) { return len; }  // one int8 per element
  size_t bucket_;
  bool stochastic_;
};

}  // namespace

std::unique_ptr<Codec> make_int8_codec(size_t bucket, bool stochastic) {
  return std::make_unique<Int8Codec>(bucket, stochastic);
}

}  // namespace dtb::coll
