#pragma once
// One pipeline (the PP stages of one DP replica) through one step, event by event, with
// the trainer's streams per rank (parallel/timeline.hpp): a stage runs its operations
// (F i = forward of micro-batch i, B i = backward) in the schedule's order on its compute
// stream; TP and PP communication runs on its TP/PP channel, in order, and the DP buckets
// on its DP channel, in order.
//   - a pass is pieces of compute, each followed by a blocking TP allreduce (it starts when
//     compute and the TP/PP channel are both there; compute waits for its end);
//   - F i on stage s > 0 receives the activation F i on s-1 sent, B i on s < PP-1 the
//     gradient B i on s+1 sent: a blocking receive (it too waits for the TP/PP channel);
//   - sends are asynchronous: ready when compute and the TP/PP channel are there, then
//     netem's rule for one path: a boundary's sends leave in order, each after the previous
//     one has been serialized (depart = max(link free, ready) + bytes/rate), and arrive one
//     latency later; the sender goes on at once;
//   - on the last micro-batch's backward, a DP bucket is launched on the DP channel as
//     soon as a piece has made its gradients final (it starts when compute and the DP
//     channel are both there); compute and the TP/PP channel go on beside it. The two
//     channels share the rank's egress NIC as netem's do (netem::NicQueue): where a NIC or
//     host cap binds, each bucket books the NIC time its messages take there and each PP
//     send its own; what one channel booked first, the other waits for or fills the gaps of.
//     The tied embedding's sum books its messages there too. Not booked: the TP allreduces
//     (a TP group that leaves its host would share the NIC too) and the receivers'
//     ingress NICs;
//   - after its last operation a stage allreduces the tied embedding (first and last stage:
//     blocking, on the TP/PP channel, each side done when the collective reaches it),
//     launches the remaining buckets and waits for both channels (join).
// The order of each stage's operations is the trainer's (parallel/schedule.hpp: GPipe or
// 1F1B).
// With free communication and equal stages (forward f, backward b per micro-batch) both
// take (M + PP - 1)(f + b): the bubble is (PP - 1)(f + b), a fraction (PP - 1)/(M + PP - 1)
// of the step (Huang et al. 2019; Narayanan et al. 2021). 1F1B keeps at most PP - s
// micro-batches' activations on stage s instead of GPipe's M.
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include "cost_model.hpp"  // coll::NicBusy
#include "network.hpp"     // netem::NicQueue
#include "sim/sim_config.hpp"

namespace dtb::sim {

struct StageTimes {
  double fwd = 0, bwd = 0;  // one micro-batch on one stage: compute plus blocking TP comm
};

// Compute, then (allreduce > 0) a blocking TP allreduce of that many seconds; then, when
// ready >= 0, every gradient at local offset >= ready is final.
struct Piece {
  double compute = 0, allreduce = 0, ready = -1;
};

struct Bucket {
  double offset = 0;  // of its first element in the rank's buffer
  double cost = 0;    // its DP allreduce, seconds
  double until = -std::numeric_limits<double>::infinity();  // nor does it end before (its DP peers)
  std::vector<coll::NicBusy> nic;  // its messages on the rank's capped egress NIC, from its start
};

struct StageWork {
  std::vector<Piece> fwd, bwd;  // one micro-batch
  double start = 0;             // when the stage begins its first operation
  std::vector<Bucket> buckets;  // in launch order (from the buffer's end)
  static StageWork plain(const StageTimes& t) { return {{{t.fwd}}, {{t.bwd}}, 0, {}}; }
  double work() const;          // compute and TP of one forward and one backward
};

struct Hop {
  double latency = 0, serialize = 0;  // one message over one boundary, one direction
  double nic = 0;  // its time at the sender's egress NIC cap (0: none binds)
};

// The tied embedding's gradient sum between the first and the last stage (PP > 1): given
// when each is ready, when each is done (a collective need not end at once on both). Its
// messages take each end's egress NIC as the TP/PP channel (FIRST_NIC, LAST_NIC: the DP
// buckets in flight there booked it first).
using TiedSync = std::function<std::pair<double, double>(double first_ready, double last_ready,
                                                         netem::NicQueue& first_nic, netem::NicQueue& last_nic)>;

struct PipelineInput {
  std::vector<StageWork> stages;       // PP entries
  TiedSync tied;                       // null: none (PP = 1, or free)
  std::vector<Hop> forward, backward;  // PP - 1 boundaries: s -> s+1 and s+1 -> s
  int microbatches = 1;
  par::ScheduleKind schedule = par::ScheduleKind::k1F1B;
};

struct PipelineTimes {
  double end = 0;               // the last operation of any stage has finished (compute)
  std::vector<double> done;     // per stage: joined, every bucket and the tied embedding reduced
  std::vector<double> dp_busy;  // per stage: its buckets on the DP channel
  std::vector<std::vector<double>> bucket_start;  // per stage: when each bucket began there
  double sync_end() const;      // the latest done
};

PipelineTimes run_pipeline(const PipelineInput& in);

}  // namespace dtb::sim
