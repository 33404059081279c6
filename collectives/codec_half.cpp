// fp16 and bf16: each float is rounded to the nearest 16-bit float (ties to even).
//   fp16 (1-5-10): relative error <= 2^-11 for |x| in [2^-14, 65504], absolute <= 2^-25
//        below (subnormals); beyond 65504 it saturates at +-65504 instead of becoming inf,
//        so a large gradient is clipped rather than poisoning the sum.
//   bf16 (1-8-7): fp32's exponent range, relative error <= 2^-8 (absolute <= 2^-134 for
//        fp32 subnormals); values that would round past the largest bf16 saturate too.
// The conversions are written out (not _Float16) so that they are the same bits on every
// compiler and CPU.
#include <bit>
#include <cmath>
#include <cstring>

#include "codec.hpp"

namespace dtb::coll {
namespace detail {

uint16_t float_to_fp16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;           // NaN stays NaN
  if (a >= 0x477fe000u) return sign | 0x7bffu;          // >= 65504: saturate
  if (a < 0x38800000u) {                                // below 2^-14: a subnormal half
    const float scaled = std::bit_cast<float>(a) * 0x1p24f;  // exact: a power-of-two scale
    return sign | uint16_t(std::lrint(scaled));         // 1024 correctly becomes 2^-14
  }
  uint32_t r = a - 0x38000000u;                          // rebias the exponent: 127 -> 15
  r += 0xfffu + ((r >> 13) & 1u);                        // round the low 13 bits, ties to even
  return sign | uint16_t(r >> 13);
}

float fp16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0) return std::bit_cast<float>(sign | std::bit_cast<uint32_t>(float(man) * 0x1p-24f));
  if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (man << 13));
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (man << 13));
}

}  // namespace detail

namespace {
using detail::float_to_fp16;
using detail::fp16_to_float;

uint16_t float_to_bf16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);  // quiet NaN
  const uint32_t r = x + 0x7fffu + ((x >> 16) & 1u);                       // ties to even
  const bool was_finite = (x & 0x7f800000u) != 0x7f800000u;
  if (was_finite && (r & 0x7f800000u) == 0x7f800000u) return uint16_t(((x >> 16) & 0x8000u) | 0x7f7fu);
  return uint16_t(r >> 16);
}

float bf16_to_float(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

struct Fp16 {
  static constexpr const char* kName = "fp16";
  static uint16_t encode(float f) { return float_to_fp16(f); }
  static float decode(uint16_t h) { return fp16_to_float(h); }
  static double bound(double m) {
    if (m > 65504.0) return m - 65504.0 + 65504.0 * 0x1p-11;
    return m * 0x1p-11 + 0x1p-25;
  }
  static constexpr int kExactLimit = 2048;  // every integer up to 2^11 is an fp16
};

struct Bf16 {
  static constexpr const char* kName = "bf16";
  static uint16_t encode(float f) { return float_to_bf16(f); }
  static float decode(uint16_t h) { return bf16_to_float(h); }
  static double bound(double m) { return m * 0x1p-8 + 0x1p-134; }
  static constexpr int kExactLimit = 256;  // every integer up to 2^8 is a bf16
};

template <typename Format>
class HalfCodec final : public Codec {
 public:
  std::string name() const override { return Format::kName; }
  size_t encoded_bytes(size_t n) const override { return 2 * n; }

  void encode(std::span<const float> in, std::span<std::byte> out, uint64_t) const override {
    detail::check_encoded_size(*this, in.size(), out.size());
    for (size_t i = 0; i < in.size(); ++i) {
      const uint16_t h = Format::encode(in[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }

  void decode(std::span<const std::byte> in, std::span<float> out, DecodeMode mode) const override {
    detail::check_encoded_size(*this, out.size(), in.size());
    for (size_t i = 0; i < out.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, in.data() + 2 * i, 2);
      detail::apply(mode, out[i], Format::decode(h));
    }
  }

  double error_bound(double max_abs) const override { return Format::bound(max_abs); }

  float exact_input(int rank, size_t i) const override {
    static_assert(8 * 8 <= Format::kExactLimit);  // the raw family's sums stay in range
    return coll::exact_input(nullptr, rank, i);
  }
};

}  // namespace

std::unique_ptr<Codec> make_fp16_codec() { return std::make_unique<HalfCodec<Fp16>>(); }
std::unique_ptr<Codec> make_bf16_codec() { return std::make_unique<HalfCodec<Bf16>>(); }

}  // namespace dtb::coll
