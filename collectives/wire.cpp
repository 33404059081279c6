#include "wire.hpp"

#include <stdexcept>

namespace dtb::coll {

FloatWire::FloatWire(Communicator& comm, std::span<float> data, Compression c)
    : comm_(comm), data_(data), codec_(c.codec), state_(c.state) {
  if (!codec_) return;
  if (state_ && !state_->error_feedback) state_ = nullptr;
  if (state_ && state_->residual.size() != data.size()) {
    if (!state_->residual.empty())
      throw std::invalid_argument("FloatWire: the codec state's residual holds " +
                                  std::to_string(state_->residual.size()) + " elements, the buffer " +
                                  std::to_string(data.size()) + "; keep one state per buffer");
    state_->residual.assign(data.size(), 0.0f);
  }
  // One random stream per (seed, rank, call); each encode then takes the next.
  const uint64_t seed = c.state ? c.state->seed : 1, call = c.state ? c.state->calls++ : 0;
  stream_base_ = detail::mix64(detail::mix64(seed ^ (uint64_t(comm.global_rank(comm.rank())) << 32)) + call);
}

uint64_t FloatWire::next_stream() { return detail::mix64(stream_base_ + ++encodes_); }

size_t FloatWire::wire_bytes(size_t elements) const {
  return codec_ ? codec_->encoded_bytes(elements) : elements * sizeof(float);
}

std::span<const std::byte> FloatWire::encode_partial(Range r, int slot) {
  const std::span<const float> x = data_.subspan(r.offset, r.count);
  if (!codec_) return std::as_bytes(x);
  const std::span<std::byte> out = comm_.scratch(slot, wire_bytes(r.count));
  if (!state_) {
    codec_->encode(x, out, next_stream());
    return out;
  }
  // Error feedback: send x + e, keep e' = (x + e) - decode(encoded) for the next call.
  const std::span<float> e = std::span(state_->residual).subspan(r.offset, r.count);
  for (size_t i = 0; i < r.count; ++i) e[i] += x[i];
  codec_->encode(e, out, next_stream());
  codec_->decode(out, e, DecodeMode::kSubtract);
  return out;
}

std::span<std::byte> FloatWire::partial_buffer(Range r, int slot) { return comm_.scratch(slot, wire_bytes(r.count)); }

void FloatWire::add_partial(Range r, int slot) {
  const std::span<float> x = data_.subspan(r.offset, r.count);
  const std::span<std::byte> in = partial_buffer(r, slot);
  if (codec_) {
    codec_->decode(in, x, DecodeMode::kAdd);
    return;
  }
  const float* v = reinterpret_cast<const float*>(in.data());  // scratch holds floats
  for (size_t i = 0; i < r.count; ++i) x[i] += v[i];
}

void FloatWire::set_blocks(int parts) {
  parts_ = parts;
  if (!codec_) return;
  block_offset_.assign(size_t(parts) + 1, 0);
  for (int b = 0; b < parts; ++b) block_offset_[b + 1] = block_offset_[b] + wire_bytes(block(b).count);
  store_.assign(block_offset_.back(), std::byte{0});
}

void FloatWire::finalize(int b) {
  if (!codec_) return;
  const Range r = block(b);
  const std::span<float> x = data_.subspan(r.offset, r.count);
  const std::span<std::byte> out = block_bytes(b, b + 1);
  if (!state_) {
    codec_->encode(x, out, next_stream());
    codec_->decode(out, x, DecodeMode::kAssign);
    return;
  }
  // x + e is sent; x becomes what every rank will decode; e' = (x + e) - x'.
  const std::span<float> e = std::span(state_->residual).subspan(r.offset, r.count);
  for (size_t i = 0; i < r.count; ++i) e[i] += x[i];
  codec_->encode(e, out, next_stream());
  codec_->decode(out, x, DecodeMode::kAssign);
  for (size_t i = 0; i < r.count; ++i) e[i] -= x[i];
}

std::span<std::byte> FloatWire::block_bytes(int first, int last) {
  if (!codec_) {
    const Range r = blocks_range(count(), parts_, first, last);
    return std::as_writable_bytes(data_.subspan(r.offset, r.count));
  }
  if (block_offset_.empty()) throw std::logic_error("FloatWire: set_blocks() before the blocks are used");
  return std::span(store_).subspan(block_offset_[first], block_offset_[last] - block_offset_[first]);
}

void FloatWire::decode_blocks(int first, int last) {
  if (!codec_) return;
  for (int b = first; b < last; ++b) {
    const Range r = block(b);
    codec_->decode(block_bytes(b, b + 1), data_.subspan(r.offset, r.count), DecodeMode::kAssign);
  }
}

}  // namespace dtb::coll
