#pragma once
// The search over balanced partitions for DT-FM's cost model (dtfm_cost.hpp): the paper's
// hybrid genetic algorithm, an exhaustive search for small cases, and random placements.
//
// The genetic algorithm (DT-FM, section 3.3; DS3Lab/DT-FM's GCMA in
// scheduler/heuristic_evolutionary_solver/scheduler.py, after Kim et al.'s memetic
// algorithm for graph partitioning): a population of random balanced partitions, each
// improved by local search; then TRIALS times two parents drawn at random give a child by
// five-point crossover (the child is parent 2 with five random devices put in parent 1's
// group, parent 1's groups first renamed to overlap parent 2's most, then rebalanced),
// local search improves it, and it takes the worse parent's place if it is better than it
// and not already in the population (a steady-state GA; DT-FM's code appends instead, so
// its population grows). Local search: swap moves (two devices of two groups trade places:
// the paper's cyclic moves of length two), a swap kept when it lowers the cost, tried in a
// seeded random order until DEVICES tries in a row find nothing. Ties in the cost (it is a
// max and a sum of maxima, flat over many swaps) are broken by a second score that sees
// every group and pair: the sum of all groups' DP costs and all pairs' bottlenecks. The
// best candidate ends with a full descent over every swap. All draws come from one
// SplitMix64 stream: the same seed gives the same result.
#include <cstdint>
#include <vector>

#include "sim/dtfm_cost.hpp"

namespace dtb::sim::dtfm {

struct SearchOptions {
  int population = 100;
  int trials = 4900;  // DT-FM's scheduler runs 4,900
  uint64_t seed = 1;
};

struct Candidate {
  std::vector<Group> groups;  // canonical: each group sorted, groups by their first device
  Cost cost;
};

// The population at the end, best first, no two alike.
std::vector<Candidate> genetic_search(const EdgeCosts& e, const SearchOptions& o);

// Every balanced partition (D! / (D_DP!^D_PP D_PP!) of them); throws UsageError above
// kMaxExhaustive. The best; the first found among equals.
inline constexpr double kMaxExhaustive = 2e6;
double partition_count(int devices, int group_size);
Candidate exhaustive_search(const EdgeCosts& e);

// N placements drawn uniformly (Fisher-Yates over the world ranks), from SEED.
std::vector<par::Placement> random_placements(int world, int n, uint64_t seed);

}  // namespace dtb::sim::dtfm
