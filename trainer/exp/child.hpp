#pragma once
// One child process (a launcher or dtbench itself) whose stdout and stderr arrive, merged
// and line by line, at a callback: the runner logs every line and shows the step lines.
#include <functional>
#include <string>
#include <vector>

namespace dtb::exp {

// How a child is asked to end, at its timeout or when dtbench run itself gets SIGINT,
// SIGTERM or SIGUSR1 (train/stop_signal.hpp, OnRepeat::kCount):
//   1. SIGUSR1 to the child: mpirun (Open MPI forwards SIGUSR1 and SIGUSR2 to every rank,
//      while it answers SIGTERM and SIGINT by killing the ranks), srun (forwards it to
//      every task) and a one-rank dtbench train alike pass it to the trainer, which stops
//      after its current step with a checkpoint and the results so far (exit 3);
//   2. SIGTERM to the child after grace_s, should it still run (a hung run: mpirun and
//      srun then end their ranks);
//   3. SIGKILL to the child's process group 10 s later.
// A repeated signal to dtbench run moves on to the next of these at once.
struct StopPolicy {
  double timeout_s = 0;  // 0: none
  double grace_s = 0;    // from 1 to 2 (the run field stop_grace)
};

struct ChildOutcome {
  int exit_code = 0;       // the child's exit status; 128 + N when killed by signal N
  bool timed_out = false;  // asked to stop at the time limit
  int stopped_by = 0;      // the signal to dtbench run that asked it to stop; 0: none
  std::string error;       // set when the child could not start at all
  double seconds = 0;      // wall time
};

// Runs ARGV (argv[0] looked up in PATH) in a process group of its own (a Ctrl-C at the
// terminal reaches dtbench run alone, which stops the child gracefully) and calls ON_LINE
// for each line it prints, ON_NOTE for each step of STOP it takes ("timed out after 5 s:
// SIGUSR1 to mpirun ...").
ChildOutcome run_child(const std::vector<std::string>& argv, const StopPolicy& stop,
                       const std::function<void(const std::string&)>& on_line,
                       const std::function<void(const std::string&)>& on_note);

// How the child ended: "exit 2", "killed by signal 9 (SIGKILL)", "stopped after a step
// (exit 3; it wrote a checkpoint to resume from)" (dtbench train's graceful stop),
// "cannot start mpirun: ...".
std::string describe(const ChildOutcome& o);

}  // namespace dtb::exp
