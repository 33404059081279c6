#include "parallel/pp_compress.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "codec.hpp"  // coll::detail::uniform01, the codecs' stochastic rounding draw
#include "data/splitmix64.hpp"
#include "usage_error.hpp"

namespace dtb::par {
namespace {

constexpr uint64_t kRoundingSalt = 0x707071756e74ULL;  // "ppqunt": its own random stream

// BITS-wide codes packed least significant bit first into consecutive bytes.
class BitWriter {
 public:
  explicit BitWriter(std::byte* out) : p_(out) {}
  void put(uint64_t code, int bits) {
    acc_ |= code << n_;  // n_ < 8 and bits <= 32: fits in 64 bits
    n_ += bits;
    for (; n_ >= 8; n_ -= 8, acc_ >>= 8) *p_++ = std::byte(acc_ & 0xff);
  }
  void flush() {
    if (n_ > 0) *p_ = std::byte(acc_ & 0xff);
  }

 private:
  std::byte* p_;
  uint64_t acc_ = 0;
  int n_ = 0;
};

class BitReader {
 public:
  explicit BitReader(const std::byte* in) : p_(in) {}
  uint64_t get(int bits) {
    for (; n_ < bits; n_ += 8) acc_ |= uint64_t(*p_++) << n_;
    const uint64_t code = acc_ & ((uint64_t(1) << bits) - 1);
    acc_ >>= bits, n_ -= bits;
    return code;
  }

