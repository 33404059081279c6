#pragma once
// FloatWire: how the algorithms move a float buffer, raw or through a codec. It is the one
// place where the two differ, so every algorithm gets every codec for free.
//
// Two directions, as in every allreduce:
// - partial sums travel toward the rank that owns their elements: encode_partial() gives
//   the wire form of data[r] (encoded with error feedback), the receiver gets it into
//   partial_buffer() and add_partial() adds the decoded values into data[r];
// - finished blocks travel away from their owner: finalize() encodes a block once (the
//   owner's own values become the decoded ones), block_bytes() is its wire form, relayed
//   unchanged, and decode_blocks() turns received bytes into values. So every rank ends
//   with bit-identical results, however many hops a block took.
// Raw fp32 copies nothing: the wire form is the buffer itself (received partials land in
// the communicator's scratch memory).
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "codec.hpp"
#include "communicator.hpp"
#include "partition.hpp"

namespace dtb::coll {

class FloatWire {
 public:
  // COMM provides scratch memory and this rank's id for the random streams; the wire may
  // be used on sub-communicators of it too (they share the scratch).
  FloatWire(Communicator& comm, std::span<float> data, Compression compression);

  std::span<float> data() const { return data_; }
  size_t count() const { return data_.size(); }

  // Reduce direction. SLOT names a scratch buffer; concurrent transfers use distinct slots.
  std::span<const std::byte> encode_partial(Range r, int slot);
  std::span<std::byte> partial_buffer(Range r, int slot);
  void add_partial(Range r, int slot);  // data[r] += decode(partial_buffer(r, slot))

  // Distribution direction over blocks = block_range(count(), parts, b).
  void set_blocks(int parts);
  void finalize(int block);
  std::span<std::byte> block_bytes(int first, int last);  // blocks [first, last)
  void decode_blocks(int first, int last);

 private:
  size_t wire_bytes(size_t elements) const;
  uint64_t next_stream();
  Range block(int b) const { return block_range(count(), parts_, b); }

  Communicator& comm_;
  std::span<float> data_;
  const Codec* codec_;
  CodecState* state_;       // null: no error feedback
  uint64_t stream_base_ = 0;
  uint64_t encodes_ = 0;
  int parts_ = 1;
  std::vector<size_t> block_offset_;  // codec: byte offset of each block in store_, + end
  std::vector<std::byte> store_;      // codec: the finalized blocks' wire form
};

}  // namespace dtb::coll
