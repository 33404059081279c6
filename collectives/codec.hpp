#pragma once
// Codecs: a chunk of float32 is compressed before it is sent and decompressed on receipt.
// Any algorithm uses them through FloatWire (wire.hpp), which also applies error feedback:
// what a chunk's encoding lost is kept in the caller-owned CodecState and added to that
// chunk's next send, so over many calls nothing is lost (EF-SGD; Karimireddy et al. 2019).
//
// Per element, for finite input x with M = max_j |x_j| over the encoded chunk (each
// codec's file explains its bound; the tests check each one):
//   fp16     round to nearest even, saturating at +-65504:
//            |e_i| <= 2^-11 |x_i| (normals), <= 2^-25 (subnormals); error_bound(M) = M 2^-11 + 2^-25
//   bf16     round to nearest even: |e_i| <= 2^-8 |x_i| (+ 2^-134 for fp32 subnormals)
//   int8     a scale s = M_b / 127 per bucket b of `bucket` elements, q = round(x / s):
//            |e_i| <= s/2 (deterministic), < s (stochastic, unbiased: E[decode] = x)
//   int4     the same with s = M_b / 7, two values per byte: |e_i| <= s/2
//   topk     the k = ceil(ratio n) largest |x_i| of the chunk exactly, the rest 0:
//            |e_i| <= |x_i| <= M, and ||e||^2 <= (1 - k/n) ||x||^2
//   sign     one bit per element and a scale s = mean |x| per bucket, decoded +-s:
//            |e_i| = | |x_i| - s | <= M, and ||e||^2 = ||x||^2 - len s^2 per bucket
// Non-finite inputs are not supported.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace dtb::coll {

enum class DecodeMode { kAssign, kAdd, kSubtract };  // out = / += / -= decoded values

class Codec {
 public:
  virtual ~Codec() = default;
  virtual std::string name() const = 0;  // the spec that makes it again, e.g. "topk:0.01"
  // Encoded size of N floats: a function of N only, so a receiver knows what comes.
  virtual size_t encoded_bytes(size_t n) const = 0;
  // Writes exactly encoded_bytes(in.size()) bytes. STREAM selects the random numbers of
  // stochastic rounding: the same input and stream give the same bytes.
  virtual void encode(std::span<const float> in, std::span<std::byte> out, uint64_t stream) const = 0;
  virtual void decode(std::span<const std::byte> in, std::span<float> out, DecodeMode mode) const = 0;
  // The per-element bound above for a chunk with max |x_j| <= MAX_ABS (exact arithmetic;
  // fp32 rounding of the scale adds a few ulps).
  virtual double error_bound(double max_abs) const = 0;
  // Integer-valued test inputs on which this codec is lossless, also after summing over up
  // to 8 ranks and for any chunking: the exactly known results of the correctness checks.
  virtual float exact_input(int rank, size_t i) const = 0;
};

// The caller keeps one per buffer (a DP bucket, a benchmark buffer) across calls.
struct CodecState {
  std::vector<float> residual;  // error feedback: what earlier encodings lost, per element
  bool error_feedback = true;
  uint64_t seed = 1;            // stochastic rounding
  uint64_t calls = 0;           // collective calls so far; advances the random stream
};

// Where a codec applies. Only the hierarchical allreduce has levels to choose from: with
// kAcrossSites its trees inside a site move raw fp32 and only the site leaders' ring (the
// bytes that cross sites) is compressed; every other algorithm compresses every message
// (the trainer refuses kAcrossSites with them, train_config.cpp).
enum class CodecScope { kEverywhere, kAcrossSites };

// What a collective call compresses with: CODEC null means raw fp32 (no copies at all);
// STATE null means no error feedback.
struct Compression {
  const Codec* codec = nullptr;
  CodecState* state = nullptr;
  CodecScope scope = CodecScope::kEverywhere;
};
// "everywhere" | "across_sites"; anything else throws dtb::UsageError.
CodecScope parse_codec_scope(const std::string& name);

