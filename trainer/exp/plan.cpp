#include "exp/plan.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string_view>

#include "cli/cmd_coll.hpp"
#include "coll_bench.hpp"
#include "config.hpp"
#include "exp/runner.hpp"
#include "profile.hpp"
#include "sim/device.hpp"
#include "sim/paths.hpp"
#include "train/train_config.hpp"
#include "usage_error.hpp"

namespace dtb::exp {
namespace {

namespace fs = std::filesystem;

// One trainer key as a run sets it, and where the value came from (for error messages).
struct Setting {
  std::string key, value, origin;
};

// Runs F; a UsageError from it gets "WHERE: run 'NAME': " in front, so that a message from
// a config file, a profile or a device says which run of which experiment asked for it.
template <typename F>
auto in_run(const std::string& where, const RunFields& r, F&& f) {
  try {
    return f();
  } catch (const UsageError& e) {
    const std::string what = e.what();
    if (what.find("run '" + r.name + "'") != std::string::npos) throw;  // says so already
    throw UsageError(where + ": run '" + r.name + "': " + what);
  }
}

std::string origin(const RunFields& r, const Value& v, const std::string& field) {
  return v.where + " (run '" + r.name + "', " + field + ")";
}

// A profile name (configs/net/NAME.yaml) or path, loaded for RANKS ranks to check it.
std::string checked_profile(const RunFields& r, const Value& net, int ranks) {
  return in_run(net.where, r, [&] {
    const std::string path = sim::find_named(net.text, "configs/net", "net", "network profile");
    netem::load_profile(path, ranks);
    return path;
  });
}

// GPUs lose nothing to fp32 in mixed-precision training: the default precision is the
// fastest that training on the device would use.
sim::Precision device_precision(const RunFields& r, const sim::Device& d) {
  if (const Value* p = r.scalar("precision")) return in_run(p->where, r, [&] { return sim::parse_precision(p->text); });
  for (sim::Precision p : {sim::Precision::kBf16, sim::Precision::kFp16, sim::Precision::kTf32})
    if (d.peak_flops[size_t(p)] > 0) return p;
  return sim::Precision::kFp32;
}

// `device: h100` becomes the trainer's device model: peak GFLOP/s, efficiency and the
// memory bandwidth that times AdamW (as the simulator charges it).
void add_device(const RunFields& r, const Value& v, std::vector<Setting>& out) {
  const sim::Device d = in_run(v.where, r, [&] { return sim::load_device(v.text); });
  const sim::Precision p = device_precision(r, d);
  const double peak = in_run(v.where, r, [&] { return d.peak(p); });
  std::ostringstream gflops, efficiency, memory;
  gflops << peak / 1e9;
  efficiency << d.efficiency;
  memory << d.memory_bandwidth / 1e9;
  const std::string from = origin(r, v, std::string("device ") + v.text + " " + sim::kPrecisionNames[size_t(p)]);
  out.push_back({"device.peak_gflops", gflops.str(), from});
  out.push_back({"device.efficiency", efficiency.str(), from});
  if (d.memory_bandwidth > 0) out.push_back({"device.memory_gbs", memory.str(), from});
}

// The trainer keys a train run sets, in the order they apply: its fields (table order),
// layout, set, then the command line's --set. RANKS = 0: the profile is not checked yet.
std::vector<Setting> train_run_settings(const RunFields& r, const std::vector<std::string>& cli_sets, int ranks) {
  std::vector<Setting> out;
  for (const FieldSpec& f : run_fields()) {
    const Value* v = f.shape == Shape::kScalar ? r.scalar(f.name) : nullptr;
    if (!v || !*f.train_key) continue;
    const std::string name = f.name;
    if (name == "net" && ranks > 0) out.push_back({f.train_key, checked_profile(r, *v, ranks), origin(r, *v, name)});
    else if (name == "device") add_device(r, *v, out);
    else out.push_back({f.train_key, v->text, origin(r, *v, name)});
  }
  for (const auto& [field, prefix] : {std::pair{"layout", "parallel."}, std::pair{"set", ""}})
    if (auto it = r.maps.find(field); it != r.maps.end())
      for (const Entry& e : it->second)
        out.push_back({prefix + e.key, e.value.text, origin(r, e.value, std::string(field) + "." + e.key)});
  for (const std::string& s : cli_sets) {
    const size_t eq = s.find('=');
    if (eq == std::string::npos || eq == 0) throw UsageError("--set '" + s + "': expected KEY=VALUE");
    out.push_back({s.substr(0, eq), s.substr(eq + 1), "--set"});
  }
  return out;
}

// The run's config exactly as `dtbench train` will build it, checked the same way.
Config train_config(const RunFields& r, const std::vector<Setting>& settings) {
  Config c(train_schema());
  for (const Value& m : r.lists.at("model")) in_run(m.where, r, [&] { c.merge_file(sim::find_file(m.text)); });
  for (const Setting& s : settings) c.set_value(s.key, s.value, s.origin);
  in_run(r.where, r, [&] { return train_settings(c); });  // the constraints between keys
  if (c.origin("train.results") != "default")
    throw UsageError(c.origin("train.results") + ": train.results is set by dtbench run (<out>/<run>.h5)");
  return c;
}

void check_dataset(const RunFields& r, const Config& c) {
  const std::string& data = c.get_string("data.path");
  if (!fs::exists(data))
    throw UsageError(r.where + ": run '" + r.name + "': data.path '" + data +
                     "': no such file (make the default one with: dtbench prepare)");
}

int world_of(const Config& c) {
  return int(c.get_int("parallel.dp") * c.get_int("parallel.pp") * c.get_int("parallel.tp"));
}

void plan_train(const RunFields& r, const PlanOptions& o, PlannedRun& p) {
  // The world size comes from the layout, which the profile check needs: read it first
  // without the profile, then check everything with it.
  std::vector<Setting> settings = train_run_settings(r, o.sets, 0);
  Config c = train_config(r, settings);
  p.ranks = world_of(c);
  if (r.ranks && r.ranks != p.ranks)
    throw UsageError(r.where + ": run '" + r.name + "': ranks " + std::to_string(r.ranks) +
                     " but its layout parallel.dp x pp x tp is " + std::to_string(p.ranks));
  settings = train_run_settings(r, o.sets, p.ranks);
  c = train_config(r, settings);
  check_dataset(r, c);
  p.steps = int(c.get_int("train.steps"));
  p.clock = resolved_clock(c.get_string("net.clock"), p.ranks);
  p.argv = {o.self, "train"};
  for (const Value& m : r.lists.at("model")) p.argv.insert(p.argv.end(), {"--config", sim::find_file(m.text)});
  for (const Setting& s : settings) p.argv.insert(p.argv.end(), {"--set", s.key + "=" + s.value});
  // The folder's results are this runner's to check (handle_existing): a failed run's
  // partial result is replaced.
  p.argv.insert(p.argv.end(), {"--set", "train.results=" + p.result, "--overwrite"});
}

// The options a coll run passes to `dtbench coll`: its fields (a profile name resolved to
// its file), then `args`; --out is dtbench run's.
std::vector<std::string> coll_arguments(const RunFields& r) {
  std::vector<std::string> args;
  for (const FieldSpec& f : run_fields())
    if (const Value* v = f.shape == Shape::kScalar && *f.coll_flag ? r.scalar(f.name) : nullptr) {
      const std::string text = std::string(f.name) == "net"
          ? in_run(v->where, r, [&] { return sim::find_named(v->text, "configs/net", "net", "network profile"); })
          : v->text;
      args.insert(args.end(), {f.coll_flag, text});
    }
  if (auto it = r.lists.find("args"); it != r.lists.end())
    for (const Value& a : it->second) {
      if (a.text == "--out" || a.text.starts_with("--out="))
        throw UsageError(a.where + ": run '" + r.name + "': --out is set by dtbench run (<out>/<run>.h5)");
      args.push_back(a.text);
    }
  return args;
}

// Checked with `dtbench coll`'s own parser and checks, for the run's world size, so that a
// bad option stops the experiment before its first run (the line names the option).
void plan_coll(const RunFields& r, const PlanOptions& o, PlannedRun& p) {
  p.ranks = r.ranks ? r.ranks : 1;
  const std::vector<std::string> args = coll_arguments(r);
  const coll::BenchOptions bench = in_run(r.where, r, [&] {
    coll::BenchOptions b = parse_coll_options("dtbench coll", args);
    coll::check_bench_options(b, p.ranks);
    if (!b.net_path.empty()) netem::load_profile(b.net_path, p.ranks);
    return b;
  });
  p.steps = int(coll::bench_sizes(bench.min_bytes, bench.max_bytes, bench.factor).size());
  p.clock = bench.clock;
  p.argv = {o.self, "coll"};
  p.argv.insert(p.argv.end(), args.begin(), args.end());
  p.argv.insert(p.argv.end(), {"--out", p.result});
}

// The MPI this binary was built against (cmake/mpi.cmake): how its ranks are started.
#ifndef DTB_MPIEXEC
#define DTB_MPIEXEC "mpirun"
#endif
#ifndef DTB_MPI_FLAVOR
#define DTB_MPI_FLAVOR "other"
#endif
constexpr std::string_view kMpiFlavor = DTB_MPI_FLAVOR;

// The launcher of the build's MPI (Open MPI's mpirun, MPICH's mpiexec: another one cannot
// start this binary's ranks), or DTB_MPIEXEC from the environment (a site's wrapper).
std::string mpiexec_program() {
  const char* env = std::getenv("DTB_MPIEXEC");
  return env && *env ? env : DTB_MPIEXEC;
}

// Workstation defaults for `mpirun`, by implementation. Open MPI: more ranks than cores, and
// idle ranks must yield the cores (busy polling starves the others: on 2 cores a 1-byte
// round trip took ~8 ms without mpi_yield_when_idle, 0.03 ms with it); as root it asks for
// --allow-run-as-root. MPICH's hydra starts any number of ranks, as root too, and knows
// none of these options (it refuses them).
std::vector<std::string> mpiexec_defaults() {
  if (kMpiFlavor != "openmpi") return {};
  std::vector<std::string> out = {"--oversubscribe", "--mca", "mpi_yield_when_idle", "1"};
  if (geteuid() == 0) out.push_back("--allow-run-as-root");
  return out;
}

// srun's MPI plugin when nothing names one: PMIx for Open MPI (Debian's is built with it);
// PMI-2 for MPICH (Debian's is built --with-slurm; Slurm's MPI guide starts MPICH with pmi2).
std::string default_srun_mpi() { return kMpiFlavor == "mpich" ? "pmi2" : "pmix"; }

// srun's MPI plugin and extra options. Clusters differ (PMIx in one version or another,
// PMI-2, Cray's cray_shasta), and the environment knows its cluster: DTB_SRUN_MPI and
// DTB_SRUN_ARGS (a site's modulefile, a job script) win over the experiment's srun_mpi and
// srun_args, as Slurm's own input variables win over #SBATCH lines. Extra options come
// after the defaults (the experiment's, then the environment's), so the later one wins.
std::vector<std::string> srun_options(const Experiment& e) {
  std::string mpi = e.srun_mpi.text.empty() ? default_srun_mpi() : e.srun_mpi.text;
  if (const char* env = std::getenv("DTB_SRUN_MPI"); env && *env) {
    check_srun_mpi(env, "environment variable DTB_SRUN_MPI");
    mpi = env;
  }
  std::vector<std::string> out;
  if (mpi != "default") out.push_back("--mpi=" + mpi);
  return out;
}

std::vector<std::string> srun_extra_args(const Experiment& e) {
  std::vector<std::string> out;
  for (const Value& v : e.srun_args) out.push_back(v.text);
  if (const char* env = std::getenv("DTB_SRUN_ARGS")) {  // split on white space, no quoting
    std::istringstream words(env);
    for (std::string w; words >> w;) out.push_back(w);
  }
  return out;
}

std::vector<std::string> launcher_prefix(Launcher l, const PlannedRun& p, const Experiment& e) {
  const std::string n = std::to_string(p.ranks);
  const std::vector<Value>& custom = e.launcher_args;
  std::vector<std::string> out, options;
  for (const Value& v : custom) options.push_back(v.text);
  switch (l) {
    case Launcher::kMpirun:
      out = {mpiexec_program(), "-np", n};
      if (custom.empty()) options = mpiexec_defaults();
      else if (geteuid() == 0 && kMpiFlavor == "openmpi") options.push_back("--allow-run-as-root");
      break;
    case Launcher::kSrun: {
      out = {"srun"};
      for (const std::string& o : srun_options(e)) out.push_back(o);
      out.insert(out.end(), {"-n", n});
      if (custom.empty()) options = {"--kill-on-bad-exit=1"};
      const std::vector<std::string> extra = srun_extra_args(e);
      options.insert(options.end(), extra.begin(), extra.end());
      break;
    }
    case Launcher::kDirect:
      if (p.ranks != 1)
        throw UsageError("launcher direct starts one process; run '" + p.name + "' needs " + n +
                         " ranks (use mpirun or srun)");
      return {};
    case Launcher::kAuto: break;
  }
  out.insert(out.end(), options.begin(), options.end());
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A results folder belongs to one experiment: its copy of the experiment file must match.
void check_folder(const Experiment& e, const std::string& out_dir) {
  const std::string copy = out_dir + "/experiment.yaml";
  if (fs::exists(copy) && slurp(copy) != slurp(e.path))
    throw UsageError(out_dir + " holds results of another version of " + e.path + " (" + copy +
                     " differs); pass --out DIR for a new folder");
}

// Existing results are never overwritten: refused before anything runs, or left out.
void handle_existing(Plan& plan, bool skip_existing) {
  std::vector<std::string> existing;
  for (const PlannedRun& p : plan.runs)
    if (finished_result(p)) existing.push_back(p.result);
  if (existing.empty()) return;
  if (!skip_existing)
    throw UsageError(existing[0] + " already exists" +
                     (existing.size() > 1 ? " (and " + std::to_string(existing.size() - 1) + " more)" : "") +
                     ": results are never overwritten; pass --out DIR for a new folder, or --skip-existing to run "
                     "only the runs without a result");
  std::erase_if(plan.runs, finished_result);
  plan.existing = existing;
}

}  // namespace

Launcher resolve_launcher(Launcher chosen) {
  if (chosen != Launcher::kAuto) return chosen;
  return std::getenv("SLURM_JOB_ID") ? Launcher::kSrun : Launcher::kMpirun;
}

Plan plan_experiment(const Experiment& e, const PlanOptions& o) {
  Plan plan;
  plan.out_dir = o.out_dir.empty() ? "results/" + e.name : o.out_dir;
  const size_t only = o.only.empty() ? e.runs.size() : find_run(e, o.only);
  for (size_t i = 0; i < e.runs.size(); ++i) {
    const RunFields& r = e.runs[i];
    const Value* own = r.scalar("launcher");
    const Launcher chosen = o.launcher ? *o.launcher : own ? parse_launcher(own->text, own->where) : e.launcher;
    PlannedRun p;
    p.name = r.name;
    p.index = i;
    p.kind = r.kind;
    p.stop = {r.timeout_s, r.stop_grace_s};
    p.result = plan.out_dir + "/" + r.name + ".h5";
    p.log = plan.out_dir + "/" + r.name + ".log";
    if (r.kind == RunKind::kTrain) plan_train(r, o, p);
    else plan_coll(r, o, p);
    std::vector<std::string> argv = launcher_prefix(resolve_launcher(chosen), p, e);
    argv.insert(argv.end(), p.argv.begin(), p.argv.end());
    p.argv = argv;
    if (only == e.runs.size() || only == i) plan.runs.push_back(p);
  }
  check_folder(e, plan.out_dir);
  handle_existing(plan, o.skip_existing);
  return plan;
}

bool finished_result(const PlannedRun& p) {
  if (!fs::exists(p.result)) return false;
  return !fs::exists(p.log) || verdict_in_log(slurp(p.log)).ok;
}

std::string shell_line(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) {
    const bool plain = !a.empty() && std::all_of(a.begin(), a.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || std::string_view("_./=:,+-@%").find(c) != std::string_view::npos;
    });
    std::string quoted = "'";
    for (char c : a) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
    out += (out.empty() ? "" : " ") + (plain ? a : quoted + "'");
  }
  return out;
}

}  // namespace dtb::exp
