// TokenSplit: loads one split of a token dataset, checking everything a training run relies
// on before the first step, and cuts stateless, rank-sharded batches of windows from it.
#include "data/dataset.hpp"

#include <cmath>

#include "data/splitmix64.hpp"
#include "h5file.hpp"
#include "usage_error.hpp"

namespace dtb {
namespace {

void check_format(const h5::File& file) {
  if (!file.has_attr("/", "format") || file.attr_string("/", "format") != kTokenFormat) {
    throw UsageError(file.path() + ": not a dtbench token dataset (no root attribute format = \"" +
                     kTokenFormat + "\"); make one with dtbench prepare");
  }
  const int64_t version = file.attr_int("/", "version");
  if (version != kTokenFormatVersion) {
    throw UsageError(file.path() + ": token format version " + std::to_string(version) +
                     "; this dtbench reads version " + std::to_string(kTokenFormatVersion));
  }
}

int checked_vocab_size(const h5::File& file, int model_vocab) {
  const int64_t vocab = file.attr_int("/", "vocab_size");
  if (vocab < 1) throw UsageError(file.path() + ": vocab_size " + std::to_string(vocab) + " is not positive");
  if (vocab > model_vocab) {
    throw UsageError(file.path() + ": vocabulary " + std::to_string(vocab) +
                     " does not fit the model (model.vocab_size = " + std::to_string(model_vocab) +
                     "); use a dataset made for this vocabulary or raise model.vocab_size");
  }
  return static_cast<int>(vocab);
}

bool is_integer(h5::DType type) {
  using h5::DType;
  return type == DType::kU8 || type == DType::kU16 || type == DType::kU32 || type == DType::kI32 ||
         type == DType::kI64;
}

// NAME must be a 1-D integer dataset of at least T+1 tokens (one window).
void check_token_dataset(const h5::File& file, const std::string& name, int T) {
  const std::vector<uint64_t> shape = file.shape(name);
  if (shape.size() != 1) {
    throw UsageError(file.path() + ": dataset '" + name + "' has " + std::to_string(shape.size()) +
                     " dimensions; token ids are stored 1-D");
  }
  const h5::DType type = file.dtype(name);
  if (!is_integer(type)) {
    throw UsageError(file.path() + ": dataset '" + name + "' holds " + h5::dtype_name(type) +
                     "; token ids must be integers (uint16 or uint32)");
  }
  if (shape[0] < static_cast<uint64_t>(T) + 1) {
    throw UsageError(file.path() + ": dataset '" + name + "' holds " + std::to_string(shape[0]) +
                     " tokens, fewer than one window of T+1 = " + std::to_string(T + 1) +
                     "; use a shorter sequence length or a larger dataset");
  }
}

template <typename Id>
void check_ids_in_vocab(const std::vector<Id>& ids, int vocab_size, const std::string& path,
                        const std::string& name) {
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto id = static_cast<int64_t>(ids[i]);
    if (id < 0 || id >= vocab_size) {
      throw UsageError(path + ": token id " + std::to_string(id) + " at position " + std::to_string(i) +
                       " of '" + name + "' is outside the vocabulary [0, " + std::to_string(vocab_size) + ")");
    }
  }
}

// Reads NAME as uint32 ids, each checked to lie in [0, vocab_size). Unsigned datasets
// convert losslessly; signed ones are read wide first so that a negative id is caught
// rather than clamped to 0 by HDF5's conversion.
std::vector<uint32_t> load_token_ids(const h5::File& file, const std::string& name, int vocab_size) {
  const h5::DType type = file.dtype(name);
  if (type == h5::DType::kI32 || type == h5::DType::kI64) {
    const std::vector<int64_t> wide = file.read<int64_t>(name);
    check_ids_in_vocab(wide, vocab_size, file.path(), name);
    return {wide.begin(), wide.end()};
  }
  std::vector<uint32_t> ids = file.read<uint32_t>(name);
  check_ids_in_vocab(ids, vocab_size, file.path(), name);
  return ids;
}

void check_batch_layout(const std::string& path, size_t split_size, int B, int T, int rank, int world) {
  if (world < 1 || rank < 0 || rank >= world) {
    throw UsageError(path + ": rank " + std::to_string(rank) + " is outside [0, " + std::to_string(world) +
                     ") data-parallel ranks");
  }
  if (B < 1 || B % world != 0) {
    throw UsageError(path + ": global batch B = " + std::to_string(B) + " does not divide into " +
                     std::to_string(world) + " data-parallel ranks; make B a positive multiple of " +
                     std::to_string(world));
  }
  if (T < 1 || split_size < static_cast<size_t>(T) + 1) {
    throw UsageError(path + ": a window of T+1 = " + std::to_string(T + 1) + " tokens does not fit " +
                     std::to_string(split_size) + " tokens");
  }
}

}  // namespace

TokenSplit::TokenSplit(const std::string& path, const std::string& split, int model_vocab, int T) : path_(path) {
  if (T < 1) throw UsageError(path + ": sequence length T = " + std::to_string(T) + " must be at least 1");
  const h5::File file = h5::File::open_read(path);
  check_format(file);
  vocab_size_ = checked_vocab_size(file, model_vocab);
  const std::string name = split + "/tokens";
  check_token_dataset(file, name, T);
  tokens_ = load_token_ids(file, name, vocab_size_);
}

void TokenSplit::batch(uint64_t seed, uint64_t batch_index, int B, int T, int rank, int world,
                       int32_t* inputs, int32_t* targets) const {
  check_batch_layout(path_, size(), B, T, rank, world);
  const int rows = B / world;
  const uint64_t n_offsets = size() - static_cast<uint64_t>(T);  // window starts 0 .. size()-T-1
  for (int row = 0; row < rows; ++row) {
    const uint64_t global_row = static_cast<uint64_t>(rank) * rows + row;
    const uint64_t counter = batch_index * static_cast<uint64_t>(B) + global_row;
    const uint32_t* window = tokens_.data() + uniform_below(splitmix64_at(seed, counter), n_offsets);  // (T+1)
    int32_t* row_inputs = inputs + static_cast<size_t>(row) * T;    // (T)
    int32_t* row_targets = targets + static_cast<size_t>(row) * T;  // (T)
    // ids < vocab_size <= model_vocab, an int: the narrowing is exact.
    for (int t = 0; t < T; ++t) {
      row_inputs[t] = static_cast<int32_t>(window[t]);
      row_targets[t] = static_cast<int32_t>(window[t + 1]);
    }
  }
}

double unigram_entropy(const TokenSplit& split) {
  std::vector<uint64_t> counts(static_cast<size_t>(split.vocab_size()), 0);
  for (const uint32_t id : split.tokens()) ++counts[id];
  const auto total = static_cast<double>(split.size());
  double entropy = 0.0;
  for (const uint64_t count : counts) {
    if (count == 0) continue;
    const double p = static_cast<double>(count) / total;
    entropy -= p * std::log(p);
  }
  return entropy;
}

}  // namespace dtb
