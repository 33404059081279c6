#pragma once
// 1-bit Adam and QuantizedAdam (strategy.name = onebit_adam | quantized_adam): Adam whose
// momentum, not its gradient, crosses the network after a warm-up, compressed through
// the two-sided error-feedback sharded server (collectives/compressed_server.hpp).
//
// 1-bit Adam (Tang et al. 2021, "1-bit Adam: Communication Efficient Large-Scale Training
// with Adam's Convergence Speed"; DeepSpeed runtime/fp16/onebit/adam.py OnebitAdam):
//   steps t <= freeze_step (DeepSpeed's name): plain DP AdamW, the gradient allreduced as
//     DDP does (net.algo), both moments updated: bitwise the ddp run.
//   after: the variance v is frozen; each worker updates its momentum with its own
//     gradient, m = b1 m + (1 - b1) g_local, then m = compressed_allreduce(m) (sign + one
//     scale ||x||_2 / sqrt(n) per chunk, worker and server error feedback), and steps
//     p -= lr (m c1(t) / (sqrt(v c2(F)) + eps)) + lr wd p.
// QuantizedAdam (AQ-SGD's data-parallel path, Wang et al. 2022; DS3Lab AC-SGD
//   data_parallel/dist_dp_sharded_ps_compressed.py ShardedPSDPCompressed): the same
//   schedule with the momentum quantized to strategy.bits bits in 512-element buckets
//   (codec_kbit.cpp), error feedback on both sides. strategy.bits = 32 sends fp32 as it is:
//   the lossless setting, frozen-variance Adam on the averaged momentum (a test's reference).
// Every worker decodes the same bytes, so momentum and parameters stay identical on all
// workers (as after a DDP step); only the two error buffers differ per worker.
//
// Bias correction: c1(t) = 1 / (1 - b1^t) as AdamW; c2 frozen with v at F = freeze_step,
// 1 / (1 - b2^F), the unbiased v it froze. (DeepSpeed's OnebitAdam applies none; AC-SGD
// applies b2's at the current step to the frozen v; after a long warm-up all are ~1.)
// Clipping: the gradient is each worker's own after the warm-up; the norm the step
// clips by is sqrt(mean over workers of ||g_local||^2), summed over the world as DDP's.
// Units: the rank's pieces of the model's tensors (tensor_units: a layer's slice of one
// tensor, as the rank holds it), so that copies of one tensor on several ranks
// (TP-replicated LayerNorms, the tied embedding on the first and last stage) compress
// alike and stay equal; all of them in the same two rounds.
//
// Cost, beside the code (dtbench sim's add_compressed_momentum uses the same): per step
// after the warm-up each rank's N local parameters cross as W = wire(N) bytes, the sum
// over its chunks of the quantizer's encoded size (1 bit: N / 8 + 4 x tensors x p; k bits:
// N k / 8 + 2 ceil(N / 512)-ish), 2 (p - 1) W over the p ranks of a DP group
// (ring_allreduce_bytes_sent(p, W)), against DDP's 2 (p - 1) 4N: 32 / (1 + 32 x pieces
// x p / N) x less for 1 bit (pieces: the tensor pieces, one 4-byte scale per chunk), about
// 32 / k x less for k bits (less the fp16 scales). Over a run of S steps:
// (F 4N + (S - F) W) / S per step. (fp16 gradients: 2N for DDP, 16 x less for 1 bit.)
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "codec.hpp"
#include "communicator.hpp"
#include "compressed_server.hpp"
#include "parallel/grad_sync.hpp"  // UpdatePiece
#include "parallel/stage_model.hpp"  // ShardRun
#include "train/train_config.hpp"

namespace dtb::par {

// The compression units of a rank's buffer: its runs (stage_model.hpp) merged where one
// tensor continues contiguously.
std::vector<coll::Range> tensor_units(const std::vector<ShardRun>& runs);

class CompressedAdam {
 public:
  // UNITS: the tensors of this rank's buffer (their offsets and sizes); DP: its DP group.
  CompressedAdam(const StrategySettings& s, coll::Communicator& dp, std::vector<coll::Range> units,
                 bool error_feedback);

  // Does optimizer step STEP (0-based) send the compressed momentum? (after freeze_step steps)
  bool compressing(int64_t step) const { return step >= s_.freeze_step; }

  // The three parts of a step after the warm-up, on the rank's buffers (moments laid out
  // like the parameters). GRAD_SCALE: clipping x the DP size (each gradient is local / p).
  void update_momentum(float* m, const float* grads, const std::vector<UpdatePiece>& pieces, const OptimSettings& o,
                       double grad_scale) const;
  void communicate(std::span<float> m);  // collective over the DP group
  void apply(float* params, const float* m, const float* v, const std::vector<UpdatePiece>& pieces,
             const OptimSettings& o, double lr, int64_t t) const;

  size_t wire_bytes() const;  // W above, for this rank's buffer
  // Checkpoint state: the two error buffers (zeros before the first compressed step).
  std::vector<float> worker_error(size_t n) const;
  std::vector<float> server_error(size_t n) const;
  // SERVER may hold other workers' chunks (a union over workers): only this rank's are kept.
  void restore(std::vector<float> worker, std::vector<float> server);

 private:
  StrategySettings s_;
  coll::Communicator& dp_;
  std::vector<coll::Range> units_;
  std::unique_ptr<coll::Codec> q_;
  coll::ServerErrors errors_;
};

}  // namespace dtb::par
