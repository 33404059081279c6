#pragma once
// What `dtbench sim` prints: one step's breakdown, or a sweep's table.
#include <iosfwd>
#include <vector>

#include "sim/sim_config.hpp"
#include "sim/simulator.hpp"
#include "sim/sweep.hpp"

namespace dtb::sim {

// The inputs in words, then per part of the step: time, share of the step, bytes per
// rank inside and across sites; then throughput, MFU, slowdown and memory per rank.
void print_result(std::ostream& out, const SimSettings& s, const SimResult& r);

// One line per point: the value, step time, slowdown, tokens/s, MFU and the parts.
void print_sweep(std::ostream& out, const std::string& key, const std::vector<SweepPoint>& points);

}  // namespace dtb::sim
