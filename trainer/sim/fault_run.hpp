#pragma once
// A whole run under link faults (faults.outages, faults.bandwidth, faults.burst_*;
// netem/link_faults.hpp): the simulator's step is a steady state, a fault is a function
// of time, so the run is walked through the faults' states. Between two changes of state
// the run advances at the step time that state gives (simulate() on the profile as the
// state has it: the shaped links' bandwidth times the factor; bursty loss as its long-run
// rate, as time per byte and per message, since the simulator draws no losses: a round
// that waits for the slowest of its messages waits longer than the mean, so bursty loss is
// predicted low); while a link between two sites holding ranks is down, the run stands still
// (the trainer's steps are synchronous: its messages wait for the link). A step that a
// change cuts finishes the rest of its work at the new state's pace. Where a state
// changes inside a step this is off by at most that step's compute or communication
// overlap (tests/test_sim_agreement.cpp holds it to the trainer's run within 5%).
#include "sim/simulator.hpp"

namespace dtb::sim {

struct FaultRun {
  double seconds = 0;  // STEPS steps under the faults
  double without = 0;  // the same steps without them
};

// The time of STEPS steps from time 0 (the trainer's clocks start at 0).
FaultRun simulate_fault_run(const SimSettings& s, const SimInputs& in, int steps);

}  // namespace dtb::sim
