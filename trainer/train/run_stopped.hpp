#pragma once
// A run that stopped itself on a fault it detected in its own numbers (a non-finite loss or
// gradient norm): not bad input (UsageError, exit code 2), not a bug (exit code 1). main()
// prints its message as one line and exits with code 4 (3 is a graceful stop on a signal,
// train/stop_signal.hpp); every rank throws it at the same
// step, since what it checks was summed over the world.
#include <stdexcept>
#include <string>

namespace dtb {

struct RunStopped : std::runtime_error {
  using std::runtime_error::runtime_error;
};

constexpr int kRunStoppedExit = 4;

}  // namespace dtb