 private:
  const std::byte* p_;
  uint64_t acc_ = 0;
  int n_ = 0;
};

std::span<const float> row(const float* x, size_t r, size_t n) { return {x + r * n, n}; }

}  // namespace

PpMode parse_pp_mode(const std::string& name) {
  if (name == "none") return PpMode::kNone;
  if (name == "directq") return PpMode::kDirectQ;
  if (name == "aqsgd") return PpMode::kAqSgd;
  throw UsageError("parallel.pp_compress = '" + name + "': allowed are none, directq, aqsgd");
}

// ------------------------------------------------------------------ the quantizer

size_t quantized_bytes(size_t rows, int C, int bits) {
  return size_t(C) * sizeof(float) + (rows * size_t(C) * size_t(bits) + 7) / 8;
}

void quantize(std::span<const float> x, int C, int bits, bool stochastic, uint64_t stream, std::span<std::byte> out) {
  std::vector<float> scale(size_t(C), 0.0f);  // (C) max |x| per channel
  for (size_t i = 0; i < x.size(); ++i) scale[i % size_t(C)] = std::max(scale[i % size_t(C)], std::abs(x[i]));
  std::memcpy(out.data(), scale.data(), scale.size() * sizeof(float));
  BitWriter w(out.data() + scale.size() * sizeof(float));
  const double h = std::ldexp(1.0, bits - 1);
  for (size_t i = 0; i < x.size(); ++i) {  // in double: exact enough for 32 bits
    const double s = scale[i % size_t(C)];
    double v = s > 0 ? double(x[i]) / s * h : 0.0;
    v = stochastic ? std::floor(v + double(coll::detail::uniform01(stream, i))) : std::nearbyint(v);
    w.put(uint64_t(std::clamp(v, -h, h - 1) + h), bits);
  }
  w.flush();
}

void dequantize(std::span<const std::byte> in, int C, int bits, std::span<float> out) {
  std::vector<float> scale(static_cast<size_t>(C));
  std::memcpy(scale.data(), in.data(), scale.size() * sizeof(float));
  BitReader r(in.data() + scale.size() * sizeof(float));
  const double h = std::ldexp(1.0, bits - 1);
  for (size_t i = 0; i < out.size(); ++i) out[i] = float((double(r.get(bits)) - h) / h * scale[i % size_t(C)]);
}

size_t pp_wire_bytes(size_t seqs, size_t full_seqs, int T, int C, int bits) {
  const size_t row = size_t(T) * size_t(C);
  if (bits == 0) return seqs * row * sizeof(float);
  return full_seqs * row * sizeof(float) + (seqs > full_seqs ? quantized_bytes((seqs - full_seqs) * size_t(T), C, bits) : 0);
}

size_t pp_buffer_bytes(size_t samples, int T, int C, int sides) {
  return size_t(sides) * samples * (sizeof(SampleBuffers::key_type) + size_t(T) * size_t(C) * sizeof(float));
}

// ------------------------------------------------------------------ one rank's boundaries

PpCompressor::PpCompressor(const PpCompressSettings& s, int rows, int T, int C, int slots, int stage, int pp)
    : s_(s),
      rows_(rows),
      T_(T),
      C_(C),
      stage_(stage),
      pp_(pp),
      row_values_(size_t(T) * size_t(C)),
      fw_out_(size_t(slots)),
      bw_out_(size_t(slots)) {}

void PpCompressor::begin_step(int64_t step, std::span<const uint32_t> ids) {
  step_ = step;
  training_ = true;
  ids_.assign(ids.begin(), ids.end());
}

// One stream per (step, micro-batch, boundary, direction): the TP ranks of a stage send
// the same activation and draw the same numbers.
uint64_t PpCompressor::stream(int m, int boundary, int direction) const {
  const uint64_t per_step = splitmix64_at(s_.seed ^ kRoundingSalt, uint64_t(step_));
  return splitmix64_at(per_step, (uint64_t(m) * uint64_t(pp_) + uint64_t(boundary)) * 2 + uint64_t(direction));
}

std::vector<bool> PpCompressor::first_time(int m, const SampleBuffers& buffers) const {
  std::vector<bool> first(static_cast<size_t>(rows_));
  for (int r = 0; r < rows_; ++r) first[size_t(r)] = !buffers.contains(micro_ids(m)[r]);
  return first;
}

size_t PpCompressor::buffer_bytes() const {  // every buffer holds T x C values (encode / decode_forward)
  return pp_buffer_bytes(below_.size(), T_, C_, 1) + pp_buffer_bytes(above_.size(), T_, C_, 1);
}

std::span<std::byte> PpCompressor::recv_buffer(size_t bytes) {
  in_.resize(bytes);
  return in_;
}

size_t PpCompressor::forward_bytes(int m) const {
  if (!quantizing()) return pp_wire_bytes(size_t(rows_), 0, T_, C_, 0);
  const std::vector<bool> first = s_.mode == PpMode::kAqSgd ? first_time(m, below_) : std::vector<bool>(size_t(rows_));
  return pp_wire_bytes(size_t(rows_), size_t(std::count(first.begin(), first.end(), true)), T_, C_, s_.fw_bits);
}

size_t PpCompressor::backward_bytes() const {
  return pp_wire_bytes(size_t(rows_), 0, T_, C_, quantizing() ? s_.bw_bits : 0);
}

std::span<const std::byte> PpCompressor::encode_forward(int slot, int m, const float* act) {
  std::vector<std::byte>& out = fw_out_[size_t(slot)];
  const size_t n = size_t(rows_) * row_values_;
  const bool aqsgd = training_ && s_.mode == PpMode::kAqSgd;
  if (!quantizing() || s_.mode == PpMode::kDirectQ) {
    out.resize(forward_bytes(m));
    if (!quantizing()) std::memcpy(out.data(), act, n * sizeof(float));
    else quantize({act, n}, C_, s_.fw_bits, s_.stochastic, stream(m, stage_, 0), out);
    if (aqsgd)  // the warm-up: fp32 goes out, and m(x_i) = a
      for (int r = 0; r < rows_; ++r) above_[micro_ids(m)[r]].assign(act + r * row_values_, act + (r + 1) * row_values_);
    return out;
  }
  // AQ-SGD: first-time rows in fp32, then Q(a - m) of the others; both ends add the decoded delta to m.
  const std::vector<bool> first = first_time(m, above_);
  const size_t full = size_t(std::count(first.begin(), first.end(), true));
  out.resize(pp_wire_bytes(size_t(rows_), full, T_, C_, s_.fw_bits));
  std::byte* p = out.data();
  scratch_.clear();
  for (int r = 0; r < rows_; ++r) {
    const std::span<const float> a = row(act, size_t(r), row_values_);
    if (first[size_t(r)]) {
      std::memcpy(p, a.data(), a.size_bytes());
      p += a.size_bytes();
    } else {
      const std::vector<float>& mr = above_.at(micro_ids(m)[r]);
      for (size_t j = 0; j < row_values_; ++j) scratch_.push_back(a[j] - mr[j]);
    }
  }
  const std::span<std::byte> q(p, size_t(out.data() + out.size() - p));
  if (!scratch_.empty()) {
    quantize(scratch_, C_, s_.fw_bits, s_.stochastic, stream(m, stage_, 0), q);
    decoded_.resize(scratch_.size());
    dequantize(q, C_, s_.fw_bits, decoded_);
  }
  size_t k = 0;
  for (int r = 0; r < rows_; ++r) {
    std::vector<float>& mr = above_[micro_ids(m)[r]];
    if (first[size_t(r)]) mr.assign(act + r * row_values_, act + (r + 1) * row_values_);
    else
      for (size_t j = 0; j < row_values_; ++j) mr[j] += decoded_[k++];
  }
  return out;
}

void PpCompressor::decode_forward(int m, std::span<const std::byte> wire, float* input) {
  const size_t n = size_t(rows_) * row_values_;
  const bool aqsgd = training_ && s_.mode == PpMode::kAqSgd;
  if (!quantizing() || s_.mode == PpMode::kDirectQ) {
    if (!quantizing()) std::memcpy(input, wire.data(), n * sizeof(float));
    else dequantize(wire, C_, s_.fw_bits, {input, n});
    if (aqsgd)
      for (int r = 0; r < rows_; ++r) below_[micro_ids(m)[r]].assign(input + r * row_values_, input + (r + 1) * row_values_);
    return;
  }
  const std::vector<bool> first = first_time(m, below_);
  const size_t full = size_t(std::count(first.begin(), first.end(), true));
  const size_t full_bytes = full * row_values_ * sizeof(float);
  decoded_.resize((size_t(rows_) - full) * row_values_);
  if (!decoded_.empty()) dequantize(wire.subspan(full_bytes), C_, s_.fw_bits, decoded_);
  const std::byte* p = wire.data();
  size_t k = 0;
  for (int r = 0; r < rows_; ++r) {
    std::vector<float>& mr = below_[micro_ids(m)[r]];
    float* x = input + r * row_values_;
    if (first[size_t(r)]) {
      std::memcpy(x, p, row_values_ * sizeof(float));
      p += row_values_ * sizeof(float);
      mr.assign(x, x + row_values_);
    } else {
      for (size_t j = 0; j < row_values_; ++j) mr[j] += decoded_[k++];
      std::copy(mr.begin(), mr.end(), x);  // the receiver computes with m(x_i)
    }
  }
}

std::span<const std::byte> PpCompressor::encode_backward(int slot, int m, const float* grad) {
  std::vector<std::byte>& out = bw_out_[size_t(slot)];
  const size_t n = size_t(rows_) * row_values_;
  out.resize(backward_bytes());
  if (!quantizing()) std::memcpy(out.data(), grad, n * sizeof(float));
  else quantize({grad, n}, C_, s_.bw_bits, s_.stochastic, stream(m, stage_ - 1, 1), out);
  return out;
}

void PpCompressor::decode_backward(std::span<const std::byte> wire, float* grad) {
  const size_t n = size_t(rows_) * row_values_;
  if (!quantizing()) std::memcpy(grad, wire.data(), n * sizeof(float));
  else dequantize(wire, C_, s_.bw_bits, {grad, n});
}

// ------------------------------------------------------------------ checkpoints

namespace {

constexpr int kBufferTag = 8;

PpBufferSet flatten(const SampleBuffers& buffers, int64_t layer) {
  PpBufferSet set{layer, {}, {}};
  for (const auto& [id, values] : buffers) {
    set.ids.push_back(id);
    set.values.insert(set.values.end(), values.begin(), values.end());
  }
  return set;
}

}  // namespace

std::vector<PpBufferSet> gather_pp_buffers(coll::Communicator& world, const Layout& layout, const Placement& placement,
                                           const Coord& me, PpCompressor& codec, const std::vector<int>& bounds) {
  const bool root = world.rank() == 0;
  if (!root && me.dp == 0 && me.tp == 0 && me.pp + 1 < layout.pp) {
    const PpBufferSet mine = flatten(codec.sent(), 0);
    const int64_t count = int64_t(mine.ids.size());
    world.send(0, std::as_bytes(std::span(&count, 1)), kBufferTag);
    if (count == 0) return {};
    world.send(0, std::as_bytes(std::span(mine.ids)), kBufferTag);
    world.send(0, std::as_bytes(std::span(mine.values)), kBufferTag);
  }
  if (!root) return {};
  std::vector<PpBufferSet> out;
  for (int b = 0; b + 1 < layout.pp; ++b) {
    const int src = placement.ranks[size_t(grid_rank(layout, {0, b, 0}))];
    if (src == 0) {
      out.push_back(flatten(codec.sent(), bounds[size_t(b) + 1]));
      continue;
    }
    int64_t count = 0;
    world.recv(src, std::as_writable_bytes(std::span(&count, 1)), kBufferTag);
    PpBufferSet set{bounds[size_t(b) + 1], std::vector<uint32_t>(size_t(count)),
                    std::vector<float>(size_t(count) * codec.row_values())};
    if (count > 0) {
      world.recv(src, std::as_writable_bytes(std::span(set.ids)), kBufferTag);
      world.recv(src, std::as_writable_bytes(std::span(set.values)), kBufferTag);
    }
    out.push_back(std::move(set));
  }
  return out;
}

void load_pp_buffers(const CheckpointState& ck, const std::string& path, PpCompressor& codec,
                     const std::vector<int>& bounds, int stage) {
  if (ck.pp_compress != "aqsgd") return;  // no buffers saved: every sample starts in fp32
  std::string cuts;
  for (const PpBufferSet& set : ck.pp_buffers) cuts += (cuts.empty() ? "" : ", ") + std::to_string(set.layer);
  if (size_t(ck.pp_buffer_width) != codec.row_values())
    throw UsageError(path + ": AQ-SGD buffers of " + std::to_string(ck.pp_buffer_width) +
                     " values per sample, but this run's train.seq_len x model.n_embd is " +
                     std::to_string(codec.row_values()));
  auto fill = [&](SampleBuffers& into, int layer) {
    const auto it = std::find_if(ck.pp_buffers.begin(), ck.pp_buffers.end(),
                                 [&](const PpBufferSet& set) { return set.layer == layer; });
    if (it == ck.pp_buffers.end())
      throw UsageError(path + ": AQ-SGD buffers at the cuts after layers {" + cuts + "}, none after layer " +
                       std::to_string(layer) + ": resume with the checkpoint's stage split (parallel.pp, parallel.stages)");
    into.clear();
    const size_t w = codec.row_values();
    for (size_t i = 0; i < it->ids.size(); ++i)
      into[it->ids[i]].assign(it->values.begin() + ptrdiff_t(i * w), it->values.begin() + ptrdiff_t((i + 1) * w));
  };
  if (stage > 0) fill(codec.received(), bounds[size_t(stage)]);
  if (stage + 1 < int(bounds.size()) - 1) fill(codec.sent(), bounds[size_t(stage) + 1]);
}

}  // namespace dtb::par
