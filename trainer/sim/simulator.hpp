#pragma once
// dtbench's step-time simulator: one training step of the 3D-parallel trainer, predicted
// from the same network model (netem) and collective cost formulas (collectives/) that the
// emulated runs use, and a device model (FLOPs / (peak x efficiency)). The model, term by
// term (every time is per step, on the critical path unless it says otherwise):
//
// - compute: a stage's FLOPs per token (model_costs.hpp, 6N + 6LCT in all) x micro-batch
//   tokens / TP / (peak x efficiency), 1/3 forward and 2/3 backward, per micro-batch;
//   with train.recompute the backward also redoes the forward (1/3 more).
// - TP (Megatron): per layer two allreduces of the (micro-batch x T x C) activations in
//   forward and two in backward (two more with recomputation), ring allreduce over the TP
//   group, blocking: added to the stage's forward and backward time.
// - PP: each TP rank sends its micro-batch's activations (micro-batch x T x C) to the same
//   TP rank of the next stage, and the gradient back, through netem's path rule; the
//   schedule (GPipe or 1F1B, pipeline.hpp) is run event by event for every DP replica.
// - bubble: the pipeline's time with free PP messages minus the busiest stage's work.
// - DP: each rank's gradient (its stage's parameters / TP, at precision.grads, or the
//   codec's encoded size) in buckets of dp.bucket bytes, each bucket allreduced over the
//   DP group with dp.algo's cost formula. Overlap model: a stage's gradients are final
//   only during its last micro-batch's backward, so bucket k of K is ready at
//   start + k/K x (that backward's duration) (on every replica of the group: the latest
//   one counts) and the buckets run one after another on the communication stream. What
//   ends after the pipeline is exposed. With PP > 1 the tied embedding's gradient is then
//   allreduced between the first and the last stage.
// - optimizer: AdamW is memory-bound: (2 x param bytes + grad bytes + 16, + 8 with an
//   fp32 master copy) bytes per parameter of the rank at the device's memory bandwidth.
// - the step is pipeline + exposed DP + optimizer; slowdown = step / the same step with
//   every message free.
// Placement: rank = tp + dp TP + pp TP DP (Megatron's order) on the profile's sites
// (ranks fill the sites in order). The worst group, boundary and stage set the time.
// Not modelled: contention between concurrent collectives or PP sends on one NIC, ZeRO,
// selective recomputation, interleaved 1F1B, sequence parallelism, the slowdown of compute
// and communication sharing a GPU, placements other than the identity.
#include <string>

#include "network.hpp"
#include "profile.hpp"
#include "sim/device.hpp"
#include "sim/sim_config.hpp"

namespace dtb::sim {

struct LinkBytes {
  double intra = 0, inter = 0;  // payload bytes sent per rank per step (mean over ranks)
  double total() const { return intra + inter; }
};

struct StepTimes {  // seconds per step
  // The critical path: these add up to `step`.
  double compute_fwd = 0, compute_bwd = 0, tp = 0, bubble = 0, pp_exposed = 0, dp_exposed = 0, optimizer = 0;
  double step = 0;
  double pp_total = 0;  // one rank's PP messages on the wire (busiest boundary), hidden or not
  double dp_total = 0;  // the DP sync on the communication stream (slowest stage), hidden or not
  double ideal = 0;     // the same step with free communication
};

struct MemoryPerRank {  // bytes, on the rank (stage) that needs the most
  double params = 0, grads = 0, optimizer = 0, activations = 0;
  int stage = 0;
  double total() const { return params + grads + optimizer + activations; }
};

struct SimResult {
  std::string net_name, device_name;
  int world = 1, micro_batch = 1, dp_buckets = 1;
  double params = 0, flops_per_token = 0, tokens_per_step = 0;
  double peak_flops = 0;  // per device, at precision.compute
  double efficiency = 1;  // the fraction of it achieved
  StepTimes time;
  LinkBytes tp_bytes, pp_bytes, dp_bytes;
  MemoryPerRank memory;
  double memory_capacity = 0;
  double slowest_link_Bps = 0;  // the slowest link carrying traffic (payload bytes/s; inf = none)
  double largest_latency_s = 0;

  double tokens_per_s() const { return tokens_per_step / time.step; }
  double mfu() const { return flops_per_token * tokens_per_step / time.step / (world * peak_flops); }
  double slowdown() const { return time.step / time.ideal; }
  bool fits() const { return memory.total() <= memory_capacity; }
};

// netem's model for the simulator: only its closed-form terms (alpha, beta, sites) are
// asked, and those read the profile alone; the per-pair queue state that a timed run needs
// (world^2 entries: 1.6 GB at 8,192 ranks) is built for one rank only.
netem::NetworkModel closed_form_model(const netem::Profile& profile);

struct SimInputs {
  netem::Profile profile;  // for the layout's world size, net.* overrides applied
  Device device;
};
// Throws UsageError for an unknown profile or device or a world the profile cannot hold.
SimInputs load_inputs(const SimSettings& s);
netem::Profile apply_overrides(netem::Profile profile, const NetOverrides& o);

SimResult simulate(const SimSettings& s, const SimInputs& in);
SimResult simulate(const SimSettings& s);

}  // namespace dtb::sim
