#pragma once
// Runs a plan's runs one after the other, each a child process (launcher + dtbench), and
// shows the progress: which run of how many, the child's step lines, an ETA. Every line a
// child prints goes to <out>/<run>.log. A run that fails is reported with its reason and
// the others still run.
#include <iosfwd>
#include <string>
#include <vector>

#include "exp/experiment.hpp"
#include "exp/plan.hpp"

namespace dtb::exp {

struct RunOutcome {
  std::string name;
  bool ok = false;
  std::string why;  // for a failed run: how it ended and the child's last error line
  double seconds = 0;
};

// Prints what would run, and runs nothing.
void print_dry_run(const Plan& plan, std::ostream& out);

// Runs PLAN (after copying E's file to <out>/experiment.yaml, once) and returns one
// outcome per run, in order. With install_stop_handlers(OnRepeat::kCount) (dtbench run's
// first act), SIGINT, SIGTERM or SIGUSR1 to dtbench run stops the running run gracefully
// (exp/child.hpp) and starts no other: fewer outcomes than runs, and dtb::stop_signal()
// says which signal.
std::vector<RunOutcome> run_plan(const Experiment& e, const Plan& plan, std::ostream& out);

// The last line the runner writes to a run's log: "# dtbench run: ok" or
// "# dtbench run: FAILED: <why>".
inline constexpr const char* kOutcomeLine = "# dtbench run: ";
// Before it, one line for each step the runner takes to stop the run (exp/child.hpp's
// StopPolicy): "# stop: timed out after 5s: SIGUSR1 to mpirun (pid 123), ...".
inline constexpr const char* kStopLine = "# stop: ";

// A line of a child's output that says what went wrong ("error: ...", "... Error: ...").
bool is_error_line(const std::string& line);

// What a run's log says of how it ended: the runner's verdict line when it wrote one, and
// why the run failed (the verdict's reason, else the child's last error line).
struct LogVerdict {
  bool written = false;  // the runner's verdict line is there (it is missing while the run
                         // goes on, or when the runner itself was killed)
  bool ok = false;
  std::string why;
};
LogVerdict verdict_in_log(const std::string& log_text);

// "7 runs: 6 ok, 1 failed: pp2-dec (exit 2)".
std::string summary_line(const std::vector<RunOutcome>& outcomes);

}  // namespace dtb::exp
