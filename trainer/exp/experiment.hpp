#pragma once
// An experiment file (configs/experiments/*.yaml): a named list of runs, each a `dtbench
// train` or `dtbench coll` under MPI. This part reads the file's structure (fields, types,
// names, defaults); plan.hpp checks what the runs will read (configs, profiles, devices)
// and builds their command lines. The format is in configs/experiments/README.md.
#include <limits>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace dtb::exp {

enum class RunKind { kTrain, kColl };
enum class Launcher { kAuto, kMpirun, kSrun, kDirect };

Launcher parse_launcher(const std::string& name, const std::string& where);  // UsageError
const char* launcher_name(Launcher l);
inline constexpr const char* kLauncherNames = "auto, mpirun, srun, direct";
// srun's MPI plugins (`srun --mpi=list` on the cluster says which it has); default: no --mpi
// option, so slurm.conf's MpiDefault (or SLURM_MPI_TYPE) decides.
inline constexpr const char* kSrunMpiNames = "pmix, pmix_v2, pmix_v3, pmix_v4, pmix_v5, pmi2, cray_shasta, none, default";
void check_srun_mpi(const std::string& name, const std::string& where);  // UsageError

// The fields a run may have: one table for the parser, the command lines and the help.
enum class Shape { kScalar, kList, kMap };
struct FieldSpec {
  const char* name;
  Shape shape;
  bool train, coll;       // which kinds of run take it
  const char* train_key;  // the trainer config key it sets ("" = none; a map: the prefix)
  const char* coll_flag;  // the `dtbench coll` option it sets ("" = none)
  const char* help;
};
std::span<const FieldSpec> run_fields();

// A value as the file gives it, with where it came from ("file.yaml:12") for messages.
struct Value {
  std::string text, where;
};

// One entry of a map field (layout, set).
struct Entry {
  std::string key;
  Value value;
};

// One run's fields after the experiment's defaults are applied; only the fields that
// apply to its kind.
struct RunFields {
  std::string name, where;
  RunKind kind = RunKind::kTrain;
  int ranks = 0;          // 0: not given (train: DP x PP x TP; coll: 1)
  double timeout_s = 0;   // 0: none
  double stop_grace_s = 120;  // after SIGUSR1, before SIGTERM (exp/child.hpp): Slurm's USR1@120
  std::map<std::string, Value> scalars;       // other scalar fields: net, clock, steps, ...
  std::map<std::string, std::vector<Value>> lists;   // model, args
  std::map<std::string, std::vector<Entry>> maps;    // layout, set

  const Value* scalar(const std::string& field) const;  // nullptr when not given
};

struct Experiment {
  std::string path;          // as given
  std::string name;          // `name:`, or the file's stem: results/<name>/
  std::string description;
  std::string baseline_net;  // slowdowns are against runs on this profile
  // The validation loss the report times every run to (`target_loss:`); NaN: not given,
  // the report takes the highest final validation loss among the runs.
  double target_loss = std::numeric_limits<double>::quiet_NaN();
  Launcher launcher = Launcher::kAuto;
  std::vector<Value> launcher_args;  // replace the launcher's default options when given
  Value srun_mpi;                    // srun's --mpi plugin (kSrunMpiNames; "" = not given)
  std::vector<Value> srun_args;      // srun options added after the others
  std::vector<RunFields> runs;
};

// The profile slowdowns are measured against when an experiment names none.
inline constexpr const char* kDefaultBaselineNet = "centralized-25g";

// Reads PATH and checks its structure: known fields of the right shapes, names unique
// and usable as file names. Throws UsageError (one line: file, line, field, what is allowed).
Experiment parse_experiment(const std::string& path);

// The run selected by --only: a name, or a 0-based index (job arrays). UsageError if none.
size_t find_run(const Experiment& e, const std::string& name_or_index);

// One line per run field, for `dtbench run --help`.
std::string describe_fields();

}  // namespace dtb::exp
