#include "train/checkpoint.hpp"

#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <span>

#include "h5file.hpp"
#include "train/finite.hpp"

namespace dtb {
namespace {

constexpr const char* kFormat = "dtbench-checkpoint";
// Version 2 adds a CRC-32 (zlib's) of every dataset, verified on load; version 1 files,
// which have none, still load.
constexpr int64_t kVersion = 2;
constexpr const char* kChecksumAttr = "crc32";

uint32_t crc32_of(std::span<const std::byte> bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes at most 4 GiB minus one per call (uInt lengths).
  for (size_t at = 0; at < bytes.size();) {
    const size_t n = std::min<size_t>(bytes.size() - at, size_t(1) << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + at), uInt(n));
    at += n;
  }
  return uint32_t(crc);
}

uint32_t crc32_of(const std::string& text) { return crc32_of(std::as_bytes(std::span(text.data(), text.size()))); }

// The checksum DATASET was written with must be that of what was read back.
void verify_checksum(const h5::File& f, const std::string& dataset, uint32_t read_crc) {
  if (!f.has_attr(dataset, kChecksumAttr))
    throw UsageError(f.path() + ": dataset '" + dataset + "' has no " + kChecksumAttr +
                     " attribute (every dataset of a version 2 checkpoint has one)");
  const int64_t stored = f.attr_int(dataset, kChecksumAttr);
  if (stored != int64_t(read_crc)) {
    char buf[160];
    std::snprintf(buf, sizeof buf, ": dataset '%s' fails its checksum (CRC-32 stored %08llx, read %08x): the file is corrupt",
                  dataset.c_str(), static_cast<unsigned long long>(stored), read_crc);
    throw UsageError(f.path() + buf);
  }
}

template <class T>
std::vector<T> read_checked(const h5::File& f, const std::string& dataset, bool checksummed) {
  std::vector<T> data = f.read<T>(dataset);
  if (checksummed) verify_checksum(f, dataset, crc32_of(std::as_bytes(std::span<const T>(data))));
  return data;
}

template <class T>
void write_checked(h5::File& f, const std::string& dataset, const std::vector<T>& data) {
  f.write<T>(dataset, data);
  f.set_attr(dataset, kChecksumAttr, int64_t(crc32_of(std::as_bytes(std::span<const T>(data)))));
}

// The root attributes that say where the run stands (step, seed, data cursor, the epoch
// sampler's and AQ-SGD's), as one text: its CRC-32 is the root's state_crc32, so a flipped
// byte there is refused like one in a dataset. Files written before it have none.
constexpr const char* kStateChecksumAttr = "state_crc32";
std::string state_text(const CheckpointState& s) {
  return "step=" + std::to_string(s.step) + ";seed=" + std::to_string(s.seed) +
         ";data_cursor=" + std::to_string(s.data_cursor) + ";data.sampler=" + s.sampler +
         ";data.epoch_samples=" + std::to_string(s.epoch_samples) + ";data.epoch=" + std::to_string(s.epoch) +
         ";data.epoch_position=" + std::to_string(s.epoch_position) + ";pp_compress=" + s.pp_compress +
         ";pp_buffer_width=" + std::to_string(s.pp_buffer_width);
}

void verify_state_checksum(const h5::File& f, const CheckpointState& s) {
  if (!f.has_attr("/", kStateChecksumAttr)) return;
  const uint32_t read = crc32_of(state_text(s));
  if (f.attr_int("/", kStateChecksumAttr) != int64_t(read))
    throw UsageError(f.path() + ": the root attributes (step, seed, data_cursor, data.*, pp_*) fail their checksum " +
                     kStateChecksumAttr + ": the file is corrupt");
}

void write_model_shape(h5::File& f, const GPTConfig& c) {
  f.set_attr("/", "model.vocab_size", int64_t(c.vocab_size));
  f.set_attr("/", "model.n_ctx", int64_t(c.n_ctx));
  f.set_attr("/", "model.n_layer", int64_t(c.n_layer));
  f.set_attr("/", "model.n_head", int64_t(c.n_head));
  f.set_attr("/", "model.n_embd", int64_t(c.n_embd));
  // Only untied models record it, so tied (GPT-2) checkpoints stay what they were.
  if (!c.tie_embeddings) f.set_attr("/", "model.tie_embeddings", int64_t(0));
}

GPTConfig read_model_shape(const h5::File& f) {
  GPTConfig c;
  c.vocab_size = int(f.attr_int("/", "model.vocab_size"));
  c.n_ctx = int(f.attr_int("/", "model.n_ctx"));
  c.n_layer = int(f.attr_int("/", "model.n_layer"));
  c.n_head = int(f.attr_int("/", "model.n_head"));
  c.n_embd = int(f.attr_int("/", "model.n_embd"));
  c.tie_embeddings = !f.has_attr("/", "model.tie_embeddings") || f.attr_int("/", "model.tie_embeddings") != 0;
  return c;
}

void write_epoch_cursor(h5::File& f, const CheckpointState& s) {
  if (s.sampler == "windows") return;  // windows checkpoints stay as they were
  f.set_attr("/", "data.sampler", s.sampler);
  f.set_attr("/", "data.epoch_samples", int64_t(s.epoch_samples));
  f.set_attr("/", "data.epoch", int64_t(s.epoch));
  f.set_attr("/", "data.epoch_position", int64_t(s.epoch_position));
}

void read_epoch_cursor(const h5::File& f, CheckpointState& s) {
  if (!f.has_attr("/", "data.sampler")) return;
  s.sampler = f.attr_string("/", "data.sampler");
  s.epoch_samples = uint64_t(f.attr_int("/", "data.epoch_samples"));
  s.epoch = uint64_t(f.attr_int("/", "data.epoch"));
  s.epoch_position = uint64_t(f.attr_int("/", "data.epoch_position"));
}

void write_pp_buffers(h5::File& f, const CheckpointState& s) {
  if (s.pp_compress != "aqsgd") return;
  f.set_attr("/", "pp_compress", s.pp_compress);
  f.set_attr("/", "pp_buffer_width", s.pp_buffer_width);
  std::vector<int64_t> layers, counts;
  std::vector<uint32_t> ids;
  std::vector<float> values;
  for (const PpBufferSet& b : s.pp_buffers) {
    layers.push_back(b.layer);
    counts.push_back(int64_t(b.ids.size()));
    ids.insert(ids.end(), b.ids.begin(), b.ids.end());
    values.insert(values.end(), b.values.begin(), b.values.end());
  }
  write_checked(f, "pp_buffers/layers", layers);
  write_checked(f, "pp_buffers/counts", counts);
  if (ids.empty()) return;  // no sample has crossed yet
  write_checked(f, "pp_buffers/ids", ids);
  write_checked(f, "pp_buffers/values", values);
}

// CHECKED: the datasets carry their CRC-32 (a file written since the strategy state and
// AQ-SGD's buffers got them: it has the root's state_crc32).
void read_pp_buffers(const h5::File& f, CheckpointState& s, bool checked) {
  if (!f.has_attr("/", "pp_compress")) return;
  s.pp_compress = f.attr_string("/", "pp_compress");
  s.pp_buffer_width = f.attr_int("/", "pp_buffer_width");
  const std::vector<int64_t> layers = read_checked<int64_t>(f, "pp_buffers/layers", checked);
  const std::vector<int64_t> counts = read_checked<int64_t>(f, "pp_buffers/counts", checked);
  const bool any = f.exists("pp_buffers/ids");
  const std::vector<uint32_t> ids = any ? read_checked<uint32_t>(f, "pp_buffers/ids", checked) : std::vector<uint32_t>{};
  const std::vector<float> values = any ? read_checked<float>(f, "pp_buffers/values", checked) : std::vector<float>{};
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  if (layers.size() != counts.size() || size_t(total) != ids.size() ||
      values.size() != ids.size() * size_t(s.pp_buffer_width))
    throw UsageError(f.path() + ": pp_buffers/* do not agree in size (layers, counts, ids, values x width)");
  size_t at = 0;
  for (size_t b = 0; b < layers.size(); ++b) {
    PpBufferSet set{layers[b], {}, {}};
    set.ids.assign(ids.begin() + ptrdiff_t(at), ids.begin() + ptrdiff_t(at) + counts[b]);
    const size_t w = size_t(s.pp_buffer_width);
    set.values.assign(values.begin() + ptrdiff_t(at * w), values.begin() + ptrdiff_t((at + size_t(counts[b])) * w));
    at += size_t(counts[b]);
    s.pp_buffers.push_back(std::move(set));
  }
}

}  // namespace

