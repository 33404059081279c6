#pragma once
// From an experiment to command lines: every run's inputs are checked here, the way the
// child will read them (trainer config keys against the trainer's own key table, network
// profiles for the run's world size, device models, a coll run's options with `dtbench
// coll`'s own parser and world-size checks, the dataset), so a mistake in run 7 stops the
// experiment before run 1 starts.
#include <optional>
#include <string>
#include <vector>

#include "exp/child.hpp"
#include "exp/experiment.hpp"

namespace dtb::exp {

struct PlannedRun {
  std::string name;
  size_t index = 0;        // in the experiment's list (what --only takes)
  RunKind kind = RunKind::kTrain;
  int ranks = 1;
  int steps = 0;           // for progress: train: train.steps; coll: its buffer sizes (table rows)
  std::string clock;       // virtual or wall (net.clock, --clock), for progress
  StopPolicy stop;         // its timeout, and the grace after asking it to stop
  std::vector<std::string> argv;  // launcher, its options, dtbench, the subcommand and its options
  std::string result, log;        // <out>/<name>.h5 and .log
};

struct PlanOptions {
  std::string out_dir;                // "" = results/<experiment name>
  std::string only;                   // a run's name or index; "" = every run
  std::optional<Launcher> launcher;   // --launcher, over the experiment's
  std::vector<std::string> sets;      // --set KEY=VALUE for every train run
  bool skip_existing = false;         // runs whose result exists are left out, not refused
  std::string self;                   // this dtbench binary
};

struct Plan {
  std::string out_dir;
  std::vector<PlannedRun> runs;       // the ones to run, in order
  std::vector<std::string> existing;  // results left as they are (--skip-existing)
};

// Checks every run of E (not only the selected ones) and plans the selected ones. A result
// that already exists is refused (UsageError) unless skip_existing. As is a results folder
// holding another experiment's file (<out>/experiment.yaml differing from E's file).
Plan plan_experiment(const Experiment& e, const PlanOptions& options);

// What `auto` means: srun inside a Slurm allocation (SLURM_JOB_ID set), mpirun outside.
// Even one rank goes through the launcher: under MPI `dtbench train` is the parallel
// trainer, with the emulated network, the clocks and the per-rank accounting; `direct`
// (one rank only) runs the plain single-rank trainer.
Launcher resolve_launcher(Launcher chosen);

// Whether P's result is a finished run's, which is never overwritten. The one record of how
// a run ended is the runner's verdict line at the end of <out>/<run>.log (runner.hpp:
// verdict_in_log; the report reads the same line): ok is finished; FAILED, or no verdict (a
// runner stopped or killed mid-run: the log is begun before the run starts) make the result
// a partial one, which a new run replaces. A result without a log was put there by hand
// (dtbench train --set train.results=...): finished.
bool finished_result(const PlannedRun& p);

// The command as a shell would take it (arguments quoted where needed), to show and copy.
std::string shell_line(const std::vector<std::string>& argv);

}  // namespace dtb::exp
