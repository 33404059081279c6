// AQ-SGD's k-bit bucket quantizer (DS3Lab AC-SGD, compress/fixpoint.py,
// _compress_nbits_by_bucket with scale_method 'max', deterministic rounding), the data-
// parallel path's quantizer (compressed_server.hpp). Per bucket of up to BUCKET = 512
// values, with f = bits - 1:
//   s  = fp16(max |x|)                         the scale, stored as fp16 (AQ-SGD: .half())
//   d  = fp16(s + 1e-6)                        AQ-SGD divides by scale + 1e-6 in fp16
//   q  = clip(round(x / d 2^f), -2^f, 2^f - 1)  round half to even (torch.round)
//   x' = q / 2^f s                              decoded
// So |x - x'| <= s 2^-(f+1) (+ fp16 rounding of s) for |x| < s, and x = max|x| itself
// clips to (2^f - 1) / 2^f s. Stored as [fp16 s][q + 2^f in BITS bits, LSB first].
// Differences from AC-SGD: buckets are contiguous runs of 512 (AC-SGD's x.view(512, -1)
// puts elements with the same index mod n / 512 in one bucket: a strided bucket of 512;
// the count per scale is the same), and a scale beyond 65504 saturates (fp16 inf in AC-SGD).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "codec.hpp"

namespace dtb::coll {
namespace {

class KbitCodec final : public Codec {
 public:
  KbitCodec(int bits, size_t bucket) : bits_(bits), half_(float(1 << (bits - 1))), bucket_(bucket) {
    if (bits < 2 || bits > 8) throw std::invalid_argument("kbit codec: bits must be in [2, 8] (or 32: fp32)");
  }

  std::string name() const override { return "kbit" + std::to_string(bits_) + ":" + std::to_string(bucket_); }

  size_t encoded_bytes(size_t n) const override {
    const size_t full = n / bucket_, tail = n % bucket_;
    return full * bucket_bytes(bucket_) + (tail ? bucket_bytes(tail) : 0);
  }

  void encode(std::span<const float> in, std::span<std::byte> out, uint64_t) const override {
    detail::check_encoded_size(*this, in.size(), out.size());
    std::byte* p = out.data();
    for (size_t b0 = 0; b0 < in.size(); b0 += bucket_) {
      const std::span<const float> x = in.subspan(b0, std::min(bucket_, in.size() - b0));
      float max_abs = 0;
      for (float v : x) max_abs = std::max(max_abs, std::fabs(v));
      const uint16_t s = detail::float_to_fp16(max_abs);
      const float d = detail::fp16_to_float(detail::float_to_fp16(detail::fp16_to_float(s) + 1e-6f));
      p[0] = std::byte(s & 0xff), p[1] = std::byte(s >> 8);
      std::byte* q = p + 2;
      std::fill_n(q, payload(x.size()), std::byte{0});
      for (size_t i = 0; i < x.size(); ++i) {
        const float r = std::clamp(std::nearbyint(std::ldexp(x[i] / d, bits_ - 1)), -half_, half_ - 1.0f);
        put(q, i, uint32_t(int(r) + int(half_)));
      }
      p += bucket_bytes(x.size());
    }
  }

  void decode(std::span<const std::byte> in, std::span<float> out, DecodeMode mode) const override {
    detail::check_encoded_size(*this, out.size(), in.size());
    const std::byte* p = in.data();
    for (size_t b0 = 0; b0 < out.size(); b0 += bucket_) {
      const size_t len = std::min(bucket_, out.size() - b0);
      const float s = detail::fp16_to_float(uint16_t(uint8_t(p[0]) | (uint16_t(uint8_t(p[1])) << 8)));
      for (size_t i = 0; i < len; ++i)
        detail::apply(mode, out[b0 + i], (float(int(get(p + 2, i)) - int(half_)) / half_) * s);
      p += bucket_bytes(len);
    }
  }

  // The clipped top level: max |x| - (2^f - 1) / 2^f s = s 2^-f, plus fp16's rounding of s.
  double error_bound(double max_abs) const override { return max_abs / half_ + max_abs * 0x1p-10 + 0x1p-24; }

  // Not a net.codec: no collective test sums these; its tests use a hand-written reference.
  float exact_input(int, size_t) const override { return 0.0f; }

 private:
  size_t payload(size_t len) const { return (len * size_t(bits_) + 7) / 8; }
  size_t bucket_bytes(size_t len) const { return 2 + payload(len); }
  void put(std::byte* q, size_t i, uint32_t v) const {  // BITS bits at bit i BITS, LSB first
    for (int k = 0; k < bits_; ++k)
      if ((v >> k) & 1u) {
        const size_t bit = i * size_t(bits_) + size_t(k);
        q[bit / 8] |= std::byte(uint8_t(1u << (bit % 8)));
      }
  }
  uint32_t get(const std::byte* q, size_t i) const {
    uint32_t v = 0;
    for (int k = 0; k < bits_; ++k) {
      const size_t bit = i * size_t(bits_) + size_t(k);
      v |= uint32_t((uint8_t(q[bit / 8]) >> (bit % 8)) & 1u) << k;
    }
    return v;
  }
  int bits_;
  float half_;  // 2^f
  size_t bucket_;
};

// BITS = 32: the values as they are (fp32, no scale): QuantizedAdam's lossless setting, so
// that its run can be compared with Adam on the exactly averaged momentum. Encoding and
// decoding are copies; with error feedback the residuals stay exactly zero.
class Fp32Codec final : public Codec {
 public:
  std::string name() const override { return "fp32"; }
  size_t encoded_bytes(size_t n) const override { return n * sizeof(float); }
  void encode(std::span<const float> in, std::span<std::byte> out, uint64_t) const override {
    detail::check_encoded_size(*this, in.size(), out.size());
    std::memcpy(out.data(), in.data(), out.size());
  }
  void decode(std::span<const std::byte> in, std::span<float> out, DecodeMode mode) const override {
    detail::check_encoded_size(*this, out.size(), in.size());
    for (size_t i = 0; i < out.size(); ++i) {
      float v;
      std::memcpy(&v, in.data() + i * sizeof v, sizeof v);
      detail::apply(mode, out[i], v);
    }
  }
  double error_bound(double) const override { return 0.0; }
  float exact_input(int, size_t) const override { return 0.0f; }
};

}  // namespace

std::unique_ptr<Codec> make_kbit_codec(int bits, size_t bucket) {
  if (bits == 32) return std::make_unique<Fp32Codec>();
  return std::make_unique<KbitCodec>(bits, bucket);
}

}  // namespace dtb::coll
