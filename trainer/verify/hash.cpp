#include "verify/hash.hpp"

#include <sodium.h>

#include <cstring>
#include <stdexcept>

#include "usage_error.hpp"

namespace dtb::verify {
namespace {

static_assert(sizeof(crypto_generichash_state) <= 384, "Hasher::state_ is too small for libsodium's state");

crypto_generichash_state* st(unsigned char* raw) { return reinterpret_cast<crypto_generichash_state*>(raw); }

void init_sodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) throw std::runtime_error("libsodium failed to initialise");
}

}  // namespace

Hasher::Hasher(std::string_view domain) {
  init_sodium();
  crypto_generichash_init(st(state_), nullptr, 0, sizeof(Digest));
  text(domain);
}

Hasher& Hasher::bytes(std::span<const std::byte> data) {
  crypto_generichash_update(st(state_), reinterpret_cast<const unsigned char*>(data.data()), data.size());
  return *this;
}

Hasher& Hasher::u64(uint64_t v) {
  unsigned char le[8];
  for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(v >> (8 * i));
  crypto_generichash_update(st(state_), le, sizeof le);
  return *this;
}

Hasher& Hasher::text(std::string_view s) {
  u64(s.size());
  return bytes(std::as_bytes(std::span(s.data(), s.size())));
}

Digest Hasher::finish() {
  Digest d;
  crypto_generichash_final(st(state_), d.data(), d.size());
  return d;
}

std::string hex(const Digest& d) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (uint8_t b : d) out += digits[b >> 4], out += digits[b & 15];
  return out;
}

Digest from_hex(const std::string& text) {
  Digest d{};
  if (text.size() != 2 * d.size() || text.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw UsageError("'" + text + "' is not a BLAKE2b-256 digest (64 lower-case hex digits)");
  for (size_t i = 0; i < d.size(); ++i) d[i] = uint8_t(std::stoi(text.substr(2 * i, 2), nullptr, 16));
  return d;
}

}  // namespace dtb::verify
