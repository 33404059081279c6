#pragma once
// Token datasets in HDF5 and the deterministic window loader.
//
// File layout (documented for users in results/README.md, "Token datasets"):
//   /train/tokens, /val/tokens   1-D, uint16 when vocab_size <= 65536 else uint32
//   root attributes: format = "dtbench-tokens", version = 1, vocab_size, tokenizer
//   ("byte" or "synthetic"), source (what it was made from), dtype (e.g. "uint16").
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace dtb {

inline constexpr const char* kTokenFormat = "dtbench-tokens";  // root attribute "format"
inline constexpr int64_t kTokenFormatVersion = 1;              // root attribute "version"

// One split of a token dataset, loaded into memory and checked against the model:
// a dataset that is not a dtbench token file, is not 1-D integer, whose vocabulary exceeds
// model_vocab, or that holds fewer than T+1 tokens throws UsageError naming the file.
class TokenSplit {
 public:
  TokenSplit(const std::string& path, const std::string& split, int model_vocab, int T);
  size_t size() const { return tokens_.size(); }
  int vocab_size() const { return vocab_size_; }
  const std::string& path() const { return path_; }
  std::span<const uint32_t> tokens() const { return tokens_; }  // the whole split, in order

  // Global batch number BATCH_INDEX has B windows of T+1 tokens, their offsets drawn from
  // (seed, batch_index, row) by a counter-based hash: no state, so any batch can be
  // regenerated (resume) and every rank agrees on the global batch. This rank gets rows
  // [rank*B/world, (rank+1)*B/world): DP ranks see disjoint rows of the same global batch.
  // inputs and targets are (B/world, T); B must be divisible by world.
  // Row r's window starts at splitmix64_at(seed, batch_index*B + r) % (size() - T), one of
  // the size()-T offsets [0, size()-T-1] (splitmix64.hpp); targets are inputs shifted by one.
  void batch(uint64_t seed, uint64_t batch_index, int B, int T, int rank, int world,
             int32_t* inputs, int32_t* targets) const;

 private:
  std::string path_;
  int vocab_size_ = 0;
  std::vector<uint32_t> tokens_;
};

// Unigram entropy of a split in nats per token (a baseline a trained model must beat).
double unigram_entropy(const TokenSplit& split);

}  // namespace dtb
