#pragma once
// CocktailSGD (Wang et al., ICML 2023, "CocktailSGD: Fine-tuning Foundation Models over
// 500Mbps Networks"), as DS3Lab/CocktailSGD's data_parallel/dist_dp_cocktail_sgd.py runs it
// (strategy.name = cocktail).
//
// Each DP worker (its own TP x PP ranks inside) steps AdamW on its own gradient; what
// crosses between workers is the model delta, params - global, where global are the
// parameters all workers agreed on. Every step, after the optimizer, each rank's buffer of
// N elements is cut into p chunks (chunk i served by DP rank i, a sharded parameter server)
// and for each chunk:
//   1. random sparsification: the rolling subset S_t of the chunk, every s-th element
//      (s = int(1 / strategy.random_ratio)) shifted by t, the sync's number (the reference's
//      "random_rolling", its default: every worker knows S_t without sending it);
//   2. top-k: of x = (params - global)[S_t], the k = max(int(topk_ratio m), 1) largest |x|
//      (m = |S_t|), sent as a bit mask over S_t and the values in index order;
//   3. quantization: the values in buckets of 128, scale = fp16(max |x|), each as
//      clip(round(x / (scale + 1e-6) 2^(b-1)), -2^(b-1), 2^(b-1) - 1) in b = strategy.bits
//      bits (b = 32: fp32 values, no quantization).
// Worker error feedback: the decoded message is subtracted from params, so params - global
// keeps exactly what was not sent (the reference's "revert"). Server i averages the p
// decoded messages of chunk i, adds its residual on S_t, compresses that again (top-k +
// quantization over S_t), keeps avg - decoded as its residual (server error feedback) and
// sends it to every worker; each adds the decoded average to params and to global.
// As in the reference the exchange overlaps the next step's forward and backward (the
// trainer launches it on the DP channel after the optimizer and joins it before the next
// optimizer step): that step's gradient is taken before the average lands.
//
// Differences from the reference, all for a buffer of any length: buckets of 128 contiguous
// values (the reference's view(128, -1) strides them and needs k a multiple of 128, so it
// rounds k and the subset down to multiples of 128); values are fp32 (the reference sends
// fp16 deltas); ties in top-k go to the lower index.
//
// Cost, beside the code (dtbench sim uses cocktail_chunk_bytes): a chunk of n elements has
// m = ceil(n / s) in its subset and k = max(int(topk_ratio m), 1) sent, so
//   wire(n) = ceil(m / 8) + ceil(k b / 8) + 2 ceil(k / 128)       (b < 32)
//   wire(n) = ceil(m / 8) + 4 k                                   (b = 32)
// Each rank sends its p - 1 foreign chunks to their servers and, as a server, its chunk to
// the p - 1 others: 2 (p - 1) wire(N / p) bytes per rank per step (the parameter server
// with p servers: net.algo = ps's rounds), against DDP's ring 2 (p - 1) / p 4N.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "communicator.hpp"
#include "train/train_config.hpp"  // StrategySettings

namespace dtb::par {

// Memory traffic of a sync per parameter, charged on the device model's bandwidth by the
// trainer and the simulator alike: take reads params and global and writes params, land
// reads pending and writes params and global.
inline constexpr double kCocktailBytesPerParam = 6 * sizeof(float);

// One chunk's compressor (steps 1-3), a pure function of its settings.
struct CocktailCodec {
  double random_ratio = 0.1, topk_ratio = 0.2;
  int bits = 4;
  static constexpr size_t kBucket = 128;

  size_t stride() const;                              // s = int(1 / random_ratio) >= 1
  size_t subset_size(size_t n) const;                  // m
  size_t kept(size_t m) const;                         // k
  size_t wire_bytes(size_t n) const;                   // the encoded size of a chunk of N elements
  size_t message_bytes(size_t m) const;                // ... of a subset of M elements
  // S_t: the subset's indices into a chunk of N elements, ascending.
  std::vector<uint32_t> subset(size_t n, uint64_t t) const;
  // X (the values on the subset, m of them) -> exactly wire_bytes bytes, and back (m values,
  // zero where not kept).
  std::vector<std::byte> encode(std::span<const float> x) const;
  std::vector<float> decode(std::span<const std::byte> in, size_t m) const;
};

// Bytes per rank per step for a buffer of N elements over P workers (the comment above).
double cocktail_bytes_per_rank(const CocktailCodec& codec, double n, int p);

class CocktailSGD {
 public:
  // DP: the rank's DP group. START: this rank's parameters (the first global). ERROR_FEEDBACK
  // off: the worker drops what the top-k and quantization lost on the subset (params -= x,
  // not the decoded x) and the server keeps no residual.
  CocktailSGD(const StrategySettings& s, coll::Communicator& dp, bool error_feedback, std::span<const float> start);

  const CocktailCodec& codec() const { return codec_; }
  // After the optimizer (the caller's thread): each chunk's message encoded from
  // params - global and its decoding subtracted from PARAMS.
  void take(std::span<float> params);
  // The pushes to the servers, the servers' averages and the pulls (collective over DP;
  // may run on the comm thread). Leaves the decoded averages pending.
  void exchange();
  // Before the next optimizer step: the pending averages added to PARAMS and to global.
  void land(std::span<float> params);
  bool in_flight() const { return in_flight_; }

  // Checkpoint state, in this rank's local layout: global (the same on every worker), the
  // server residual (this rank's chunk, zeros elsewhere), the pending averages (zeros when
  // none in flight) and the syncs so far (the subset's shift).
  const std::vector<float>& global() const { return global_; }
  const std::vector<float>& server_residual() const { return server_error_; }
  const std::vector<float>& pending() const { return pending_; }
  void restore(std::vector<float> global, std::vector<float> server_residual, std::vector<float> pending,
               int64_t steps_done);

  // One server's step on its chunk (exposed for the tests): the average of the P decoded
  // messages in worker order (each / p, as the reference), plus RESIDUAL on the subset, then
  // encoded again; RESIDUAL (the chunk's, subset positions only) becomes avg - decoded.
  static std::vector<std::byte> serve(const CocktailCodec& codec, const std::vector<std::vector<std::byte>>& messages,
                                      std::span<const uint32_t> subset, std::span<float> residual, bool error_feedback);

 private:
  struct Chunk {
    size_t offset, size;
  };
  CocktailCodec codec_;
  coll::Communicator& dp_;
  bool error_feedback_;
  std::vector<Chunk> chunks_;
  std::vector<float> global_, server_error_, pending_;
  std::vector<std::vector<std::byte>> out_;  // this sync's message per chunk
  uint64_t syncs_ = 0;                        // syncs taken: the subset's shift
  bool in_flight_ = false;
};

}  // namespace dtb::par
