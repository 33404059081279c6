#include "parallel/comm_worker.hpp"

#include <chrono>
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
    if (failed && !error) error = failed;
  }

  void loop() {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      work.wait(lock, [&] { return stop || !queue.empty(); });
      if (queue.empty()) return;  // stop, and nothing left
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

CommWorker::CommWorker() : state_(std::make_shared<State>()) {
  std::thread([s = state_] { s->loop(); }).detach();
}

// The thread is detached and owns the state with us: after a clean join() it is idle and
// leaves at once; when a run fails mid-sync it may be blocked in MPI waiting for a peer,
// and joining it would hang the process that is about to report the error and exit.
CommWorker::~CommWorker() {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->stop = true;
  state_->work.notify_all();
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
