#pragma once
// DP strategies that change the optimizer, not only the bytes (strategy.name; ddp, the
// per-step gradient allreduce, is grad_sync.hpp).
//
// DiLoCo (Douillard et al. 2023, "DiLoCo: Distributed Low-Communication Training of
// Language Models"; as OpenDiLoCo and INTELLECT-1 run it). Each DP replica, a "worker"
// (its own TP x PP ranks inside), takes H = strategy.inner_steps AdamW steps on its own
// rows of every global batch with no DP communication. Then every rank averages the
// pseudo-gradient over its DP group (net.algo, with net.codec / codec_scope /
// error_feedback, the same collectives as DDP's buckets) and an outer Nesterov SGD step
// (PyTorch's SGD(nesterov=True), as OpenDiLoCo) moves the anchor, the parameters all
// workers agreed on at the last outer step:
//   Delta  = mean over workers of (anchor - params)
//   m      = mu m + Delta
//   anchor = anchor - lr_out (Delta + mu m)       (mu = 0: anchor - lr_out Delta)
//   params = anchor                                (every worker restarts from it)
// The inner AdamW moments stay each worker's own, not reset. Outer steps happen after
// global steps H, 2H, ... (every rank counts the same steps, so all agree on when).
//
// Cost, beside the code (the simulator's sim/strategies.cpp uses the same formula): per
// outer step each rank allreduces its N local parameters' pseudo-gradient once: a ring
// sends 2 (p-1)/p wire(N) bytes per rank (wire = the codec's encoded size, 4N raw), so
// summed over the p ranks 2 (p-1) wire(N); per inner step that is amortised over H. DDP
// sends the same every step, so DiLoCo moves H x less (x 4N / wire(N) with a codec).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "codec.hpp"
#include "communicator.hpp"
#include "registry.hpp"
#include "train/train_config.hpp"  // StrategySettings

namespace dtb::par {

// Bytes all P ranks of a ring send, together, for one allreduce of WIRE bytes each:
// 2 (p-1) wire. DiLoCo's per outer step; DDP's per step.
double ring_allreduce_bytes_sent(int p, double wire);

class DiLoCo {
 public:
  // N: this rank's parameter elements; PARAMS its starting values (the first anchor).
  // DP: the rank's DP group (its peers: the same TP x PP position in every worker).
  DiLoCo(const StrategySettings& s, coll::Communicator& dp, const std::string& algo, const coll::CollParams& params,
         const std::string& codec, coll::CodecScope scope, bool error_feedback, std::span<const float> start);

  // After STEPS_DONE global steps, is an outer step due? (the same answer on every rank)
  bool due(int64_t steps_done) const { return steps_done % s_.inner_steps == 0; }
  // The outer step above; collective over the DP group. PARAMS ends as the new anchor.
  void outer_step(std::span<float> params);

  // Checkpoint state, in this rank's local layout: the anchor, the outer momentum, the
  // codec's error-feedback residual (zeros when none), and the outer steps done (the
  // stochastic codecs' stream).
  const std::vector<float>& anchor() const { return anchor_; }
  const std::vector<float>& momentum() const { return momentum_; }
  std::vector<float> residual() const;
  void restore(std::vector<float> anchor, std::vector<float> momentum, const std::vector<float>& residual,
               uint64_t outer_steps);

 private:
  StrategySettings s_;
  coll::Communicator& dp_;
  const coll::Algorithm& algo_;
  coll::CollParams params_;
  std::unique_ptr<coll::Codec> codec_;
  coll::CodecScope scope_;
  coll::CodecState codec_state_;
  std::vector<float> anchor_, momentum_, delta_;
};

}  // namespace dtb::par
