#pragma once
// A graceful stop for long jobs: SIGTERM (scancel, Slurm's time limit), SIGINT (Ctrl-C) and
// SIGUSR1 (Slurm's --signal=USR1@SECONDS ahead of the limit; mpirun forwards it to every
// rank) only raise a flag. The trainer reads it after each step; the ranks agree on the step
// to stop at, write a checkpoint and the results so far, and the job exits with
// kStoppedExitCode. A second signal of the same kind ends the process at once, as it
// would have without the handler.
namespace dtb {

constexpr int kStoppedExitCode = 3;  // stopped by a signal, checkpoint and results written

void install_stop_handlers();
int stop_signal();                       // the first stop signal received, 0 = none
const char* signal_name(int signal);     // "SIGTERM", "SIGINT", "SIGUSR1", else "signal N"

}  // namespace dtb
