#pragma once
// Activation compression across pipeline boundaries (parallel.pp_compress), as in AQ-SGD
// (Wang et al., "Fine-tuning Language Models over Slow Networks using Activation
// Compression with Guarantees", NeurIPS 2022; their code: DS3Lab/AC-SGD, compress/):
//
//   none     fp32 activations forward and fp32 gradients backward: today's wire.
//   directq  the activation itself quantized to pp_fw_bits (AC-SGD's "fixpoint").
//   aqsgd    both sides of a boundary keep a buffer m(x_i) per training sample id. The
//            first time a sample crosses, its activation goes in fp32 and both set m = a;
//            afterwards the sender sends Q(a - m) in pp_fw_bits, both set m += Q(a - m),
//            and the receiver computes with m (AC-SGD's "delta").
// Both quantize the backward's activation gradients directly to pp_bw_bits. The first
// pp_warmup_steps steps send fp32 both ways (aqsgd still fills its buffers: AC-SGD's
// warm-up epoch). Validation always sends fp32 and leaves the buffers alone.
//
// The quantizer, per-channel max scaling (AC-SGD compress/fixpoint.py, _compress_nbits with
// its default scale_dims = (0, 1)): a message is (rows, C), rows = the micro-batch's
// sequences x T positions, C the hidden dimension. Channel c has the scale
// s_c = max over rows of |x[r, c]|, and with h = 2^(bits-1):
//   q = clip(round(x / s_c * h), -h, h - 1), sent as the unsigned q + h in BITS bits,
//   decoded as q / h * s_c.
// round: to nearest, ties to even (torch.round), or stochastic: floor(v + u), u uniform in
// [0, 1) drawn from (seed, step, micro-batch, boundary, direction, element), unbiased.
// Differences from AC-SGD: scales travel as fp32 (AC-SGD: fp16; 2 C more bytes per
// message), x / s_c without AC-SGD's + 1e-6, and the buffers are fp32 in memory (AC-SGD keeps
// them as fp16 in a memory-mapped file).
//
// Wire bytes of one micro-batch message (pp_wire_bytes; the trainer sends exactly these and
// the simulator charges them):
//   fp32 (none, warm-up, validation):  S T C 4
//   quantized with k bits:             C 4 + ceil(S T C k / 8)
//   aqsgd forward, F first-time rows:  F T C 4 + (S - F > 0 ? C 4 + ceil((S - F) T C k / 8) : 0)
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "communicator.hpp"
#include "parallel/grid.hpp"
#include "train/checkpoint.hpp"

namespace dtb::par {

enum class PpMode { kNone, kDirectQ, kAqSgd };
PpMode parse_pp_mode(const std::string& name);  // the names above; anything else throws

// ---- the quantizer
// Bytes of ROWS x C values quantized to BITS (2..32): the scales, then the packed codes.
size_t quantized_bytes(size_t rows, int C, int bits);
// X is (rows, C) row-major; OUT holds quantized_bytes(rows, C, BITS). STOCHASTIC rounding
// draws element i's u from (STREAM, i).
void quantize(std::span<const float> x, int C, int bits, bool stochastic, uint64_t stream, std::span<std::byte> out);
// OUT (rows, C) = the decoded values.
void dequantize(std::span<const std::byte> in, int C, int bits, std::span<float> out);

// ---- the wire
// One micro-batch message of SEQS sequences of T x C values: FULL_SEQS of them in fp32
// (aqsgd's first-time samples), the rest quantized to BITS (0 = everything fp32).
size_t pp_wire_bytes(size_t seqs, size_t full_seqs, int T, int C, int bits);

// ---- AQ-SGD's buffers
// Bytes of SAMPLES buffers m(x_i) on each of SIDES boundary ends, as PpCompressor holds
// them: per sample its id and T x C fp32 values (map overhead not counted). A rank holds
// the buffers of the boundary below and the one above (SIDES 2 inside the pipeline, 1 on
// its ends), each of every sample its rows have carried: all of data.epoch_samples once
// the shuffled epochs have passed them all (the simulator's estimate, simulator.cpp).
size_t pp_buffer_bytes(size_t samples, int T, int C, int sides);

struct PpCompressSettings {
  PpMode mode = PpMode::kNone;
  int fw_bits = 4, bw_bits = 8;
  int64_t warmup_steps = 0;
  bool stochastic = false;
  uint64_t seed = 0;  // train.seed: the stochastic rounding's streams
};

// AQ-SGD's m(x_i) of one side of one boundary: sample id -> its T x C activation.
using SampleBuffers = std::map<uint32_t, std::vector<float>>;

// One rank's end of its pipeline boundaries: the boundary below (it receives activations
// and sends gradients; absent on the first stage) and the one above (absent on the last).
class PpCompressor {
 public:
  // ROWS sequences of T positions and width C per micro-batch; SLOTS micro-batches whose
  // messages may be in flight at once; STAGE is this rank's pipeline stage of PP.
  PpCompressor(const PpCompressSettings& s, int rows, int T, int C, int slots, int stage, int pp);

