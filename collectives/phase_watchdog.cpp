#include "phase_watchdog.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace dtb::coll {

PhaseWatchdog::PhaseWatchdog(std::string what, double seconds, int rank) {
  if (seconds <= 0) return;
  thread_ = std::thread([this, what = std::move(what), seconds, rank] {
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return done_; })) return;
    std::cout.flush();
    std::fflush(stdout);
    std::fprintf(stderr, "error: rank %d: watchdog: %s did not finish within %g s (net.watchdog_s sets the limit)\n",
                 rank, what.c_str(), seconds);
    std::fflush(stderr);
    std::_Exit(1);  // no destructors: the main thread is inside MPI
  });
}

PhaseWatchdog::~PhaseWatchdog() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

}  // namespace dtb::coll
