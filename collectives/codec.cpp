#include "codec.hpp"

#include <cstdlib>
#include <stdexcept>

#include "usage_error.hpp"

namespace dtb::coll {

const char* const kCodecHelp =
    "none, fp16, bf16, int8[:BUCKET], int8sr[:BUCKET] (stochastic rounding), int4[:BUCKET], topk[:RATIO], "
    "sign[:BUCKET]";

namespace {

constexpr size_t kDefaultBucket = 512;
constexpr double kDefaultTopkRatio = 0.01;

[[noreturn]] void bad_codec(const std::string& spec, const std::string& why) {
  throw UsageError("codec '" + spec + "': " + why + "; allowed: " + kCodecHelp);
}

size_t parse_bucket(const std::string& spec, const std::string& arg) {
  if (arg.empty()) return kDefaultBucket;
  char* end = nullptr;
  const long long v = std::strtoll(arg.c_str(), &end, 10);
  if (*end != '\0' || v < 1 || v > (1 << 24)) bad_codec(spec, "BUCKET must be an integer in [1, 16777216]");
  return size_t(v);
}

double parse_ratio(const std::string& spec, const std::string& arg) {
  if (arg.empty()) return kDefaultTopkRatio;
  char* end = nullptr;
  const double v = std::strtod(arg.c_str(), &end);
  if (*end != '\0' || !(v > 0 && v <= 1)) bad_codec(spec, "RATIO must be in (0, 1]");
  return v;
}

}  // namespace

std::unique_ptr<Codec> make_codec(const std::string& spec) {
  const size_t colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (colon != std::string::npos && arg.empty()) bad_codec(spec, "empty parameter after ':'");
  const bool takes_arg = name == "int8" || name == "int8sr" || name == "int4" || name == "topk" || name == "sign";
  if (!arg.empty() && !takes_arg) bad_codec(spec, "'" + name + "' takes no parameter");
  if (name == "none") return nullptr;
  if (name == "fp16") return make_fp16_codec();
  if (name == "bf16") return make_bf16_codec();
  if (name == "int8") return make_int8_codec(parse_bucket(spec, arg), false);
  if (name == "int8sr") return make_int8_codec(parse_bucket(spec, arg), true);
  if (name == "int4") return make_int4_codec(parse_bucket(spec, arg));
  if (name == "topk") return make_topk_codec(parse_ratio(spec, arg));
  if (name == "sign") return make_sign_codec(parse_bucket(spec, arg));
  bad_codec(spec, "unknown codec");
}

CodecScope parse_codec_scope(const std::string& name) {
  if (name == "everywhere") return CodecScope::kEverywhere;
  if (name == "across_sites") return CodecScope::kAcrossSites;
  throw UsageError("codec scope '" + name + "': allowed: everywhere, across_sites");
}

float exact_input(const Codec* codec, int rank, size_t i) {
  if (codec) return codec->exact_input(rank, i);
  // Integers in [-8, 8]: a sum over 8 ranks stays within +-64, exact in fp16 and bf16.
  return float(int((uint64_t(rank) * 7 + i * 13) % 17) - 8);
}

namespace detail {

uint64_t mix64(uint64_t z) {  // SplitMix64's finalizer
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

float uniform01(uint64_t stream, uint64_t i) {
  return float(mix64(stream + (i + 1) * 0x9e3779b97f4a7c15ULL) >> 40) * 0x1p-24f;
}

void check_encoded_size(const Codec& codec, size_t n, size_t bytes) {
  if (codec.encoded_bytes(n) != bytes)
    throw std::logic_error("codec " + codec.name() + ": " + std::to_string(bytes) + " bytes for " +
                           std::to_string(n) + " elements, expected " + std::to_string(codec.encoded_bytes(n)));
}

}  // namespace detail
}  // namespace dtb::coll
