// Token dataset makers: byte-level text and uniform random tokens, in the layout of
// dataset.hpp, written atomically through h5::File.
#include "data/prepare.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <sstream>
#include <type_traits>

#include "data/dataset.hpp"
#include "data/splitmix64.hpp"
#include "h5file.hpp"
#include "usage_error.hpp"

namespace dtb {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMaxVocab = uint64_t{1} << 32;       // token ids must fit uint32
constexpr int64_t kMaxUint16Vocab = int64_t{1} << 16;  // ids up to 65535 fit uint16

// Shortest decimal form ("0.7", not "0.700000").
std::string format_number(double value) {
  std::ostringstream text;
  text << value;
  return text.str();
}

void check_val_fraction(double val_fraction) {
  if (!(val_fraction > 0.0 && val_fraction <= 0.5)) {  // also refuses NaN
    throw UsageError("--val-fraction " + format_number(val_fraction) +
                     " is outside (0, 0.5]: it is the share of tokens, taken from the end, kept for validation");
  }
}

// The number of tokens in the val split: round(val_fraction * n_tokens). Both splits must
// hold at least kMinSplitTokens. CORPUS names what the tokens came from, for the error.
uint64_t val_token_count(uint64_t n_tokens, double val_fraction, const std::string& corpus) {
  const auto n_val = static_cast<uint64_t>(std::llround(val_fraction * static_cast<double>(n_tokens)));
  const uint64_t n_train = n_tokens - n_val;
  if (n_val < kMinSplitTokens || n_train < kMinSplitTokens) {
    throw UsageError(corpus + ": " + std::to_string(n_tokens) + " tokens with --val-fraction " +
                     format_number(val_fraction) + " leave " + std::to_string(n_train) + " for train and " +
                     std::to_string(n_val) + " for val; each split needs at least " +
                     std::to_string(kMinSplitTokens) + " (use more tokens or another fraction)");
  }
  return n_val;
}

// "a.txt, b.txt" (at most three names, then how many more).
std::string list_files(const std::vector<std::string>& files) {
  constexpr size_t kNamesShown = 3;
  std::string text;
  for (size_t i = 0; i < std::min(files.size(), kNamesShown); ++i) text += (i ? ", " : "") + files[i];
  if (files.size() > kNamesShown) text += " and " + std::to_string(files.size() - kNamesShown) + " more";
  return text;
}

std::string read_file_bytes(const std::string& path) {
  std::error_code error;
  if (!fs::exists(path, error)) throw UsageError(path + ": no such file");
  if (fs::is_directory(path, error)) throw UsageError(path + ": is a folder; name the text files in it");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(path + ": cannot read: " + std::strerror(errno));
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (in.bad()) throw UsageError(path + ": read error");
  return bytes.str();
}

// The byte-level tokenizer: token id = byte value (0..255), files back to back.
std::vector<uint16_t> byte_tokens(const std::vector<std::string>& files) {
  std::vector<uint16_t> tokens;
  for (const std::string& path : files) {
    const std::string bytes = read_file_bytes(path);
    // Through unsigned char: a plain char is signed here and bytes >= 128 would go negative.
    for (const unsigned char byte : bytes) tokens.push_back(byte);
  }
  return tokens;
}

template <typename Token>
std::vector<Token> uniform_tokens(uint64_t n_tokens, uint64_t vocab_size, uint64_t seed) {
  SplitMix64 random(seed);
  std::vector<Token> tokens(n_tokens);
  for (Token& token : tokens) token = static_cast<Token>(uniform_below(random.next(), vocab_size));
  return tokens;
}

struct TokenFileInfo {
  int64_t vocab_size;
  std::string tokenizer, source;
};

// Writes TOKENS as /train/tokens (all but the last N_VAL) and /val/tokens (the last N_VAL)
// with the root attributes of the layout in dataset.hpp.
template <typename Token>
PreparedDataset write_token_file(const std::string& out_path, const std::vector<Token>& tokens,
                                 uint64_t n_val, const TokenFileInfo& info) {
  static_assert(std::is_same_v<Token, uint16_t> || std::is_same_v<Token, uint32_t>);
  const std::string dtype = h5::dtype_name(std::is_same_v<Token, uint16_t> ? h5::DType::kU16 : h5::DType::kU32);
  const std::span<const Token> all(tokens);
  const uint64_t n_train = tokens.size() - n_val;

  h5::File file = h5::File::create(out_path);
  file.write("train/tokens", all.first(n_train));
  file.write("val/tokens", all.subspan(n_train));
  file.set_attr("/", "format", std::string(kTokenFormat));
  file.set_attr("/", "version", kTokenFormatVersion);
  file.set_attr("/", "vocab_size", info.vocab_size);
  file.set_attr("/", "tokenizer", info.tokenizer);
  file.set_attr("/", "source", info.source);
  file.set_attr("/", "dtype", dtype);
  file.commit();
  return {out_path, info.tokenizer, info.source, dtype, info.vocab_size, n_train, n_val};
}

}  // namespace