  // Before a training step's schedule: the step (warm-up, random streams) and the sample
  // id of each of this rank's rows (ROWS x micro-batches of them; aqsgd only).
  // begin_validation: fp32 wire, buffers untouched.
  void begin_step(int64_t step, std::span<const uint32_t> ids);
  void begin_validation() { training_ = false; }

  // Forward, the sender: micro-batch M's message from ACT (ROWS x T, C) in slot SLOT's
  // buffer (kept until that slot's send completed). The receiver: the bytes to receive,
  // a buffer for them, then the activation it computes with written to INPUT.
  std::span<const std::byte> encode_forward(int slot, int m, const float* act);
  size_t forward_bytes(int m) const;
  void decode_forward(int m, std::span<const std::byte> wire, float* input);
  // Backward, the same for the activation gradient (GRAD, ROWS x T x C).
  std::span<const std::byte> encode_backward(int slot, int m, const float* grad);
  size_t backward_bytes() const;
  void decode_backward(std::span<const std::byte> wire, float* grad);
  std::span<std::byte> recv_buffer(size_t bytes);

  // The buffers of the boundary below (received) and above (sent); bytes they hold.
  SampleBuffers& received() { return below_; }
  SampleBuffers& sent() { return above_; }
  size_t buffer_bytes() const;
  size_t row_values() const { return row_values_; }  // T x C: one sample's buffer

 private:
  bool quantizing() const { return training_ && step_ >= s_.warmup_steps && s_.mode != PpMode::kNone; }
  const uint32_t* micro_ids(int m) const { return ids_.data() + size_t(m) * rows_; }
  // Rows of micro-batch M whose sample BUFFERS has not seen yet (aqsgd), in row order.
  std::vector<bool> first_time(int m, const SampleBuffers& buffers) const;
  uint64_t stream(int m, int boundary, int direction) const;

  PpCompressSettings s_;
  int rows_, T_, C_, stage_, pp_;
  size_t row_values_;  // T x C
  int64_t step_ = 0;
  bool training_ = false;
  std::vector<uint32_t> ids_;
  SampleBuffers below_, above_;
  std::vector<std::vector<std::byte>> fw_out_, bw_out_;  // per slot
  std::vector<std::byte> in_;
  std::vector<float> scratch_, decoded_;
};

// ---- checkpoints (AQ-SGD only; the two ends of a boundary hold the same buffers)
// Collective over WORLD: world rank 0 returns every boundary's buffers, each from its
// sender on replica 0, TP rank 0 (BOUNDS: the stage split, stage_bounds); the others {}.
std::vector<PpBufferSet> gather_pp_buffers(coll::Communicator& world, const Layout& layout, const Placement& placement,
                                           const Coord& me, PpCompressor& codec, const std::vector<int>& bounds);
// Fills this rank's boundaries (STAGE's cuts in BOUNDS) from CK, read from PATH. A
// checkpoint without AQ-SGD buffers starts them empty; one whose cuts differ throws
// UsageError (the buffers belong to a layer boundary: resume with the same stage split).
void load_pp_buffers(const CheckpointState& ck, const std::string& path, PpCompressor& codec,
                     const std::vector<int>& bounds, int stage);

}  // namespace dtb::par
