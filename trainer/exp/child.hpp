#pragma once
// One child process (a launcher or dtbench itself) whose stdout and stderr arrive, merged
// and line by line, at a callback: the runner logs every line and shows the step lines.
#include <functional>
#include <string>
#include <vector>

namespace dtb::exp {

struct ChildOutcome {
  int exit_code = 0;       // the child's exit status; 128 + N when killed by signal N
  bool timed_out = false;  // stopped after the time limit
  std::string error;       // set when the child could not start at all
  double seconds = 0;      // wall time
};

// Runs ARGV (argv[0] looked up in PATH) and calls ON_LINE for each line it prints. With
// TIMEOUT_S > 0 the child gets SIGTERM after that long (mpirun and srun pass it on to the
// ranks), and SIGKILL 10 s later.
ChildOutcome run_child(const std::vector<std::string>& argv, double timeout_s,
                       const std::function<void(const std::string&)>& on_line);

// "exit 2", "killed by signal 9 (SIGKILL)", "timed out", "stopped by a signal after a step
// (exit 3; ...)" (dtbench train's graceful stop), "cannot start mpirun: ...".
std::string describe(const ChildOutcome& o);

}  // namespace dtb::exp