// "none" (returns null), "fp16", "bf16", "int8[:BUCKET]", "int8sr[:BUCKET]" (stochastic
// rounding), "int4[:BUCKET]", "topk[:RATIO]", "sign[:BUCKET]". Anything else throws dtb::UsageError.
std::unique_ptr<Codec> make_codec(const std::string& spec);
extern const char* const kCodecHelp;  // the list above, for --help and errors

// The exact inputs of CODEC, or of raw fp32 when CODEC is null: small integers whose sums
// over 8 ranks stay exact in fp16 and bf16.
float exact_input(const Codec* codec, int rank, size_t i);

// Factories, one per codec file.
std::unique_ptr<Codec> make_fp16_codec();
std::unique_ptr<Codec> make_bf16_codec();
std::unique_ptr<Codec> make_int8_codec(size_t bucket, bool stochastic);
std::unique_ptr<Codec> make_int4_codec(size_t bucket);
std::unique_ptr<Codec> make_topk_codec(double ratio);
std::unique_ptr<Codec> make_sign_codec(size_t bucket);
// The compressed server's quantizers (compressed_server.hpp), not net.codec choices:
// 1-bit Adam's sign with one scale ||x||_2 / sqrt(n) over the whole chunk (codec_sign.cpp),
// AQ-SGD's BITS-bit buckets with an fp16 max scale (codec_kbit.cpp); BITS = 32: fp32 as it is.
std::unique_ptr<Codec> make_onebit_codec();
std::unique_ptr<Codec> make_kbit_codec(int bits, size_t bucket = 512);

namespace detail {
// IEEE fp16 (round to nearest even, saturating at +-65504), written out (codec_half.cpp).
uint16_t float_to_fp16(float f);
float fp16_to_float(uint16_t h);
// out (op)= v, as MODE says.
inline void apply(DecodeMode mode, float& out, float v) {
  if (mode == DecodeMode::kAssign) out = v;
  else if (mode == DecodeMode::kAdd) out += v;
  else out -= v;
}
// A uniform float in [0, 1) with 24 random bits, a pure function of (STREAM, I).
float uniform01(uint64_t stream, uint64_t i);
uint64_t mix64(uint64_t z);
// How many buckets of SIZE elements a chunk of N elements has (the last may be short).
inline size_t bucket_count(size_t n, size_t size) { return (n + size - 1) / size; }
void check_encoded_size(const Codec& codec, size_t n, size_t bytes);

// The layout int8 and sign share: buckets of up to BUCKET values, each stored as a float
// scale followed by PAYLOAD_BYTES(len) bytes. Encoding asks SCALE(values) for a bucket's
// scale, stores it, and lets WRITE(values, scale, first index, payload) fill the payload.
template <typename Scale, typename Write>
void encode_scaled_buckets(std::span<const float> in, std::span<std::byte> out, size_t bucket,
                           size_t (*payload_bytes)(size_t), Scale&& scale, Write&& write) {
  std::byte* p = out.data();
  for (size_t b0 = 0; b0 < in.size(); b0 += bucket) {
    const std::span<const float> x = in.subspan(b0, std::min(bucket, in.size() - b0));
    const float s = scale(x);
    std::memcpy(p, &s, sizeof s);
    write(x, s, b0, p + sizeof s);
    p += sizeof s + payload_bytes(x.size());
  }
}

// Decoding the same layout: READ(first index, len, scale, payload) for each bucket of the N
// values IN holds.
template <typename Read>
void decode_scaled_buckets(std::span<const std::byte> in, size_t n, size_t bucket, size_t (*payload_bytes)(size_t),
                           Read&& read) {
  const std::byte* p = in.data();
  for (size_t b0 = 0; b0 < n; b0 += bucket) {
    const size_t len = std::min(bucket, n - b0);
    float s;
    std::memcpy(&s, p, sizeof s);
    read(b0, len, s, p + sizeof s);
    p += sizeof s + payload_bytes(len);
  }
}
}  // namespace detail

}  // namespace dtb::coll