std::vector<std::string> default_corpus_files(const std::string& dir) {
  std::error_code error;
  if (!fs::is_directory(dir, error)) {
    throw UsageError("no default corpus: " + dir +
                     " is missing; install Debian's 'fortunes' package (./setup.sh) or name text files");
  }
  std::vector<std::string> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    const std::string extension = entry.path().extension().string();
    // *.dat are strfile's binary indexes; *.u8 are symlinks to the UTF-8 text already listed.
    if (entry.is_symlink() || !entry.is_regular_file() || extension == ".dat" || extension == ".u8") continue;
    files.push_back(entry.path().string());
  }
  if (files.empty()) {
    throw UsageError("no default corpus: " + dir +
                     " holds no text files; install Debian's 'fortunes' package (./setup.sh) or name text files");
  }
  std::sort(files.begin(), files.end());  // directory order is arbitrary; the dataset must not be
  return files;
}

PreparedDataset prepare_text(const std::vector<std::string>& files, const std::string& out_path,
                             double val_fraction, const std::string& source) {
  check_val_fraction(val_fraction);
  if (files.empty()) throw UsageError("prepare: no text files given");
  const std::vector<uint16_t> tokens = byte_tokens(files);
  if (tokens.empty()) throw UsageError(list_files(files) + ": the corpus is empty (0 bytes)");
  const uint64_t n_val = val_token_count(tokens.size(), val_fraction, list_files(files));
  const std::string description = source.empty() ? "text: " + list_files(files) : source;
  return write_token_file(out_path, tokens, n_val, {kByteVocab, "byte", description});
}

PreparedDataset prepare_default_corpus(const std::string& out_path, double val_fraction) {
  const std::vector<std::string> files = default_corpus_files(kDefaultCorpusDir);
  const std::string source =
      "fortunes: " + std::to_string(files.size()) + " files from " + std::string(kDefaultCorpusDir);
  return prepare_text(files, out_path, val_fraction, source);
}

PreparedDataset prepare_synthetic(const std::string& out_path, int64_t vocab_size, uint64_t n_tokens,
                                  uint64_t seed, double val_fraction) {
  check_val_fraction(val_fraction);
  if (vocab_size < 2 || static_cast<uint64_t>(vocab_size) > kMaxVocab) {
    throw UsageError("--vocab " + std::to_string(vocab_size) + " is outside [2, 2^32]");
  }
  const std::string source = "synthetic: uniform over " + std::to_string(vocab_size) +
                             " token ids, SplitMix64 seed " + std::to_string(seed);
  const uint64_t n_val = val_token_count(n_tokens, val_fraction, "--tokens " + std::to_string(n_tokens));
  const TokenFileInfo info{vocab_size, "synthetic", source};
  const auto vocab = static_cast<uint64_t>(vocab_size);
  if (vocab_size <= kMaxUint16Vocab) {
    return write_token_file(out_path, uniform_tokens<uint16_t>(n_tokens, vocab, seed), n_val, info);
  }
  return write_token_file(out_path, uniform_tokens<uint32_t>(n_tokens, vocab, seed), n_val, info);
}

}  // namespace dtb
