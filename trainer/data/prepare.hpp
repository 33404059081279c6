#pragma once
// Making token datasets (layout in dataset.hpp): byte-level text and uniform random tokens.
// Every file is written under a temporary name and renamed when complete; every bad input
// (no files, an unreadable file, an empty corpus, a split too short, a bad fraction or
// vocabulary) throws UsageError naming the file or value and what is allowed.
#include <cstdint>
#include <string>
#include <vector>

namespace dtb {

inline constexpr const char* kDefaultCorpusDir = "/usr/share/games/fortunes";
inline constexpr int kByteVocab = 256;
inline constexpr uint64_t kMinSplitTokens = 2;  // one input and its target: a window of T = 1

// What was written, for the summary a command prints.
struct PreparedDataset {
  std::string path, tokenizer, source, dtype;
  int64_t vocab_size = 0;
  uint64_t train_tokens = 0, val_tokens = 0;
};

// The plain text files of DIR (Debian's `fortunes` package by default): regular files only,
// skipping symlinks and the strfile indexes *.dat and *.u8, sorted by name.
std::vector<std::string> default_corpus_files(const std::string& dir = kDefaultCorpusDir);

// Byte-level tokens (vocab 256) of FILES concatenated in the order given, byte for byte
// with nothing inserted between files. The last round(val_fraction * n) tokens are the val
// split, the rest train; val_fraction must be in (0, 0.5]. SOURCE describes the corpus in the
// file's `source` attribute; empty means "text: <the file names>".
PreparedDataset prepare_text(const std::vector<std::string>& files, const std::string& out_path,
                             double val_fraction, const std::string& source = "");

// prepare_text over default_corpus_files(), described as "fortunes: N files from DIR".
PreparedDataset prepare_default_corpus(const std::string& out_path, double val_fraction);

// N_TOKENS tokens drawn uniformly from [0, vocab_size) by SplitMix64(seed), split as in
// prepare_text. Stored as uint16 when vocab_size <= 65536, else uint32; vocab_size must be
// in [2, 2^32].
PreparedDataset prepare_synthetic(const std::string& out_path, int64_t vocab_size, uint64_t n_tokens,
                                  uint64_t seed, double val_fraction = 0.05);

}  // namespace dtb
