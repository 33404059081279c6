#pragma once
// DeMo (Peng et al. 2024, "DeMo: Decoupled Momentum Optimization"), as bloc97/DeMo's
// demo.py runs it (strategy.name = demo). It replaces AdamW:
//   p     <- p (1 - lr wd)                     (decayed tensors, as the AdamW baseline's)
//   delta <- beta delta + lr g                 (g: this worker's clipped gradient; beta = strategy.momentum_decay)
//   C     =  DCT-II (orthonormal) of delta over chunks of c = strategy.chunk elements
//   send  =  per chunk the k = strategy.topk largest |C| as (index, value)
//   delta <- delta - IDCT(send)                (what was sent leaves the momentum: its error feedback)
//   all-gather every worker's (index, value) pairs over the DP group
//   G     =  per chunk and index the mean of the values the workers sent there (0 where none;
//            demo.py's scatter_reduce "mean", include_self=False), then IDCT
//   p     <- p - lr sign(G)                    (demo.py's sign-SGD step; sign(0) = 0)
// Every worker applies the same G, so the parameters stay identical across workers; each
// keeps its own delta. The chunks are contiguous slices of each rank's flat buffer (its
// TP x PP share), the last one shorter when c does not divide it; demo.py cuts each 2-D
// weight into c x c tiles with a 2-D DCT (its chunk 64 = 4096-element tiles: here c = 4096
// gives the same share sent, k / c). The DCT is Debian's FFTW (single precision, r2r
// REDFT10 forward, REDFT01 inverse, FFTW_ESTIMATE plans: the same algorithm every run, so
// bitwise deterministic), scaled to the orthonormal DCT as torch-dct's norm="ortho".
// Ties in top-k go to the lower index; indices are sent in ascending order.
//
// Cost, beside the code (dtbench sim uses demo_payload_bytes): per rank and step the
// payload is ceil(N / c) chunks x k pairs x 8 bytes (index and value as fp32; indices
// below 2^24 are exact) and a ring all-gather moves (p - 1) payloads per rank:
//   bytes per rank = (p - 1) x 8 k ceil(N / c)
// demo.py counts its own payload (int64 index + fp32 value: 12 bytes a pair) as "data
// transmitted", against AdamW-DDP's ring allreduce 2 (p - 1) / p 4N.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "communicator.hpp"
#include "train/train_config.hpp"  // StrategySettings

namespace dtb::par {

// The orthonormal DCT-II and its inverse over consecutive chunks of a buffer of N elements.
class ChunkDct {
 public:
  ChunkDct(size_t n, size_t chunk);
  ~ChunkDct();
  ChunkDct(const ChunkDct&) = delete;
  ChunkDct& operator=(const ChunkDct&) = delete;
  void forward(std::span<const float> in, std::span<float> out);
  void inverse(std::span<const float> in, std::span<float> out);
  size_t chunk() const { return chunk_; }

 private:
  struct Plans;
  void run(bool forward, std::span<const float> in, std::span<float> out);
  size_t n_, chunk_;
  std::unique_ptr<Plans> plans_;
};

// Bytes of one rank's payload per step for a buffer of N elements.
double demo_payload_bytes(double n, int chunk, int k);

// Memory traffic of DeMo's step per parameter, charged on the device model's bandwidth by
// the trainer and the simulator alike: it updates its momentum, transforms it three times
// and updates the parameters.
inline constexpr double kDemoBytesPerParam = 12 * sizeof(float);

class DeMo {
 public:
  // DP: the rank's DP group (the all-gather's). N: this rank's parameters.
  DeMo(const StrategySettings& s, coll::Communicator& dp, size_t n, bool error_feedback);
  coll::Communicator& group() { return dp_; }
  size_t payload_floats() const { return payload_; }  // this rank's (index, value) pairs x 2

  // Steps 2-4 above: the momentum updated from GRADS x CLIP (the clip scale) and LR, its
  // payload written to OUT (payload_floats(): per chunk k indices, then k values), the sent
  // part subtracted from the momentum (error feedback off: kept).
  void encode(std::span<const float> grads, float clip, float lr, std::span<float> out);
  // Steps 5-6: GATHERED holds P payloads in worker order; returns G.
  std::vector<float> decode(std::span<const float> gathered, int p);

  const std::vector<float>& momentum() const { return delta_; }
  void restore(std::vector<float> momentum);
  ChunkDct& dct() { return dct_; }

 private:
  coll::Communicator& dp_;
  size_t n_, chunk_, k_, payload_;
  double decay_;
  bool error_feedback_;
  ChunkDct dct_;
  std::vector<float> delta_, coef_, sparse_, back_;
};

}  // namespace dtb::par