void save_checkpoint(const std::string& path, const CheckpointState& s) {
  h5::File f = h5::File::create(path);
  f.set_attr("/", "format", std::string(kFormat));
  f.set_attr("/", "version", kVersion);
  f.set_attr("/", "step", s.step);
  f.set_attr("/", "seed", int64_t(s.seed));
  f.set_attr("/", "data_cursor", int64_t(s.data_cursor));
  write_model_shape(f, s.model);
  write_checked(f, "params", s.params);
  write_checked(f, "adam/m", s.adam_m);
  write_checked(f, "adam/v", s.adam_v);
  f.write_string("config", s.config_yaml);
  write_epoch_cursor(f, s);
  write_pp_buffers(f, s);
  for (const auto& [name, value] : s.attrs) f.set_attr("/", name, value);
  std::string names;
  for (const auto& [name, values] : s.strategy) {
    write_checked(f, "strategy/" + name, values);
    names += (names.empty() ? "" : ",") + name;
  }
  if (!names.empty()) f.set_attr("/", "strategy_arrays", names);
  if (!s.outlier_state.empty()) write_checked(f, "outlier/state", s.outlier_state);
  f.set_attr("config", kChecksumAttr, int64_t(crc32_of(s.config_yaml)));
  f.set_attr("/", kStateChecksumAttr, int64_t(crc32_of(state_text(s))));
  f.commit();
}

