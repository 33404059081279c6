// Gossip averaging on a ring (Boyd et al. 2006; the decentralized SGD of Lian et al. 2017):
// in each of k rounds every rank sends its buffer to both ring neighbours and replaces it
// by the mean of the three (of the two when p = 2). The mixing matrix W is symmetric and
// doubly stochastic, so:
// - the average over ranks never changes (exactly, up to fp32 rounding; with a codec each
//   rank mixes its own decoded values, so only the codec's error moves it);
// - the deviation from the average shrinks at least by lambda = max |eigenvalue| != 1 of W
//   per round: ||x_k - mean|| <= lambda^k ||x_0 - mean|| over all ranks' elements, with
//   lambda = max_j |1 + 2 cos(2 pi j / p)| / 3, j = 1..p-1 (0 for p <= 3: exact after one
//   round; 1/3 for p = 4; 0.80 for p = 8).
// It returns p times each rank's estimate of the average, so that it stands in for an
// allreduce; it is exact for p <= 3 (k >= 1), or when all ranks hold the same buffer.
// Each round costs alpha + n beta when the two sends use different links at full rate; a
// NIC cap serializes them: alpha + 2 n beta_nic.
#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <vector>

#include "algorithms.hpp"
#include "internal.hpp"

namespace dtb::coll {

double gossip_contraction(int p) {
  if (p <= 3) return 0.0;
  double lambda = 0;
  for (int j = 1; j < p; ++j) lambda = std::max(lambda, std::fabs(1 + 2 * std::cos(2 * std::numbers::pi * j / p)) / 3);
  return lambda;
}

double gossip_allreduce_cost(int p, int rounds, double n, double alpha, double beta, double beta_egress,
                             double beta_ingress) {
  if (p <= 1) return 0.0;
  const double neighbours = p == 2 ? 1 : 2;
  return rounds * (alpha + std::max({n * beta, neighbours * n * beta_egress, neighbours * n * beta_ingress}));
}

// Each round every rank sends its buffer to its left, then its right neighbour (to the one
// other rank when p = 2), and takes both in order of arrival.
void gossip_allreduce_rounds(int p, double n, int rounds, const RoundSink& emit) {
  if (p <= 1) return;
  std::vector<Message> round;
  for (int r = 0; r < p; ++r) {
    if (p > 2) round.push_back({r, (r + p - 1) % p, n});
    round.push_back({r, (r + 1) % p, n});
  }
  for (int k = 0; k < rounds; ++k) emit(round);
}

double gossip_allreduce_model(const Net& net, std::span<const int> ranks, double n, int rounds) {
  return replay(net, ranks, [&](const RoundSink& emit) { gossip_allreduce_rounds(int(ranks.size()), n, rounds, emit); });
}

namespace {

// One round: finalize (with a codec every rank mixes the values its neighbours decode),
// receive both neighbours' buffers, average. Scratch slots 1 and 2 hold the neighbours'.
void mix(Communicator& comm, FloatWire& wire) {
  const int p = comm.size(), r = comm.rank(), left = detail::mod(r - 1, p), right = detail::mod(r + 1, p);
  const Range all{0, wire.count()};
  wire.finalize(0);
  const std::span<std::byte> mine = wire.block_bytes(0, 1);
  if (p == 2) {
    comm.sendrecv(right, mine, right, wire.partial_buffer(all, 1));
    wire.add_partial(all, 1);
  } else {
    Request requests[4] = {comm.irecv(left, wire.partial_buffer(all, 1)), comm.irecv(right, wire.partial_buffer(all, 2)),
                           comm.isend(left, mine), comm.isend(right, mine)};
    comm.wait_all(requests);
    wire.add_partial(all, 1);
    wire.add_partial(all, 2);
  }
  const float weight = p == 2 ? 2.0f : 3.0f;
  for (float& x : wire.data()) x /= weight;  // (a + b + c) / 3: exact for equal integers
}

}  // namespace

void gossip_allreduce(Communicator& comm, std::span<float> data, int rounds, Compression c) {
  if (rounds < 0) throw std::invalid_argument("gossip_allreduce: rounds must be >= 0");
  const int p = comm.size();
  if (p == 1) return;
  FloatWire wire(comm, data, c);
  wire.set_blocks(1);
  for (int k = 0; k < rounds; ++k) mix(comm, wire);
  for (float& x : data) x *= float(p);
}

}  // namespace dtb::coll
