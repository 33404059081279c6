#pragma once
// The scalars that end a training step: the global gradient norm (for clipping) and the
// loss (only logged). Which ranks sum them, in what order, and with which algorithm: what
// the trainer runs (parallel_trainer.cpp, train_step) and what the simulator charges
// (sim/simulator.cpp, norm_ends), from the same functions.
//
// The norm is the square root of the sum of every gradient element's square, each element
// counted once (ShardRun::owned: TP-replicated tensors such as LayerNorm on TP rank 0, the
// tied wte on the first stage). As in Megatron-LM, where every DP replica ends the DP sync
// holding its stage's whole reduced gradient, the same bits as every other replica's (a
// plain allreduce by an exact algorithm), each rank squares its whole shard and the sum runs
// over its replica's TP x PP ranks: in pure DP no message at all. Where a rank holds only
// part of the reduced gradient (ZeRO-1: its DP block) or replicas may hold different ones
// (1-bit Adam / QuantizedAdam after the warm-up: each its local gradient; gossip: an
// estimate; a gradient spike injected on one rank), each rank squares its DP block and the
// sum crosses the world.
//
// The loss is only logged. Where the norm crosses the world, the loss rides in its message.
// Where the norm stays in a replica, the loss is summed over the world outside the emulated
// network (control plane, no emulated time: a real trainer reduces it asynchronously, off
// the critical path), in the world tree's order, so what is logged is bitwise what the
// tree gives (world_tree_sum).
//
// DiLoCo, CocktailSGD and DeMo step each worker alone: norm and loss inside the worker.
#include <span>
#include <string>

#include "cost_model.hpp"
#include "parallel/grid.hpp"

namespace dtb::par {

enum class NormGroup {
  kWorld,    // every rank, each squaring its DP block; the loss in the same message
  kReplica,  // each DP replica's TP x PP ranks, each squaring its whole shard; the loss off the clock
  kWorker,   // each worker's TP x PP ranks (the strategy steps workers alone); its own loss in the message
};

// What decides the group (the trainer's keys, as both the trainer and the simulator read them).
struct NormInputs {
  std::string strategy = "ddp";  // strategy.name
  bool compressing = false;      // 1-bit Adam / QuantizedAdam past the warm-up (each worker's local gradient)
  bool zero1 = false;            // parallel.zero1
  std::string dp_algo = "ring";  // net.algo
  bool spike_on_one_rank = false;  // faults.grad_spike_step set with faults.grad_spike_rank >= 0
};
NormGroup norm_group(const NormInputs& in);

// Floats in the norm's message: the norm and the loss, or (kReplica) the norm alone.
int norm_floats(NormGroup group);

// Where the rank at grid position AT (world rank WORLD_RANK) sits: the ranks of one color
// sum together, in world-rank order (kWorld: the world communicator itself; a replica's
// ranks: with Megatron's placement TP fastest, then PP). So world rank 0 is its tree's root
// and leaves it first, as the simulator's steady state has it (a placement file that makes
// rank 0 a leaf of its replica's tree put the simulator 18% above the trainer).
struct NormMember {
  int color, key;
};
NormMember norm_member(NormGroup group, const Coord& at, int world_rank);

// The norm's messages over a group of N ranks: a binomial tree allreduce of norm_floats
// floats (a few floats: 2 floor(log2 N) latencies where a ring takes 2 (N - 1)); the
// trainer runs coll::tree_allreduce, which sends exactly these.
void norm_rounds(NormGroup group, int n, const coll::RoundSink& emit);

// The sum coll::tree_allreduce gives over ranks holding PER_RANK (one float each, in the
// communicator's order), bitwise: its reduce rounds replayed in order.
float tree_sum(std::span<const float> per_rank);

}  // namespace dtb::par
