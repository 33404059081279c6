#pragma once
// One pipeline (the PP stages of one DP replica) through one step's schedule, event by
// event: a stage runs its operations (F i = forward of micro-batch i, B i = backward) in
// the schedule's order, each as soon as the stage is free and its input has arrived.
// F i on stage s > 0 needs the activation that F i on stage s-1 sent; B i on stage
// s < PP-1 needs the gradient that B i on stage s+1 sent; the last stage runs B i after its
// own F i. Messages follow netem's rule for one path: a boundary's sends leave in order,
// each after the previous one has been serialized (depart = max(link free, ready) +
// bytes/rate), and arrive one latency later. Sends are asynchronous: the sender goes on
// computing (they run on the communication stream).
//
// Schedules (Megatron-LM's order, micro-batches in ascending order):
//   GPipe: F 0..M-1, then B 0..M-1.
//   1F1B:  w = min(PP - s - 1, M) warm-up forwards, then F w+i / B i alternating, then the
//          remaining backwards.
// With free communication and equal stages (forward f, backward b per micro-batch) both
// take (M + PP - 1)(f + b): the bubble is (PP - 1)(f + b), a fraction (PP - 1)/(M + PP - 1)
// of the step (Huang et al. 2019; Narayanan et al. 2021). 1F1B keeps at most PP - s
// micro-batches' activations on stage s instead of GPipe's M.
#include <vector>

#include "sim/sim_config.hpp"

namespace dtb::sim {

struct StageTimes {
  double fwd = 0, bwd = 0;  // one micro-batch on one stage: compute plus blocking TP comm
};

struct Hop {
  double latency = 0, serialize = 0;  // one message over one boundary, one direction
};

struct PipelineInput {
  std::vector<StageTimes> stages;     // PP entries
  std::vector<Hop> forward, backward;  // PP - 1 boundaries: s -> s+1 and s+1 -> s
  int microbatches = 1;
  Schedule schedule = Schedule::k1F1B;
};

struct PipelineTimes {
  double end = 0;                  // the last operation of any stage has finished
  std::vector<double> last_start;  // per stage: the start of its last backward
  std::vector<double> last_end;    // per stage: the end of its last backward
};

PipelineTimes run_pipeline(const PipelineInput& in);

// Micro-batches whose activations stage S holds at most (for the memory estimate).
int microbatches_in_flight(Schedule schedule, int pp, int stage, int microbatches);

}  // namespace dtb::sim
