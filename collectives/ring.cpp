// Ring allreduce = ring reduce-scatter + ring allgather (Patarasuk & Yuan 2009; NCCL's
// ring). 2(p-1) steps; in each, every rank sends one block of n/p bytes to its right
// neighbour while it receives one from its left. The bandwidth term 2(p-1)/p n beta is
// the optimum for any allreduce, the latency term 2(p-1) alpha grows with p: the
// algorithm for large buffers on uniform links. On a heterogeneous ring each rank waits
// only for its left neighbour, so the model follows each hop's own link.
#include <vector>

#include "algorithms.hpp"
#include "internal.hpp"

namespace dtb::coll {

double ring_reduce_scatter_cost(int p, double n, double alpha, double beta) {
  return p <= 1 ? 0.0 : (p - 1) * (alpha + n / p * beta);
}
double ring_allgather_cost(int p, double n, double alpha, double beta) {
  return ring_reduce_scatter_cost(p, n, alpha, beta);
}
double ring_allreduce_cost(int p, double n, double alpha, double beta) {
  return ring_reduce_scatter_cost(p, n, alpha, beta) + ring_allgather_cost(p, n, alpha, beta);
}

// Step k: every rank sends one block (n/p bytes) to its right neighbour.
void ring_steps(int p, double n, int steps, const RoundSink& emit) {
  std::vector<Message> round(static_cast<size_t>(p));
  for (int i = 0; i < p; ++i) round[size_t(i)] = {i, (i + 1) % p, n / p};
  for (int k = 0; k < steps; ++k) emit(round);
}
void ring_reduce_scatter_rounds(int p, double n, const RoundSink& emit) { ring_steps(p, n, p - 1, emit); }
void ring_allgather_rounds(int p, double n, const RoundSink& emit) { ring_steps(p, n, p - 1, emit); }
void ring_allreduce_rounds(int p, double n, const RoundSink& emit) { ring_steps(p, n, 2 * (p - 1), emit); }

// A ring step lasts until the slowest hop's block has arrived, and a rank behind a fast
// hop starts its next send early: on mixed links a ring's time is the longest chain of
// hops through the steps, which the replay follows (not the worst link on every hop).
double ring_reduce_scatter_model(const Net& net, std::span<const int> ranks, double n) {
  return replay(net, ranks, [&](const RoundSink& emit) { ring_reduce_scatter_rounds(int(ranks.size()), n, emit); });
}
double ring_allgather_model(const Net& net, std::span<const int> ranks, double n) {
  return replay(net, ranks, [&](const RoundSink& emit) { ring_allgather_rounds(int(ranks.size()), n, emit); });
}
double ring_allreduce_model(const Net& net, std::span<const int> ranks, double n) {
  return replay(net, ranks, [&](const RoundSink& emit) { ring_allreduce_rounds(int(ranks.size()), n, emit); });
}

namespace detail {

// Step k: send block r-k-1 (reduced at step k-1), receive block r-k-2 and add into it;
// after p-1 steps the last block reduced is r's own.
void ring_reduce_scatter(Communicator& comm, FloatWire& wire) {
  const int p = comm.size(), r = comm.rank();
  const size_t n = wire.count();
  for (int k = 0; k < p - 1; ++k) {
    const Range out = block_range(n, p, mod(r - k - 1, p)), in = block_range(n, p, mod(r - k - 2, p));
    comm.sendrecv(mod(r + 1, p), wire.encode_partial(out, 0), mod(r - 1, p), wire.partial_buffer(in, 1));
    wire.add_partial(in, 1);
  }
}

// Step k: send block r-k (own at k = 0, received at step k-1), receive block r-k-1.
void ring_allgather(Communicator& comm, FloatWire& wire) {
  const int p = comm.size(), r = comm.rank();
  wire.set_blocks(p);
  wire.finalize(r);
  for (int k = 0; k < p - 1; ++k) {
    const int out = mod(r - k, p), in = mod(r - k - 1, p);
    comm.sendrecv(mod(r + 1, p), wire.block_bytes(out, out + 1), mod(r - 1, p), wire.block_bytes(in, in + 1));
    wire.decode_blocks(in, in + 1);
  }
}

}  // namespace detail

void ring_reduce_scatter(Communicator& comm, std::span<float> data, Compression c) {
  if (comm.size() == 1) return;
  FloatWire wire(comm, data, c);
  detail::ring_reduce_scatter(comm, wire);
}

void ring_allgather(Communicator& comm, std::span<float> data, Compression c) {
  if (comm.size() == 1) return;
  FloatWire wire(comm, data, c);
  detail::ring_allgather(comm, wire);
}

void ring_allreduce(Communicator& comm, std::span<float> data, Compression c) {
  if (comm.size() == 1) return;
  FloatWire wire(comm, data, c);
  detail::ring_reduce_scatter(comm, wire);
  detail::ring_allgather(comm, wire);
}

}  // namespace dtb::coll
