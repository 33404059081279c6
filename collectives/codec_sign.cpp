// 1-bit sign with a scale (signSGD with a magnitude; Bernstein et al. 2018, Karimireddy et
// al. 2019): per bucket, s = mean |x| as a float and one bit per element (set: x >= 0);
// decode gives +s or -s. Per element |error| = | |x_i| - s | <= max |x|, and per bucket
// ||error||^2 = ||x||^2 - len s^2: it never adds energy, and error feedback recovers the
// rest over later calls. 32x smaller than fp32, plus 4 bytes per bucket.
// Layout per bucket: [float s][ceil(len / 8) bytes of bits, LSB first].
//
// onebit: 1-bit Adam's quantizer (DeepSpeed, runtime/comm/nccl.py compressed_allreduce):
// the same bits (set: x >= 0, so 0 and -0 decode to +s, as sign().add_(1).bool() does) with
// one scale over the whole chunk, s = ||x||_2 / sqrt(n) (the RMS, which keeps the chunk's
// energy: n s^2 = ||x||^2), the norm summed in double. DeepSpeed's worker takes one such
// scale over its whole flattened buffer and its server one per chunk; the compressed
// server here takes one per chunk on both sides (compressed_server.hpp).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "codec.hpp"

namespace dtb::coll {
namespace {

class SignCodec final : public Codec {
 public:
  // RMS: 1-bit Adam's scale ||x||_2 / sqrt(n) over the whole chunk (BUCKET unlimited).
  SignCodec(size_t bucket, bool rms) : bucket_(bucket), rms_(rms) {}

  std::string name() const override { return rms_ ? "onebit" : "sign:" + std::to_string(bucket_); }

  size_t encoded_bytes(size_t n) const override {
    const size_t full = n / bucket_, tail = n % bucket_;
    return full * bucket_bytes(bucket_) + (tail ? bucket_bytes(tail) : 0);
  }

  void encode(std::span<const float> in, std::span<std::byte> out, uint64_t) const override {
    detail::check_encoded_size(*this, in.size(), out.size());
    auto scale = [this](std::span<const float> x) {
      double sum = 0;
      for (float v : x) sum += rms_ ? double(v) * v : std::fabs(v);
      return float(rms_ ? std::sqrt(sum) / std::sqrt(double(x.size())) : sum / double(x.size()));
    };
    detail::encode_scaled_buckets(in, out, bucket_, bit_bytes, scale,
                                  [](std::span<const float> x, float, size_t, std::byte* bits) {
      std::fill(bits, bits + bit_bytes(x.size()), std::byte{0});
      for (size_t i = 0; i < x.size(); ++i)
        if (x[i] >= 0) bits[i / 8] |= std::byte(uint8_t(1u << (i % 8)));
    });
  }

  void decode(std::span<const std::byte> in, std::span<float> out, DecodeMode mode) const override {
    detail::check_encoded_size(*this, out.size(), in.size());
    detail::decode_scaled_buckets(in, out.size(), bucket_, bit_bytes,
                                  [&](size_t b0, size_t len, float s, const std::byte* bits) {
      for (size_t i = 0; i < len; ++i) {
        const bool positive = (uint8_t(bits[i / 8]) >> (i % 8)) & 1u;
        detail::apply(mode, out[b0 + i], positive ? s : -s);
      }
    });
  }

  double error_bound(double max_abs) const override { return max_abs; }

  // c_r t_i with t_i = +-1 the same on every rank: every partial sum is C t_i, all of one
  // magnitude, which is exactly the mean.
  float exact_input(int rank, size_t i) const override {
    return float(rank + 1) * (i * 5 % 3 == 0 ? 1.0f : -1.0f);
  }

 private:
  static size_t bit_bytes(size_t len) { return (len + 7) / 8; }  // one bit per element, LSB first
  static size_t bucket_bytes(size_t len) { return sizeof(float) + bit_bytes(len); }
  size_t bucket_;
  bool rms_;
};

}  // namespace

std::unique_ptr<Codec> make_sign_codec(size_t bucket) { return std::make_unique<SignCodec>(bucket, false); }

std::unique_ptr<Codec> make_onebit_codec() {
  return std::make_unique<SignCodec>(std::numeric_limits<size_t>::max(), true);
}

}  // namespace dtb::coll
