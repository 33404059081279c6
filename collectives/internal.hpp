#pragma once
// Building blocks that several algorithms share, on a FloatWire so that the composite
// algorithms (hierarchical: tree, then ring, then tree) compress end to end with one
// error-feedback state. Unlike the public functions they do not return early on one rank:
// a one-rank ring still finalizes its block, so that a codec's bytes exist to broadcast.
#include <cstddef>
#include <span>

#include "communicator.hpp"
#include "wire.hpp"

namespace dtb::coll::detail {

inline int mod(int a, int p) { return ((a % p) + p) % p; }

// Ring reduce-scatter over blocks block_range(count, p, b): rank r ends owning block r.
void ring_reduce_scatter(Communicator& comm, FloatWire& wire);
// Ring allgather: rank r finalizes block r, then the p blocks go round.
void ring_allgather(Communicator& comm, FloatWire& wire);
// Binomial-tree reduce of the whole buffer to ROOT.
void tree_reduce(Communicator& comm, FloatWire& wire, int root);
// Binomial-tree broadcast of BYTES (already final on ROOT), relayed unchanged.
void tree_broadcast_bytes(Communicator& comm, std::span<std::byte> bytes, int root);

}  // namespace dtb::coll::detail
