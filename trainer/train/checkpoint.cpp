#include "train/checkpoint.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "h5file.hpp"

namespace dtb {
namespace {

constexpr const char* kFormat = "dtbench-checkpoint";
constexpr int64_t kVersion = 1;

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
  f.write<int64_t>("pp_buffers/layers", layers);
  f.write<int64_t>("pp_buffers/counts", counts);
  if (ids.empty()) return;  // no sample has crossed yet
  f.write<uint32_t>("pp_buffers/ids", ids);
  f.write<float>("pp_buffers/values", values);
}

void read_pp_buffers(const h5::File& f, CheckpointState& s) {
  if (!f.has_attr("/", "pp_compress")) return;
  s.pp_compress = f.attr_string("/", "pp_compress");
  s.pp_buffer_width = f.attr_int("/", "pp_buffer_width");
  const std::vector<int64_t> layers = f.read<int64_t>("pp_buffers/layers");
  const std::vector<int64_t> counts = f.read<int64_t>("pp_buffers/counts");
  const bool any = f.exists("pp_buffers/ids");
  const std::vector<uint32_t> ids = any ? f.read<uint32_t>("pp_buffers/ids") : std::vector<uint32_t>{};
  const std::vector<float> values = any ? f.read<float>("pp_buffers/values") : std::vector<float>{};
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
  f.write<float>("params", s.params);
  f.write<float>("adam/m", s.adam_m);
  f.write<float>("adam/v", s.adam_v);
  f.write_string("config", s.config_yaml);
  write_epoch_cursor(f, s);
  write_pp_buffers(f, s);
  for (const auto& [name, value] : s.attrs) f.set_attr("/", name, value);
  std::string names;
  for (const auto& [name, values] : s.strategy) {
    f.write<float>("strategy/" + name, values);
    names += (names.empty() ? "" : ",") + name;
  }
  if (!names.empty()) f.set_attr("/", "strategy_arrays", names);
  f.commit();
}

CheckpointState load_checkpoint(const std::string& path) {
  h5::File f = h5::File::open_read(path);
  if (!f.has_attr("/", "format") || f.attr_string("/", "format") != kFormat)
    throw UsageError(path + ": not a dtbench checkpoint (no format = \"dtbench-checkpoint\")");
  if (f.attr_int("/", "version") != kVersion)
    throw UsageError(path + ": checkpoint version " + std::to_string(f.attr_int("/", "version")) +
                     " is not supported (this dtbench reads version " + std::to_string(kVersion) + ")");
  CheckpointState s;
  s.model = read_model_shape(f);
  s.step = f.attr_int("/", "step");
  s.seed = uint64_t(f.attr_int("/", "seed"));
  s.data_cursor = uint64_t(f.attr_int("/", "data_cursor"));
  s.params = f.read<float>("params");
  s.adam_m = f.read<float>("adam/m");
  s.adam_v = f.read<float>("adam/v");
  s.config_yaml = f.read_string("config");
  read_epoch_cursor(f, s);
  read_pp_buffers(f, s);
  const std::string names = f.has_attr("/", "strategy_arrays") ? f.attr_string("/", "strategy_arrays") : "";
  for (size_t start = 0; start < names.size();) {
    const size_t comma = std::min(names.find(',', start), names.size());
    const std::string name = names.substr(start, comma - start);
    s.strategy.emplace_back(name, f.read<float>("strategy/" + name));
    start = comma + 1;
  }
  const size_t n = num_parameters(s.model);
  if (s.params.size() != n || s.adam_m.size() != n || s.adam_v.size() != n)
    throw UsageError(path + ": parameter buffers do not match the model shape recorded in it");
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
