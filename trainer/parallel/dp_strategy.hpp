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
// Streaming DiLoCo (Douillard et al. 2025, "Streaming DiLoCo with overlapping
// communication"): the buffer is cut into F = strategy.fragments fragments (here
// contiguous slices of each rank's flat buffer, so groups of consecutive layers; the paper
// strides layers), fragment f synced after global steps t with (t + f H / F) % H == 0, so
// the syncs take turns and each moves 1/F of the model (the peak bandwidth / F). A sync's
// pseudo-gradient is taken when it starts and sent on the DP channel while the next
// tau = strategy.overlap_steps inner steps run; tau steps later the outer step lands and
// the fragment becomes alpha local + (1 - alpha) anchor (alpha = strategy.mix). DiLoCo is
// F = 1, tau = 0, alpha = 0.
//
// Cost, beside the code (the simulator's add_outer_step uses the same): per outer step
// each rank allreduces its N local parameters' pseudo-gradient once: a ring sends
// 2 (p-1)/p wire(N) bytes per rank (wire = the codec's encoded size, 4N raw), so summed
// over the p ranks 2 (p-1) wire(N); per inner step that is amortised over H. DDP sends
// the same every step, so DiLoCo moves H x less (x 4N / wire(N) with a codec); Streaming
// DiLoCo the same on average, at most wire(N / F) in one step.
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

// Memory traffic of one outer step per parameter of the fragment, charged on the device
// model's bandwidth by the trainer and the simulator alike: anchor, params, outer momentum
// and pseudo-gradient, read and written.
inline constexpr double kOuterBytesPerParam = 8 * sizeof(float);

// Bytes all P ranks of a ring send, together, for one allreduce of WIRE bytes each:
// 2 (p-1) wire. DiLoCo's per outer step; DDP's per step.
double ring_allreduce_bytes_sent(int p, double wire);

class DiLoCo {
 public:
  // START: this rank's parameters (the first anchor). DP: the rank's DP group (its peers:
  // the same TP x PP position in every worker).
  DiLoCo(const StrategySettings& s, coll::Communicator& dp, const std::string& algo, const coll::CollParams& params,
         const std::string& codec, coll::CodecScope scope, bool error_feedback, std::span<const float> start);

  int fragments() const { return int(frags_.size()); }
  // After STEPS_DONE global steps: does fragment F's sync start now, or land now (the one
  // started tau steps before)? The same answers on every rank.
  bool starts(int64_t steps_done, int f) const;
  bool lands(int64_t steps_done, int f) const { return steps_done >= s_.overlap_steps && starts(steps_done - s_.overlap_steps, f); }
  // Starting a sync: the fragment's pseudo-gradient from PARAMS (the caller's thread), then
  // send(f), the collective (collective over the DP group; may run on the comm thread).
  void take(int f, std::span<const float> params);
  void send(int f);
  // Landing: the outer step on the fragment's anchor and the mix into PARAMS.
  void land(int f, std::span<float> params);

  // Checkpoint state, in this rank's local layout: the anchor, the outer momentum, the
  // codec's error-feedback residual (zeros when none) and the pseudo-gradients of syncs
  // in flight (their averages, once sent: zeros elsewhere).
  const std::vector<float>& anchor() const { return anchor_; }
  const std::vector<float>& momentum() const { return momentum_; }
  const std::vector<float>& in_flight() const { return delta_; }
  std::vector<float> residual() const;
  // STEPS_DONE: where the run resumes (each fragment's codec stream counts its syncs).
  void restore(std::vector<float> anchor, std::vector<float> momentum, const std::vector<float>& residual,
               std::vector<float> in_flight, int64_t steps_done);

 private:
  struct Fragment {
    size_t offset, size;
    coll::CodecState codec_state;  // error feedback over this fragment's syncs
  };
  std::span<float> slice(std::vector<float>& v, int f) { return std::span(v).subspan(frags_[size_t(f)].offset, frags_[size_t(f)].size); }

  StrategySettings s_;
  coll::Communicator& dp_;
  const coll::Algorithm& algo_;
  coll::CollParams params_;
  std::unique_ptr<coll::Codec> codec_;
  coll::CodecScope scope_;
  std::vector<Fragment> frags_;
  std::vector<float> anchor_, momentum_, delta_;
};

}  // namespace dtb::par
