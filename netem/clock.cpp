#include "clock.hpp"

#include <time.h>

#include <algorithm>
#include <thread>

namespace dtb::netem {

void VirtualClock::wait_until(Stream s, double t) {
  time_[int(s)] = std::max(time_[int(s)], t);
}

double WallClock::now(Stream) const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_).count();
}

void WallClock::wait_until(Stream, double t) {
  // Sleep for the bulk, then spin the last stretch: sleep alone overshoots by the
  // scheduler's slack (~50-100 us), which would bias short transfers.
  constexpr double kSpin = 200e-6;
  const auto deadline = epoch_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                     std::chrono::duration<double>(t));
  const auto sleep_until = deadline - std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                          std::chrono::duration<double>(kSpin));
  if (std::chrono::steady_clock::now() < sleep_until) std::this_thread::sleep_until(sleep_until);
  while (std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
}

std::unique_ptr<Clock> make_clock(ClockKind kind) {
  if (kind == ClockKind::kVirtual) return std::make_unique<VirtualClock>();
  return std::make_unique<WallClock>();
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

}  // namespace dtb::netem
