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
