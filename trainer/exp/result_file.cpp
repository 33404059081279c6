#include "exp/result_file.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <numeric>

#include "h5file.hpp"
#include "usage_error.hpp"

namespace dtb::exp {
namespace {

// The parts of a rank's step under MPI (results/README.md, /ranks/*): they add up to its
// step time. Compute first, then waiting on the network, then the rest.
const StepPart kStepParts[] = {
    {"forward", "forward"},          {"backward", "backward"},     {"optimizer", "optimizer"},
    {"tp_comm", "TP comm"},          {"pp_comm", "PP comm"},       {"dp_exposed", "DP comm (exposed)"},
    {"other_comm", "other comm"},    {"bubble", "pipeline bubble"}, {"harness", "harness"},
    {"idle", "idle"}};
// Communication the rank waited for: the parts of its step spent in communication.
const char* const kExposedComm[] = {"tp_comm", "pp_comm", "dp_exposed", "other_comm"};

void flatten(const YAML::Node& node, const std::string& prefix, std::map<std::string, std::string>& out) {
  if (node.IsMap()) {
    for (const auto& item : node) flatten(item.second, prefix.empty() ? item.first.Scalar() : prefix + "." + item.first.Scalar(), out);
  } else if (node.IsScalar()) {
    out[prefix] = node.Scalar();
  }
}

std::map<std::string, std::string> read_config(const h5::File& f) {
  std::map<std::string, std::string> out;
  if (!f.exists("config")) return out;
  try {
    flatten(YAML::Load(f.read_string("config")), "", out);
  } catch (const YAML::Exception& e) {
    throw UsageError(f.path() + ": /config is not YAML: " + e.msg);
  }
  return out;
}

std::vector<double> read_or_empty(const h5::File& f, const std::string& name) {
  return f.exists(name) ? f.read<double>(name) : std::vector<double>{};
}

double mean(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

std::string attr_or(const h5::File& f, const char* attr, const std::string& dflt) {
  return f.has_attr("/", attr) ? f.attr_string("/", attr) : dflt;
}

// The largest per-step sum of VALUES over the rows of each step (STEP: the rows' steps).
double peak_per_step(const std::vector<double>& step, const std::vector<double>& values) {
  std::map<double, double> sum;
  for (size_t i = 0; i < std::min(step.size(), values.size()); ++i) sum[step[i]] += values[i];
  double peak = 0;
  for (const auto& [s, v] : sum) peak = std::max(peak, v);
  return peak;
}

void read_ranks(const h5::File& f, TrainData& t) {
  if (!f.exists("ranks/step_time")) return;
  t.has_ranks = true;
  auto mean_of = [&](const char* part) { return mean(read_or_empty(f, std::string("ranks/") + part)); };
  for (const StepPart& part : kStepParts) t.parts.push_back(mean_of(part.dataset));
  t.step_time_s = mean_of("step_time");
  for (const char* part : kExposedComm) t.exposed_s += mean_of(part);
  t.dp_hidden_s = std::max(0.0, mean_of("dp_total") - mean_of("dp_exposed"));
  // Every rank's every step is a row: the sum over rows per step is all ranks' traffic.
  auto per_step = [&](const char* name) {
    const std::vector<double> v = read_or_empty(f, std::string("ranks/") + name);
    return t.step.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / double(t.step.size());
  };
  t.bytes_inter_per_step = per_step("bytes_inter");
  t.bytes_per_step = per_step("bytes_intra") + t.bytes_inter_per_step;
  if (f.exists("ranks/step"))
    t.peak_bytes_inter_step = peak_per_step(read_or_empty(f, "ranks/step"), read_or_empty(f, "ranks/bytes_inter"));
}

void read_privacy(const h5::File& f, TrainData& t) {
  if (!f.exists("privacy/secure_agg_saturated")) return;
  t.has_privacy = true;
  t.dp_sgd = f.attr_int("privacy", "dp_sgd") != 0;
  t.secure_agg = f.attr_int("privacy", "secure_agg") != 0;
  t.noise_multiplier = f.attr_double("privacy", "noise_multiplier");
  t.clip_norm = f.attr_double("privacy", "clip_norm");
  t.epsilon = f.attr_double("privacy", "epsilon");
  t.delta = f.attr_double("privacy", "delta");
}

TrainData read_train(const h5::File& f) {
  TrainData t;
  t.config = read_config(f);
  if (f.has_attr("/", "flops_per_token")) t.flops_per_token = f.attr_double("/", "flops_per_token");
  if (f.has_attr("/", "mfu_peak_gflops")) t.mfu_peak_gflops = f.attr_double("/", "mfu_peak_gflops");
  t.step = f.read<double>("steps/step");
  t.loss = f.read<double>("steps/loss");
  t.time_ms = f.read<double>("steps/time_ms");
  if (t.loss.size() != t.step.size() || t.time_ms.size() != t.step.size())
    throw UsageError(f.path() + ": /steps/loss, /steps/time_ms and /steps/step differ in length (a damaged result?)");
  t.val_step = read_or_empty(f, "val/step");
  t.val_loss = read_or_empty(f, "val/loss");
  if (t.val_step.size() != t.val_loss.size())
    throw UsageError(f.path() + ": /val/step and /val/loss differ in length (a damaged result?)");
  read_ranks(f, t);
  read_privacy(f, t);
  return t;
}

CollData read_coll(const h5::File& f) {
  CollData c;
  c.op = f.attr_string("/", "op");
  c.algo = f.attr_string("/", "algo");
  c.codec = f.attr_string("/", "codec");
  c.clock = f.attr_string("/", "clock");
  c.net_name = f.attr_string("/", "net_name");
  c.world = f.attr_int("/", "world_size");
  c.bytes = f.read<double>("rows/bytes");
  c.time_us = f.read<double>("rows/time_us");
  c.busbw_GBps = f.read<double>("rows/busbw_GBps");
  if (c.time_us.size() != c.bytes.size() || c.busbw_GBps.size() != c.bytes.size())
    throw UsageError(f.path() + ": the /rows/* datasets differ in length (a damaged result?)");
  return c;
}

}  // namespace

std::span<const StepPart> step_parts() { return kStepParts; }

ResultFile read_result(const std::string& path) {
  const h5::File f = h5::File::open_read(path);  // not HDF5 or damaged: UsageError
  if (attr_or(f, "format", "") != "dtbench-result")
    throw UsageError(path + ": not a dtbench result (no root attribute format = dtbench-result)");
  ResultFile r;
  r.path = path;
  r.name = std::filesystem::path(path).stem().string();
  r.kind = attr_or(f, "kind", "?");
  r.git_commit = attr_or(f, "git_commit", "n/a");
  r.host = attr_or(f, "host", "n/a");
  r.created_utc = attr_or(f, "created_utc", "n/a");
  if (r.kind == "train") r.train = read_train(f);
  else if (r.kind == "coll") r.coll = read_coll(f);
  else throw UsageError(path + ": a '" + r.kind + "' result; the report shows train and coll results");
  return r;
}

}  // namespace dtb::exp
