#pragma once
#include <string>
// A graceful stop for long jobs: SIGTERM (scancel, Slurm's time limit), SIGINT (Ctrl-C) and
// SIGUSR1 (Slurm's --signal=USR1@SECONDS ahead of the limit; mpirun forwards it to every
// rank) only raise a flag. The trainer reads it after each step; the ranks agree on the step
// to stop at, write a checkpoint and the results so far, and the job exits with
// kStoppedExitCode. A second signal of the same kind ends the process at once, as it
// would have without the handler.
//
// `dtbench run` takes the same three signals the same way (OnRepeat::kCount): it passes the
// stop on to its running child, and a repeated signal hurries the child's end (runner.hpp)
// instead of killing the runner and orphaning the child.
namespace dtb {

constexpr int kStoppedExitCode = 3;  // stopped by a signal, checkpoint and results written

enum class OnRepeat {
  kDie,    // a second signal of a kind already received ends the process at once
  kCount,  // it is counted (stop_repeats) and the process carries on
};

void install_stop_handlers(OnRepeat on_repeat = OnRepeat::kDie);
int stop_signal();                       // the first stop signal received, 0 = none
int stop_repeats();                      // signals of a kind already received that came again (kCount)
std::string signal_name(int signal);     // "SIGTERM", "SIGINT", "SIGUSR1", "SIGKILL", ...; "a signal" for an unknown number

}  // namespace dtb
