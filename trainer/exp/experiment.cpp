#include "exp/experiment.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <set>

#include "usage_error.hpp"
#include "yaml_file.hpp"

namespace dtb::exp {
namespace {

const FieldSpec kFields[] = {
    {"name", Shape::kScalar, true, true, "", "", "the run's name (letters, digits, . _ -); its result is <out>/<name>.h5"},
    {"kind", Shape::kScalar, true, true, "", "", "train (default: dtbench train) or coll (dtbench coll)"},
    {"ranks", Shape::kScalar, true, true, "", "", "MPI ranks (train: DP x PP x TP when not given; coll: 1)"},
    {"model", Shape::kList, true, false, "", "", "model config file(s), merged in order (--config)"},
    {"steps", Shape::kScalar, true, false, "train.steps", "", "optimizer steps"},
    {"layout", Shape::kMap, true, false, "parallel.", "", "dp, pp, tp, microbatches, schedule"},
    {"net", Shape::kScalar, true, true, "net.profile", "--net", "network profile: a name in configs/net or a .yaml path"},
    {"clock", Shape::kScalar, true, true, "net.clock", "--clock", "virtual or wall (train runs also auto, their default: wall on one rank)"},
    {"algo", Shape::kScalar, true, true, "net.algo", "--algo", "allreduce algorithm (dtbench coll --help lists them)"},
    {"codec", Shape::kScalar, true, true, "net.codec", "--codec", "compression: none, fp16, int8, topk, sign, ..."},
    {"device", Shape::kScalar, true, false, "device.peak_gflops, device.efficiency", "",
     "emulated accelerator: a name in configs/devices or a .yaml path"},
    {"precision", Shape::kScalar, true, false, "", "", "whose peak the device model uses (default: bf16, fp16, tf32, fp32: the first the device has)"},
    {"op", Shape::kScalar, false, true, "", "--op", "allreduce (default), reducescatter, allgather, broadcast"},
    {"set", Shape::kMap, true, false, "", "", "any trainer config key: value (--set KEY=VALUE)"},
    {"args", Shape::kList, false, true, "", "", "further dtbench coll options, e.g. [-b, 1K, -e, 4M]"},
    {"launcher", Shape::kScalar, true, true, "", "", "how this run starts (auto, mpirun, srun, direct); --launcher overrides it"},
    {"timeout", Shape::kScalar, true, true, "", "", "seconds after which the run is stopped and counted failed (0: none)"},
    {"stop_grace", Shape::kScalar, true, true, "", "",
     "seconds a run asked to stop (timeout, Ctrl-C) has to finish its step and checkpoint before SIGTERM (default 120)"},
    {"baseline", Shape::kScalar, true, false, "", "",
     "the run whose step time the report divides by (default: the twin on baseline_net)"},
};

const char* const kTopFields[] = {"name", "description", "launcher", "launcher_args", "srun_mpi", "srun_args",
                                  "baseline_net", "target_loss", "defaults", "runs"};

const FieldSpec* find_field(const std::string& name) {
  for (const FieldSpec& f : kFields)
    if (name == f.name) return &f;
  return nullptr;
}

std::string field_names() {
  std::string out;
  for (const FieldSpec& f : kFields) out += (out.empty() ? "" : ", ") + std::string(f.name);
  return out;
}

// "file.yaml:12" for NODE.
std::string where(const std::string& path, const YAML::Node& node) {
  return path + ":" + std::to_string(node.Mark().line + 1);
}

[[noreturn]] void fail(const std::string& path, const YAML::Node& node, const std::string& what) {
  throw UsageError(where(path, node) + ": " + what);
}

YAML::Node load_yaml(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) throw UsageError(path + ": no such experiment file");
  return load_yaml_file(path);
}

std::string scalar_text(const std::string& path, const YAML::Node& node, const std::string& field) {
  if (!node.IsScalar()) fail(path, node, "'" + field + "': expected a single value");
  return node.Scalar();
}

// The fields of a map node in file order: (name, value node).
using Fields = std::vector<std::pair<std::string, YAML::Node>>;

Fields map_fields(const std::string& path, const YAML::Node& node, const std::string& what) {
  if (!node.IsMap()) fail(path, node, what + ": expected a map of fields (name: value)");
  Fields out;
  for (const auto& item : node) out.emplace_back(item.first.Scalar(), item.second);
  return out;
}

const YAML::Node* find_in(const Fields& fields, const std::string& name) {
  for (const auto& f : fields)
    if (f.first == name) return &f.second;
  return nullptr;
}

// Fields are only ever copied into new lists here, never assigned: yaml-cpp's operator=
// writes through to the node a handle refers to, which would change the defaults.
Fields without_nulls(const Fields& fields) {
  Fields out;
  for (const auto& [name, node] : fields)
    if (!node.IsNull()) out.emplace_back(name, node);
  return out;
}

// A map field (layout, set) of a run over the default's: key by key.
YAML::Node merged_map(const std::string& path, const YAML::Node& dflt, const YAML::Node& own, const std::string& name) {
  Fields entries;
  const Fields own_entries = map_fields(path, own, name);
  for (const auto& [key, value] : map_fields(path, dflt, name))
    if (!find_in(own_entries, key)) entries.emplace_back(key, value);
  for (const auto& entry : own_entries) entries.push_back(entry);
  YAML::Node merged(YAML::NodeType::Map);
  for (const auto& [key, value] : without_nulls(entries)) merged[key] = value;
  return merged;
}

// Run fields over defaults: a run's field replaces the default's, except that map fields
// (layout, set) merge key by key; a field (or key) given as ~ removes the default.
Fields merge_over_defaults(const std::string& path, const Fields& defaults, const Fields& run) {
  Fields out;
  for (const auto& [name, node] : defaults) {
    const YAML::Node* own = find_in(run, name);
    const FieldSpec* spec = find_field(name);
    if (!own) out.emplace_back(name, node);
    else if (spec && spec->shape == Shape::kMap && own->IsMap() && node.IsMap())
      out.emplace_back(name, merged_map(path, node, *own, name));
    else out.emplace_back(name, *own);
  }
  for (const auto& [name, node] : run)
    if (!find_in(defaults, name)) out.emplace_back(name, node);
  return without_nulls(out);
}

bool valid_name(const std::string& name) {
  return !name.empty() && name[0] != '.' && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

// A whole number >= MIN, or a number >= 0 when INTEGER is false.
double parse_number(const std::string& path, const YAML::Node& node, const std::string& field, bool integer,
                    double min) {
  const std::string text = scalar_text(path, node, field);
  double v = 0;
  auto res = std::from_chars(text.data(), text.data() + text.size(), v);
  const bool ok = res.ec == std::errc() && res.ptr == text.data() + text.size() && std::isfinite(v) &&
                  v >= min && (!integer || (v == std::floor(v) && v <= 1e6));
  if (!ok)
    fail(path, node, "'" + field + "': expected " + (integer ? "an integer" : "a number") + " >= " +
                         std::to_string(int(min)) + ", got '" + text + "'");
  return v;
}

RunKind parse_kind(const std::string& path, const YAML::Node& node) {
  const std::string text = scalar_text(path, node, "kind");
  if (text == "train") return RunKind::kTrain;
  if (text == "coll") return RunKind::kColl;
  fail(path, node, "'kind': expected train or coll, got '" + text + "'");
}

std::vector<Value> list_values(const std::string& path, const YAML::Node& node, const std::string& field) {
  std::vector<Value> out;
  if (node.IsScalar()) return {{node.Scalar(), where(path, node)}};
  if (!node.IsSequence()) fail(path, node, "'" + field + "': expected a value or a list of values");
  for (const YAML::Node& item : node) out.push_back({scalar_text(path, item, field), where(path, item)});
  return out;
}

std::vector<Entry> map_entries(const std::string& path, const YAML::Node& node, const std::string& field) {
  std::vector<Entry> out;
  for (const auto& [key, value] : map_fields(path, node, "'" + field + "'"))
    out.push_back({key, {scalar_text(path, value, field + "." + key), where(path, value)}});
  return out;
}

// Stores one field of a run. Fields inherited from defaults that do not apply to the run's
// kind are dropped; a run's own such field is an error.
void store_field(const std::string& path, RunFields& run, const std::string& name, const YAML::Node& node,
                 bool own) {
  const FieldSpec* spec = find_field(name);
  if (!spec) fail(path, node, "unknown run field '" + name + "'; fields: " + field_names());
  const bool applies = run.kind == RunKind::kTrain ? spec->train : spec->coll;
  if (!applies) {
    if (!own) return;
    fail(path, node, "'" + name + "' is not a field of " + (run.kind == RunKind::kTrain ? "train" : "coll") +
                         " runs");
  }
  if (name == "name" || name == "kind") return;  // read first, by the caller
  if (name == "ranks") run.ranks = int(parse_number(path, node, name, true, 1));
  else if (name == "timeout") run.timeout_s = parse_number(path, node, name, false, 0);
  else if (name == "stop_grace") run.stop_grace_s = parse_number(path, node, name, false, 0);
  else if (spec->shape == Shape::kScalar) run.scalars[name] = {scalar_text(path, node, name), where(path, node)};
  else if (spec->shape == Shape::kList) run.lists[name] = list_values(path, node, name);
  else run.maps[name] = map_entries(path, node, name);
}

RunFields parse_run(const std::string& path, const YAML::Node& node, const Fields& defaults) {
  const Fields own = map_fields(path, node, "a run");
  const Fields fields = merge_over_defaults(path, defaults, own);
  RunFields run;
  run.where = where(path, node);
  for (const auto& [name, value] : fields) {
    if (name == "name") run.name = scalar_text(path, value, name);
    if (name == "kind") run.kind = parse_kind(path, value);
  }
  if (!valid_name(run.name))
    fail(path, node, "a run needs a 'name' of letters, digits, '.', '_' or '-' (not starting with '.'); got '" +
                         run.name + "'");
  for (const auto& [name, value] : fields) {
    // An init-capture: clang 14 (the fuzz build's) cannot capture a structured binding.
    const bool is_own = std::any_of(own.begin(), own.end(), [&n = name](const auto& f) { return f.first == n; });
    store_field(path, run, name, value, is_own);
  }
  if (run.kind == RunKind::kTrain && !run.lists.count("model"))
    fail(path, node, "run '" + run.name + "': a train run needs 'model' (a config file such as configs/model/tiny.yaml)");
  return run;
}

void check_top_fields(const std::string& path, const YAML::Node& root) {
  for (const auto& [name, node] : map_fields(path, root, "an experiment")) {
    const bool known =
        std::any_of(std::begin(kTopFields), std::end(kTopFields), [&n = name](const char* f) { return n == f; });
    if (!known)
      fail(path, node, "unknown field '" + name +
                           "'; an experiment has: name, description, launcher, launcher_args, srun_mpi, srun_args, "
                           "baseline_net, target_loss, defaults, runs");
  }
}

std::vector<RunFields> parse_runs(const std::string& path, const YAML::Node& root) {
  const YAML::Node runs = root["runs"];
  if (!runs || !runs.IsSequence() || runs.size() == 0)
    throw UsageError(path + ": 'runs' must be a list of at least one run");
  Fields defaults;
  if (root["defaults"]) {
    defaults = map_fields(path, root["defaults"], "'defaults'");
    for (const auto& [name, node] : defaults)
      if (!find_field(name) || name == "name")
        fail(path, node, "'defaults' cannot hold '" + name + "'; run fields: " + field_names());
  }
  std::vector<RunFields> out;
  std::set<std::string> names;
  for (const YAML::Node& node : runs) {
    out.push_back(parse_run(path, node, defaults));
    if (!names.insert(out.back().name).second)
      fail(path, node, "run name '" + out.back().name + "' is used twice (names are result file names)");
  }
  return out;
}

// A run's `baseline` names another train run of the file (or itself: 1.00x), so that a
// report never divides by a run that cannot exist.
void check_baselines(const std::vector<RunFields>& runs) {
  for (const RunFields& r : runs) {
    const Value* b = r.scalar("baseline");
    if (!b) continue;
    const auto it = std::find_if(runs.begin(), runs.end(), [&](const RunFields& o) { return o.name == b->text; });
    if (it == runs.end() || it->kind != RunKind::kTrain)
      throw UsageError(b->where + ": run '" + r.name + "': 'baseline' must name a train run of this experiment; '" +
                       b->text + "' is " + (it == runs.end() ? "not a run" : "a coll run"));
  }
}

std::string top_scalar(const std::string& path, const YAML::Node& root, const char* field, const std::string& dflt) {
  return root[field] ? scalar_text(path, root[field], field) : dflt;
}

}  // namespace

std::span<const FieldSpec> run_fields() { return kFields; }

const Value* RunFields::scalar(const std::string& field) const {
  auto it = scalars.find(field);
  return it == scalars.end() ? nullptr : &it->second;
}

Launcher parse_launcher(const std::string& name, const std::string& where) {
  if (name == "auto") return Launcher::kAuto;
  if (name == "mpirun") return Launcher::kMpirun;
  if (name == "srun") return Launcher::kSrun;
  if (name == "direct") return Launcher::kDirect;
  throw UsageError(where + ": launcher '" + name + "': allowed: " + kLauncherNames);
}

void check_srun_mpi(const std::string& name, const std::string& where) {
  const std::string names = std::string(", ") + kSrunMpiNames + ",";
  if (name.empty() || names.find(", " + name + ",") == std::string::npos)
    throw UsageError(where + " '" + name + "': allowed: " + kSrunMpiNames);
}

const char* launcher_name(Launcher l) {
  switch (l) {
    case Launcher::kAuto: return "auto";
    case Launcher::kMpirun: return "mpirun";
    case Launcher::kSrun: return "srun";
    case Launcher::kDirect: return "direct";
  }
  return "?";
}

Experiment parse_experiment(const std::string& path) {
  const YAML::Node root = load_yaml(path);
  if (!root.IsMap()) throw UsageError(path + ": expected an experiment: a map with 'runs:' (see configs/experiments/README.md)");
  check_top_fields(path, root);
  Experiment e;
  e.path = path;
  e.name = top_scalar(path, root, "name", std::filesystem::path(path).stem().string());
  if (!valid_name(e.name))
    fail(path, root["name"], "'name': letters, digits, '.', '_' or '-' (it names the results folder); got '" + e.name + "'");
  e.description = top_scalar(path, root, "description", "");
  e.baseline_net = top_scalar(path, root, "baseline_net", kDefaultBaselineNet);
  if (root["target_loss"]) e.target_loss = parse_number(path, root["target_loss"], "target_loss", false, 0);
  if (root["launcher"]) e.launcher = parse_launcher(scalar_text(path, root["launcher"], "launcher"), where(path, root["launcher"]));
  if (root["launcher_args"]) e.launcher_args = list_values(path, root["launcher_args"], "launcher_args");
  if (root["srun_mpi"]) {
    e.srun_mpi = {scalar_text(path, root["srun_mpi"], "srun_mpi"), where(path, root["srun_mpi"])};
    check_srun_mpi(e.srun_mpi.text, e.srun_mpi.where + ": srun_mpi");
  }
  if (root["srun_args"]) e.srun_args = list_values(path, root["srun_args"], "srun_args");
  e.runs = parse_runs(path, root);
  check_baselines(e.runs);
  return e;
}

size_t find_run(const Experiment& e, const std::string& name_or_index) {
  for (size_t i = 0; i < e.runs.size(); ++i)
    if (e.runs[i].name == name_or_index) return i;
  const bool digits = !name_or_index.empty() && std::all_of(name_or_index.begin(), name_or_index.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c));
  });
  if (digits && name_or_index.size() < 7 && std::stoul(name_or_index) < e.runs.size()) return std::stoul(name_or_index);
  throw UsageError("--only '" + name_or_index + "': " + e.path + " has no such run; give a name or an index 0.." +
                   std::to_string(e.runs.size() - 1));
}

std::string describe_fields() {
  std::string out;
  for (const FieldSpec& f : kFields) {
    std::string line = "  " + std::string(f.name);
    line.resize(13, ' ');
    line += f.help;
    std::string sets;
    if (*f.train_key) sets += std::string(f.shape == Shape::kMap ? f.train_key + std::string("KEY") : f.train_key);
    if (*f.coll_flag) sets += std::string(sets.empty() ? "" : ", ") + f.coll_flag;
    if (!sets.empty()) line += " [" + sets + "]";
    out += line + (f.train && f.coll ? "" : f.train ? " (train)" : " (coll)") + "\n";
  }
  return out;
}

}  // namespace dtb::exp
