#pragma once
// Secure aggregation of the DP gradient sum (Bonawitz et al. 2017, "Practical Secure
// Aggregation for Privacy-Preserving Machine Learning", the pairwise-mask core): every pair
// of DP ranks (i < j) agrees on a key by X25519 (libsodium's crypto_kx), expands it with
// ChaCha20 (crypto_stream_chacha20, nonce = step and bucket) into a mask m_ij, and rank i
// adds m_ij while rank j subtracts it, in the ring Z_2^32. Every mask cancels in the sum,
// which is therefore exact; what one rank sends is its gradient plus masks uniform in
// Z_2^32, independent of the gradient for anyone without the other ranks' keys.
//
// Fixed point: x travels as round(x 2^scale_bits), so each rank's value is rounded to
// 2^-(scale_bits+1) and the sum of P ranks is within P 2^-(scale_bits+1) of the float sum
// (plus the float rounding of the result); the sum must lie in [-2^(31-s), 2^(31-s)):
// each rank's value is clamped to 1/P of that range (saturated() counts the clamped ones).
//
// The wire: a ring element as two 16-bit limbs, each in a float, so that any float
// allreduce (ring, tree, halving-doubling, hierarchical, ps, MPI's) sums them exactly for
// P <= 256 ranks (P 2^16 <= 2^24, a float's integer range); 8 bytes per gradient element
// where plain DP sends 4. One more ring element per bucket counts the ranks whose masked
// vectors are in the sum: a dropped rank leaves it short and its masks uncancelled, and
// unmask() refuses the sum (Bonawitz's recovery of a dropped rank's masks from
// secret-shared seeds is not implemented).
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace dtb::privacy {

// ChaCha20 keystream bytes per second of the calling thread: libsodium's
// crypto_stream_chacha20 (the masks' generator) over BYTES, best of REPEATS, thread CPU time.
// `dtbench bench masks` prints it beside the rate the simulator charges (sim/privacy_costs.hpp).
double keystream_bytes_per_second(size_t bytes, int repeats);

using PublicKey = std::array<uint8_t, 32>;

class SecureAggregator {
 public:
  // RANK of PARTIES; a fresh X25519 key pair from libsodium's randombytes (the masks differ
  // run to run, the sums never do), or, for tests only, from the 32-byte KEY_SEED.
  SecureAggregator(int rank, int parties, int scale_bits, const uint8_t* key_seed = nullptr);
  ~SecureAggregator();
  const PublicKey& public_key() const { return pk_; }
  // Every party's public key (index = rank): the pairwise keys are derived here.
  void set_peer_keys(const std::vector<PublicKey>& keys);

  // Floats on the wire for N values: two limbs per value and per count element.
  static size_t wire_size(size_t n) { return 2 * (n + 1); }
  // IN as masked ring elements, into WIRE (wire_size(in.size())); (STEP, STREAM) picks the
  // masks, so every party must use the same pair for the same sum.
  void mask(uint64_t step, uint32_t stream, std::span<const float> in, std::span<float> wire);
  // The sum of every party's WIRE (limbs summed as floats) back into OUT; false, OUT
  // untouched, when the count shows a party missing.
  bool unmask(std::span<const float> wire_sum, std::span<float> out) const;
  // The count a refused sum held: the parties whose vectors are in it.
  static int parties_in(std::span<const float> wire_sum);

  // Ring elements before masking, for tests: round(x 2^s) clamped, mod 2^32.
  uint32_t encode(float x);
  float decode(uint32_t sum) const;
  int64_t saturated() const { return saturated_; }
  int parties() const { return parties_; }

 private:
  int rank_, parties_, scale_bits_;
  PublicKey pk_;
  std::array<uint8_t, 32> sk_;
  std::vector<std::array<uint8_t, 32>> pair_keys_;  // per peer (own index unused)
  std::vector<uint32_t> ring_, stream_;             // scratch
  int64_t saturated_ = 0;
};

// One line for a refused sum (COUNT: what its count element read), and what dtbench does not do.
std::string dropped_rank_message(int count, int parties);

}  // namespace dtb::privacy
