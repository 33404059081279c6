#pragma once
// A deadline on a blocking phase that no MPI wait of ours can watch: MPI_Init (its fence
// waits for every rank to start), the first collectives of start-up (MPI_Comm_dup,
// MPI_Comm_split, the clock's epoch) and MPI_Finalize (its fence waits for every rank to
// arrive). The watchdog on messages (Communicator::set_watchdog) only sees waits it runs
// itself. Unless the phase ends first, a thread prints one line, "error: rank R: watchdog:
// WHAT did not finish within N s (...)", and ends this process with exit code 1; the
// launcher (mpirun, srun) then ends the job. MPI cannot tell which rank is missing inside
// these calls, so the line names the phase, not the peer; and MPI_Abort is not used: it
// is not callable before MPI_Init returns, nor safely from a second thread inside one.
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace dtb::coll {

class PhaseWatchdog {
 public:
  // SECONDS <= 0: no watchdog. RANK names this process in the line (before MPI_Init: the
  // launcher's rank).
  PhaseWatchdog(std::string what, double seconds, int rank);
  ~PhaseWatchdog();  // the phase ended in time: the thread stops
  PhaseWatchdog(const PhaseWatchdog&) = delete;
  PhaseWatchdog& operator=(const PhaseWatchdog&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace dtb::coll
