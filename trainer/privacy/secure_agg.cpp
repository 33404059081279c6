#include "privacy/secure_agg.hpp"

#include <sodium.h>

#include <time.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace dtb::privacy {
namespace {

void init_sodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) throw std::runtime_error("libsodium failed to initialise");
}

// The 8-byte ChaCha20 nonce of a step's stream (a bucket): unique per (step, stream) pair.
std::array<uint8_t, crypto_stream_chacha20_NONCEBYTES> nonce(uint64_t step, uint32_t stream) {
  const uint64_t v = (step << 20) ^ stream;
  std::array<uint8_t, crypto_stream_chacha20_NONCEBYTES> n{};
  for (size_t i = 0; i < n.size(); ++i) n[i] = uint8_t(v >> (8 * i));
  return n;
}

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

}  // namespace

double keystream_bytes_per_second(size_t bytes, int repeats) {
  init_sodium();
  std::vector<unsigned char> out(bytes);
  std::array<unsigned char, crypto_stream_chacha20_KEYBYTES> key{};
  randombytes_buf(key.data(), key.size());
  double best = 0;
  for (int r = 0; r < repeats; ++r) {
    const auto iv = nonce(uint64_t(r), 0);
    const double t0 = thread_cpu_seconds();
    crypto_stream_chacha20(out.data(), out.size(), iv.data(), key.data());
    const double seconds = thread_cpu_seconds() - t0;
    if (seconds > 0) best = std::max(best, double(bytes) / seconds);
  }
  return best;
}

SecureAggregator::SecureAggregator(int rank, int parties, int scale_bits, const uint8_t* key_seed)
    : rank_(rank), parties_(parties), scale_bits_(scale_bits), pair_keys_(size_t(parties)) {
  static_assert(crypto_kx_PUBLICKEYBYTES == 32 && crypto_kx_SECRETKEYBYTES == 32 && crypto_kx_SESSIONKEYBYTES == 32);
  static_assert(crypto_stream_chacha20_KEYBYTES == 32);
  init_sodium();
  static_assert(crypto_kx_SEEDBYTES == 32);
  if (key_seed) crypto_kx_seed_keypair(pk_.data(), sk_.data(), key_seed);
  else crypto_kx_keypair(pk_.data(), sk_.data());
}

SecureAggregator::~SecureAggregator() {
  sodium_memzero(sk_.data(), sk_.size());
  for (auto& k : pair_keys_) sodium_memzero(k.data(), k.size());
}

// crypto_kx: X25519, then BLAKE2b of the shared point and both public keys into two
// session keys; the lower rank is the "client", whose tx key is the "server"'s rx key.
void SecureAggregator::set_peer_keys(const std::vector<PublicKey>& keys) {
  if (int(keys.size()) != parties_) throw std::invalid_argument("secure aggregation: one public key per party");
  for (int j = 0; j < parties_; ++j) {
    if (j == rank_) continue;
    std::array<uint8_t, 32> rx{}, tx{};
    const int rc = rank_ < j ? crypto_kx_client_session_keys(rx.data(), tx.data(), pk_.data(), sk_.data(), keys[size_t(j)].data())
                             : crypto_kx_server_session_keys(rx.data(), tx.data(), pk_.data(), sk_.data(), keys[size_t(j)].data());
    if (rc != 0) throw std::runtime_error("secure aggregation: rank " + std::to_string(j) + "'s public key is invalid");
    pair_keys_[size_t(j)] = rank_ < j ? tx : rx;
    sodium_memzero(rx.data(), rx.size());
    sodium_memzero(tx.data(), tx.size());
  }
}

uint32_t SecureAggregator::encode(float x) {
  // Each rank's share of the range, so that P of them sum inside int32.
  const double limit = std::ldexp(1.0, 31) / parties_ - 1;
  double v = std::nearbyint(std::ldexp(double(x), scale_bits_));
  if (!(std::abs(v) <= limit)) {  // also NaN: the sum would be garbage; clamped and counted
    v = std::isnan(v) ? 0 : std::copysign(limit, v);
    ++saturated_;
  }
  return uint32_t(int32_t(v));
}

float SecureAggregator::decode(uint32_t sum) const { return float(std::ldexp(double(int32_t(sum)), -scale_bits_)); }

void SecureAggregator::mask(uint64_t step, uint32_t stream, std::span<const float> in, std::span<float> wire) {
  const size_t n = in.size() + 1;  // the values and the count
  ring_.resize(n);
  for (size_t i = 0; i < in.size(); ++i) ring_[i] = encode(in[i]);
  ring_[in.size()] = 1;
  stream_.resize(n);
  const auto iv = nonce(step, stream);
  for (int j = 0; j < parties_; ++j) {
    if (j == rank_) continue;
    crypto_stream_chacha20(reinterpret_cast<unsigned char*>(stream_.data()), n * sizeof(uint32_t), iv.data(),
                           pair_keys_[size_t(j)].data());
    // Unsigned arithmetic wraps mod 2^32: the lower rank adds, the higher subtracts.
    if (rank_ < j)
      for (size_t i = 0; i < n; ++i) ring_[i] += stream_[i];
    else
      for (size_t i = 0; i < n; ++i) ring_[i] -= stream_[i];
  }
  for (size_t i = 0; i < n; ++i) {
    wire[2 * i] = float(ring_[i] & 0xffffu);
    wire[2 * i + 1] = float(ring_[i] >> 16);
  }
}

namespace {
// A ring element from its two limbs summed over the parties (each sum exact in a float).
uint32_t from_limbs(float lo, float hi) { return uint32_t(uint64_t(lo) + (uint64_t(hi) << 16)); }
}  // namespace

int SecureAggregator::parties_in(std::span<const float> wire_sum) {
  const size_t c = wire_sum.size() / 2 - 1;
  return int(from_limbs(wire_sum[2 * c], wire_sum[2 * c + 1]));
}

bool SecureAggregator::unmask(std::span<const float> wire_sum, std::span<float> out) const {
  if (parties_in(wire_sum) != parties_) return false;
  for (size_t i = 0; i < out.size(); ++i) out[i] = decode(from_limbs(wire_sum[2 * i], wire_sum[2 * i + 1]));
  return true;
}

std::string dropped_rank_message(int count, int parties) {
  return "secure aggregation: the masked gradient sum counts " + std::to_string(count) + " DP ranks, not " +
         std::to_string(parties) +
         " (a dropped rank: its pairwise masks do not cancel, and dtbench does not implement Bonawitz et al.'s "
         "recovery from secret-shared seeds); sum refused, run stopped";
}

}  // namespace dtb::privacy
