#pragma once
// A wall-clock run sleeps what its network profile makes each message take: 1 bps links
// would hold a step for days. Before MPI starts, `dtbench train` asks the simulator
// (trainer/sim/, the same keys, grid, schedule and cost models) for the step time and
// refuses a run whose step would outlast net.watchdog_s (the watchdog would end it midway),
// or warns (one line) when the whole run is predicted to take more than a day.
// Not modelled by the simulator, and so not in the prediction: loss and jitter.
#include <cxxopts.hpp>
#include <iosfwd>

#include "train/train_config.hpp"

namespace dtb {

void check_predicted_step(const cxxopts::ParseResult& args, const TrainSettings& s, std::ostream& warn);

}  // namespace dtb
