#pragma once
// SplitMix64 (Steele, Lea, Flood 2014; the seeder of xoshiro), written out here because the
// std:: distributions differ between libstdc++ versions and token datasets and batch
// windows must be the same on every machine. Used by prepare_synthetic (a sequential
// stream) and TokenSplit::batch (counter-based: the n-th output computed directly).
#include <cstdint>

namespace dtb {

inline constexpr uint64_t kGoldenGamma = 0x9e3779b97f4a7c15ULL;

// The SplitMix64 output function: a bijective avalanche mix of 64 bits.
constexpr uint64_t splitmix64_mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Output number COUNTER (0-based) of a SplitMix64 stream whose state starts at
// splitmix64_mix(SEED). No state: batch windows use it so that any batch can be regenerated.
constexpr uint64_t splitmix64_at(uint64_t seed, uint64_t counter) {
  return splitmix64_mix(splitmix64_mix(seed) + (counter + 1) * kGoldenGamma);
}

// The same stream, one output after another.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : seed_(seed) {}
  uint64_t next() { return splitmix64_at(seed_, counter_++); }

 private:
  uint64_t seed_;
  uint64_t counter_ = 0;
};

// Maps a 64-bit hash to [0, n) by modulo. The bias, at most n / 2^64, is far below anything
// measurable for the n used here (vocabularies, corpus lengths).
constexpr uint64_t uniform_below(uint64_t hash, uint64_t n) { return hash % n; }

}  // namespace dtb
