#pragma once
// Faults on purpose (faults.*), for experiments: deterministic, the same in the trainer's
// two clocks and in dtbench sim. Stragglers: the compute of chosen world ranks takes
// `slowdown` times as long (the virtual clock charges it so; the wall clock sleeps the
// difference; the simulator stretches the stage that rank computes).
#include <vector>

#include "config.hpp"

namespace dtb {

struct FaultSettings {
  std::vector<int> slow_ranks;  // world ranks (as mpirun numbers them)
  double slowdown = 1;          // their compute takes this many times as long
  // The slowdown of world rank RANK (1 unless it is a slow rank).
  double factor(int rank) const;
};

// faults.slow_ranks ("1,3", '' = none) and faults.slowdown.
FaultSettings fault_settings(const Config& config);

// Throws UsageError when a slow rank is outside [0, WORLD).
void check_fault_ranks(const FaultSettings& f, int world);

}  // namespace dtb
