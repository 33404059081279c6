#pragma once
// BLAKE2b-256 (libsodium's crypto_generichash) for the commitments of verify/: no home-made
// hash. Every digest is domain-separated by a short tag, so a state hash can never be
// replayed as an operation hash or a Merkle node.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace dtb::verify {

using Digest = std::array<uint8_t, 32>;

// Incremental BLAKE2b-256 over a domain tag, then any bytes.
class Hasher {
 public:
  explicit Hasher(std::string_view domain);
  Hasher& bytes(std::span<const std::byte> data);
  Hasher& floats(std::span<const float> data) { return bytes(std::as_bytes(data)); }
  Hasher& u64(uint64_t v);
  Hasher& digest(const Digest& d) { return bytes(std::as_bytes(std::span(d))); }
  Hasher& text(std::string_view s);  // length-prefixed, so concatenations cannot collide
  Digest finish();

 private:
  alignas(64) unsigned char state_[384];  // crypto_generichash_state (checked in hash.cpp)
};

std::string hex(const Digest& d);
Digest from_hex(const std::string& text);  // throws UsageError on anything but 64 hex digits

}  // namespace dtb::verify
