#pragma once
// A rank's communication thread, for the wall clock: the DP buckets run on it one after
// another, in launch order, while the main thread goes on with the backward and sends its
// TP and PP messages (MPI_THREAD_MULTIPLE). This is what lets a bucket's wall-clock
// transfer overlap the rest of the backward; the virtual clock gets the same overlap from
// its DP channel (netem::Stream::kDp) and needs no thread.
#include <functional>
#include <memory>
#include <thread>

#include "communicator.hpp"

namespace dtb::par {

class CommWorker {
 public:
  CommWorker();
  ~CommWorker();  // after join(): stops the thread; with a task in flight: MPI_Abort (see .cpp)
  CommWorker(const CommWorker&) = delete;
  CommWorker& operator=(const CommWorker&) = delete;

  void launch(std::function<void()> task);

  // What the tasks since the last join() did on the comm thread.
  struct Done {
    double busy_seconds = 0;  // wall time the tasks ran (not waiting in the queue)
    double cpu_seconds = 0;   // the thread's CPU time inside them
    uint64_t bytes = 0;       // payload bytes they sent
  };
  // Waits until every launched task has finished; rethrows the first task's exception.
  Done join();

 private:
  struct State;
  std::shared_ptr<State> state_;  // the queue, shared with the thread
  std::thread thread_;
};

}  // namespace dtb::par
