#pragma once
// dtbench's step-time simulator: one training step of the 3D-parallel trainer
// (parallel/parallel_trainer.hpp) in steady state, predicted from the same network model
// (netem), the collectives' own cost models (collectives/cost_model.hpp: each algorithm's
// messages replayed over the links they take), the trainer's grid, placement, stage split
// and schedule (parallel/grid.hpp, schedule.hpp), and its device model. It is a model of
// that trainer: where they differ, the trainer is right (tests/test_sim_agreement.cpp
// holds them within 5% on 8 and 16 ranks, on mixed links too). Term by term:
//
// - device: the rate is peak x efficiency (device.peak_gflops, or device.profile's peak at
//   precision.compute; device.efficiency, or the profile's); compute is the FLOPs the
//   trainer's kernels issue / that rate (model_costs.hpp: matmuls and attention; the LM
//   head whole on every TP rank, or its vocabulary rows with parallel.vocab_parallel), per
//   micro-batch; stages hold the trainer's split (par::stage_bounds, parallel.stages).
// - vocabulary-parallel (parallel.vocab_parallel, TP > 1): the first stage's embedding is
//   one more TP allreduce of (micro-batch x T x C) before its first layer; the last
//   stage's cross-entropy a ring allgather of 3 floats per row and TP rank after the LM
//   head, and its backward one more allreduce of (micro-batch x T x C) after the LM head's.
// - TP (Megatron): per layer two allreduces of the (micro-batch x T x C) activations in
//   forward and two in backward (two more with recomputation), ring over the TP group,
//   blocking, at the points where the trainer makes them (pipeline.hpp: Piece). They come
//   back to back and a ring's ranks leave it at different times, so each costs the ring's
//   steady pace (its common-start time on alike links).
// - PP: each TP rank sends its micro-batch's activations (micro-batch x T x C) to the same
//   TP rank of the next stage, and the gradient back, through netem's path rule; the
//   trainer's schedule (GPipe or 1F1B) runs event by event for every DP replica with a
//   compute stream and two channels (TP/PP, DP) per stage, as the trainer's Timeline
//   (pipeline.hpp).
// - bubble: the pipeline's time with free PP messages minus the busiest stage's work and
//   what comes before stage 0's first operation.
// - DP: each rank's gradient buffer (model/stage.hpp's layer-major layout, at
//   precision.grads, or the codec's encoded size) in buckets of parallel.bucket_mb MiB cut
//   from its end, each allreduced over the DP group with net.algo's cost model (ZeRO-1:
//   ring reduce-scattered). A bucket is launched on the DP channel when the last
//   micro-batch's backward has finished the layer that completes it; TP allreduces and PP
//   sends go on beside it on the TP/PP channel. After its last backward, the first and
//   the last stage allreduce the tied embedding's gradient (raw, ring of two, each side
//   done when the ring reaches it), then the buckets holding the embeddings go, then
//   compute waits for both channels. The replicas' DP groups are coupled: each bucket is
//   replayed with every replica's launch time from the previous pass (a late replica
//   finds its peers waiting). What ends after the pipeline is exposed.
// - other: the grad-norm allreduce, over the trainer's group (parallel/step_scalars.hpp:
//   each replica's TP x PP ranks where every replica holds its stage's whole reduced
//   gradient, 4 bytes, nothing at all in pure DP, the loss summed off the clock; the world,
//   8 bytes with the loss, under ZeRO-1, gossip and 1-bit Adam; each worker's ranks for
//   DiLoCo, CocktailSGD, DeMo), a binomial tree, blocking, each rank entering when its stage
//   joined (a TP rank whose DP group is faster, earlier).
// - optimizer: AdamW is memory-bound: (2 x param bytes + grad bytes + 16, + 8 with an
//   fp32 master copy) bytes per parameter it updates (ZeRO-1: its DP block) at
//   device.memory_gbs (or the profile's bandwidth; free without one). Each rank runs it
//   when it leaves the previous step's norm, then (ZeRO-1) the parameter allgather,
//   replayed from when each DP rank gets there, then its first operation.
// - DiLoCo (strategy.name = diloco | streaming_diloco): no per-step buckets; the norm and
//   loss over each worker's own ranks (above); every H steps one allreduce of each rank's whole
//   pseudo-gradient, its time and bytes amortised over H (streaming: F syncs of N / F,
//   each exposed only beyond tau steps); 12 more bytes per parameter (anchor, outer
//   momentum, pseudo-gradient, fp32).
// - steady state: the step runs a few times, each rank starting where it left the previous
//   one (the tree's root first); the step is world rank 0's period, as the trainer's step
//   line reads it (the mean of the last two: without a world-wide norm the replicas, coupled
//   by their DP buckets only, may alternate), its parts those of rank 0's replica;
//   slowdown = step / the same step with every message free.
// Placement: the trainer's (parallel.placement: which world rank plays each grid position,
// optional sites per rank; Megatron's order by default) on the profile's sites. The worst
// TP rank's link sets a PP boundary.
// Not modelled: contention between concurrent collectives or PP sends on one NIC (sends
// charge no sender time), jitter and loss, selective recomputation, interleaved 1F1B,
// sequence parallelism, the compute of LayerNorm, GELU, softmax and the embedding lookup
// (the trainer's device model charges none); one timeline per stage, its TP ranks meeting
// in every TP allreduce.
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
  double compute_fwd = 0, compute_bwd = 0, tp = 0, bubble = 0, pp_exposed = 0, dp_exposed = 0, other = 0,
         optimizer = 0;
  double step = 0;
  double pp_total = 0;  // one rank's PP messages on the wire (busiest boundary), hidden or not
  double dp_total = 0;  // the DP buckets' own time on the DP channel (busiest rank, its group launching
                        // together: a wait for a late peer is skew), hidden or not
  double ideal = 0;     // the same step with free communication
};

struct MemoryPerRank {  // bytes, on the rank (stage) that needs the most
  double params = 0, grads = 0, optimizer = 0, activations = 0;
  double pp_buffers = 0;  // parallel.pp_compress = aqsgd: the per-sample buffers (par::pp_buffer_bytes)
  int stage = 0;
  double total() const { return params + grads + optimizer + activations + pp_buffers; }
};

struct SimResult {
  std::string net_name, device_name;
  int world = 1, micro_batch = 1, dp_buckets = 1;
  double params = 0, flops_per_token = 0, tokens_per_step = 0;
  double peak_flops = 0;  // per device, at precision.compute
  double efficiency = 1;  // the fraction of it achieved
  StepTimes time;
  LinkBytes tp_bytes, pp_bytes, dp_bytes;
  LinkBytes dp_bytes_warmup;  // 1-bit Adam / QuantizedAdam: dp_bytes during the warm-up (DDP's)
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
  netem::Profile profile;  // for the layout's world size, the placement's sites and net.* overrides applied
  Device device;
  par::Placement placement;  // parallel.placement, or the identity
};
// Throws UsageError for an unknown profile or device or a world the profile cannot hold.
SimInputs load_inputs(const SimSettings& s);
netem::Profile apply_overrides(netem::Profile profile, const NetOverrides& o);

SimResult simulate(const SimSettings& s, const SimInputs& in);
SimResult simulate(const SimSettings& s);

}  // namespace dtb::sim
