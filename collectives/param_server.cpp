// Sharded parameter server (Li et al., OSDI 2014; BytePS-style colocated servers): the
// buffer is cut into S shards, shard j served by rank j p / S. Every rank pushes each
// shard it does not serve to that shard's server; a server sums the p contributions and
// pushes the sum back to every rank. Two latencies only, but a server's ingress NIC takes
// (p-1) n/S bytes and each rank's egress NIC n bytes per phase: with S = 1 that is the
// incast that makes a central server the bottleneck, with S = p it is the all-to-all
// reduce-scatter + allgather. Ranks send to the servers in a staggered order (rank r
// starts with shard r+1) so that the servers' ingress queues fill evenly, and netem
// queues concurrent pushes at a server's ingress NIC (Communicator::wait_all passes them
// in order of arrival).
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "algorithms.hpp"
#include "internal.hpp"

namespace dtb::coll {

// Each phase: one latency, then the longest of the three queues: a link carrying one
// shard, the busiest egress NIC and the busiest ingress NIC.
double param_server_allreduce_cost(int p, int servers, double n, double alpha, double beta,
                                   double beta_egress, double beta_ingress) {
  if (p <= 1) return 0.0;
  const double shard = n / servers;
  const double worker_bytes = servers < p ? n : n - shard;  // all shards, or all but its own
  const double server_bytes = (p - 1) * shard;
  const double push = alpha + std::max({shard * beta, worker_bytes * beta_egress, server_bytes * beta_ingress});
  const double pull = alpha + std::max({shard * beta, server_bytes * beta_egress, worker_bytes * beta_ingress});
  return push + pull;
}

namespace {

int server_rank(int shard, int p, int servers) { return shard * p / servers; }

// The shard rank R serves, or -1.
int served_shard(int r, int p, int servers) {
  for (int j = 0; j < servers; ++j)
    if (server_rank(j, p, servers) == r) return j;
  return -1;
}

}  // namespace

// The pushes (each rank in its staggered order, the servers taking them in order of arrival
// at their ingress NIC), then the pulls (each server to every other rank in turn).
void param_server_allreduce_rounds(int p, double n, int servers, const RoundSink& emit) {
  if (p <= 1) return;
  const double shard = n / servers;
  std::vector<Message> round;
  for (int r = 0; r < p; ++r)
    for (int i = 1; i <= servers; ++i) {
      const int j = (r + i) % servers;
      if (j != served_shard(r, p, servers)) round.push_back({r, server_rank(j, p, servers), shard});
    }
  emit(round);
  round.clear();
  for (int j = 0; j < servers; ++j)
    for (int i = 1; i < p; ++i) round.push_back({server_rank(j, p, servers), (server_rank(j, p, servers) + i) % p, shard});
  emit(round);
}

double param_server_allreduce_model(const Net& net, std::span<const int> ranks, double n, int servers) {
  return replay(net, ranks,
                [&](const RoundSink& emit) { param_server_allreduce_rounds(int(ranks.size()), n, servers, emit); });
}

namespace {

// Scratch slots: an outgoing shard j in slot j, an incoming push from rank s in slot S + s.
void push(Communicator& comm, FloatWire& wire, int servers, int mine) {
  const int p = comm.size(), r = comm.rank();
  auto shard = [&](int j) { return block_range(wire.count(), servers, j); };
  std::vector<Request> requests;
  if (mine >= 0)
    for (int s = 0; s < p; ++s)
      if (s != r) requests.push_back(comm.irecv(s, wire.partial_buffer(shard(mine), servers + s)));
  for (int i = 1; i <= servers; ++i) {
    const int j = (r + i) % servers;
    if (j != mine) requests.push_back(comm.isend(server_rank(j, p, servers), wire.encode_partial(shard(j), j)));
  }
  comm.wait_all(requests);
  if (mine >= 0)  // in rank order, whatever the arrival order: deterministic sums
    for (int s = 0; s < p; ++s)
      if (s != r) wire.add_partial(shard(mine), servers + s);
}

void pull(Communicator& comm, FloatWire& wire, int servers, int mine) {
  const int p = comm.size(), r = comm.rank();
  std::vector<Request> requests;
  for (int j = 0; j < servers; ++j)
    if (j != mine) requests.push_back(comm.irecv(server_rank(j, p, servers), wire.block_bytes(j, j + 1)));
  if (mine >= 0)
    for (int i = 1; i < p; ++i) requests.push_back(comm.isend((r + i) % p, wire.block_bytes(mine, mine + 1)));
  comm.wait_all(requests);
  for (int j = 0; j < servers; ++j)
    if (j != mine) wire.decode_blocks(j, j + 1);
}

}  // namespace

void param_server_allreduce(Communicator& comm, std::span<float> data, int servers, Compression c) {
  const int p = comm.size();
  if (servers < 1 || servers > p)
    throw std::invalid_argument("param_server_allreduce: servers must be in [1, " + std::to_string(p) + "], got " +
                                std::to_string(servers));
  if (p == 1) return;
  FloatWire wire(comm, data, c);
  wire.set_blocks(servers);
  const int mine = served_shard(comm.rank(), p, servers);
  push(comm, wire, servers, mine);
  if (mine >= 0) wire.finalize(mine);
  pull(comm, wire, servers, mine);
}

}  // namespace dtb::coll
