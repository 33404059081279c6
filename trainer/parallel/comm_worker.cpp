#include "parallel/comm_worker.hpp"

#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include "clock.hpp"

namespace dtb::par {

struct CommWorker::State {
  std::mutex mu;
  std::condition_variable work, idle;
  std::deque<std::function<void()>> queue;
  bool busy = false, stop = false;
  Done done;
  std::exception_ptr error;

  void run(std::function<void()>& task) {
    const auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = netem::thread_cpu_seconds();
    const coll::LinkStats s0 = coll::Communicator::thread_stats();
    std::exception_ptr failed;
    try {
      task();
    } catch (...) {
      failed = std::current_exception();
    }
    const coll::LinkStats& s1 = coll::Communicator::thread_stats();
    std::lock_guard<std::mutex> lock(mu);
    done.busy_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    done.cpu_seconds += netem::thread_cpu_seconds() - cpu0;
    done.bytes += (s1.bytes_intra + s1.bytes_inter) - (s0.bytes_intra + s0.bytes_inter);
    if (failed && !error) {
      error = failed;
      // The later buckets would run on a DP group left halfway through a collective
      // (mismatched messages, or a hang): drop them; join() reports the failure.
      queue.clear();
    }
  }

  void loop() {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      work.wait(lock, [&] { return stop || !queue.empty(); });
      if (stop) return;
      std::function<void()> task = std::move(queue.front());
      queue.pop_front();
      busy = true;
      lock.unlock();
      run(task);
      lock.lock();
      busy = false;
      if (queue.empty()) idle.notify_all();
    }
  }
};

CommWorker::CommWorker() : state_(std::make_shared<State>()), thread_([s = state_] { s->loop(); }) {}

// After join() the thread is idle and leaves at once. When the trainer stops with a bucket
// in flight (an exception in the backward), that bucket is blocked in MPI on peers that
// will never finish it, and the objects it uses are about to be destroyed: joining would
// hang and returning would free them under it, so the job is aborted, saying why.
CommWorker::~CommWorker() {
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->queue.clear();
  state_->stop = true;
  if (state_->busy) {
    std::fprintf(stderr, "dtbench: stopping with a DP gradient sync in flight on the comm thread; aborting the MPI job\n");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  state_->work.notify_all();
  lock.unlock();
  thread_.join();
}

void CommWorker::launch(std::function<void()> task) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->queue.push_back(std::move(task));
  state_->work.notify_one();
}

CommWorker::Done CommWorker::join() {
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->idle.wait(lock, [&] { return state_->queue.empty() && !state_->busy; });
  const Done d = std::exchange(state_->done, Done{});
  if (std::exception_ptr e = std::exchange(state_->error, nullptr)) std::rethrow_exception(e);
  return d;
}

}  // namespace dtb::par