CheckpointState load_checkpoint(const std::string& path) {
  h5::File f = h5::File::open_read(path);
  if (!f.has_attr("/", "format") || f.attr_string("/", "format") != kFormat)
    throw UsageError(path + ": not a dtbench checkpoint (no format = \"dtbench-checkpoint\")");
  const int64_t version = f.attr_int("/", "version");
  if (version != 1 && version != kVersion)
    throw UsageError(path + ": checkpoint version " + std::to_string(version) +
                     " is not supported (this dtbench reads versions 1 and " + std::to_string(kVersion) + ")");
  const bool checksummed = version >= 2;
  CheckpointState s;
  s.model = read_model_shape(f);
  s.step = f.attr_int("/", "step");
  s.seed = uint64_t(f.attr_int("/", "seed"));
  s.data_cursor = uint64_t(f.attr_int("/", "data_cursor"));
  s.params = read_checked<float>(f, "params", checksummed);
  s.adam_m = read_checked<float>(f, "adam/m", checksummed);
  s.adam_v = read_checked<float>(f, "adam/v", checksummed);
  s.config_yaml = f.read_string("config");
  read_epoch_cursor(f, s);
  const bool all_checked = checksummed && f.has_attr("/", kStateChecksumAttr);
  read_pp_buffers(f, s, all_checked);
  verify_state_checksum(f, s);
  if (f.exists("outlier/state")) s.outlier_state = read_checked<double>(f, "outlier/state", true);
  const std::string names = f.has_attr("/", "strategy_arrays") ? f.attr_string("/", "strategy_arrays") : "";
  for (size_t start = 0; start < names.size();) {
    const size_t comma = std::min(names.find(',', start), names.size());
    const std::string name = names.substr(start, comma - start);
    s.strategy.emplace_back(name, read_checked<float>(f, "strategy/" + name, all_checked));
    start = comma + 1;
  }
  if (checksummed) verify_checksum(f, "config", crc32_of(s.config_yaml));
  const size_t n = num_parameters(s.model);
  if (s.params.size() != n || s.adam_m.size() != n || s.adam_v.size() != n)
    throw UsageError(path + ": parameter buffers do not match the model shape recorded in it");
  // A run that diverged must not continue from its garbage (checksums pass: it was written so).
  require_finite_params(s.params, s.model, path, "params");
  require_finite_params(s.adam_m, s.model, path, "adam/m");
  require_finite_params(s.adam_v, s.model, path, "adam/v");
  return s;
}

const std::vector<float>* CheckpointState::strategy_array(const std::string& name) const {
  for (const auto& [n, values] : strategy)
    if (n == name) return &values;
  return nullptr;
}

std::string periodic_checkpoint_path(const std::string& final_path, int64_t step) {
  std::filesystem::path p(final_path);
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, "-step%06lld", static_cast<long long>(step));
  return (p.parent_path() / (p.stem().string() + suffix + p.extension().string())).string();
}

}  // namespace dtb
