#pragma once
// The collective algorithms, float32 sum, in place, one file each, every one with its
// alpha-beta cost formula beside its code. All work for any communicator size (powers of
// two or not), any count (divisible by the size or not, zero included), and any codec
// (codec.hpp); on a communicator of one rank they return at once and compress nothing.
//
// Cost formulas: p ranks, n bytes on the wire for the whole buffer (the codec's encoded
// size), alpha = one-way latency, beta = seconds per byte (netem's alpha/beta: the slower
// of the link and the NIC caps). netem gives every rank pair its own path, so a rank
// talking to one peer at a time (ring, halving-doubling, barrier) or to its children
// largest subtree first (trees) meets no queue beyond beta; the parameter server and
// gossip talk to several at once and charge their NIC queues (beta_egress, beta_ingress)
// explicitly. The local arithmetic is not charged (the comm stream pays for the network
// only). The *_model functions take alpha and beta from the communicator's network, for
// the worst link the algorithm uses: on a heterogeneous network, upper bounds.
#include <algorithm>
#include <cmath>
#include <span>

#include "codec.hpp"
#include "communicator.hpp"

namespace dtb::coll {

// ---- allreduce: every rank ends with the elementwise sum ----------------------------
void ring_allreduce(Communicator& comm, std::span<float> data, Compression c = {});
void halving_doubling_allreduce(Communicator& comm, std::span<float> data, Compression c = {});
void tree_allreduce(Communicator& comm, std::span<float> data, Compression c = {});
void hierarchical_allreduce(Communicator& comm, std::span<float> data, Compression c = {});
// SERVERS shards, served by ranks j * p / SERVERS (1 <= SERVERS <= p).
void param_server_allreduce(Communicator& comm, std::span<float> data, int servers, Compression c = {});
// An estimate: p times the average after ROUNDS of ring-neighbour averaging (gossip.cpp).
void gossip_allreduce(Communicator& comm, std::span<float> data, int rounds, Compression c = {});
// The second largest eigenvalue modulus of gossip's mixing: the deviation from the average
// shrinks at least by this factor per round (0 for p <= 3: exact after one round).
double gossip_contraction(int p);

// ---- the other collectives (blocks as in partition.hpp) -----------------------------
// Rank r's block_range(count, p, r) ends holding the sum; the rest of DATA is scratch.
void ring_reduce_scatter(Communicator& comm, std::span<float> data, Compression c = {});
// Rank r's block_range(count, p, r) in, the whole buffer out.
void ring_allgather(Communicator& comm, std::span<float> data, Compression c = {});
// Binomial tree from ROOT.
void tree_broadcast(Communicator& comm, std::span<float> data, int root, Compression c = {});
// Dissemination barrier: ceil(log2 p) rounds of empty messages, timed like any other.
void barrier(Communicator& comm);

// ---- MPI's own, the unshaped baseline (mpi_baseline.cpp): no netem, no codec ---------
void mpi_allreduce(Communicator& comm, std::span<float> data);
void mpi_reduce_scatter(Communicator& comm, std::span<float> data);
void mpi_allgather(Communicator& comm, std::span<float> data);
void mpi_broadcast(Communicator& comm, std::span<float> data, int root);

// ---- cost formulas -------------------------------------------------------------------
// NIC caps as seconds per payload byte (0: unlimited).
struct NicBeta {
  double egress = 0, ingress = 0;
};
double ring_allreduce_cost(int p, double n, double alpha, double beta);
double ring_reduce_scatter_cost(int p, double n, double alpha, double beta);
double ring_allgather_cost(int p, double n, double alpha, double beta);
double halving_doubling_allreduce_cost(int p, double n, double alpha, double beta);
double tree_allreduce_cost(int p, double n, double alpha, double beta, double beta_egress = 0,
                           double beta_ingress = 0);
double tree_broadcast_cost(int p, double n, double alpha, double beta, double beta_egress = 0,
                           double beta_ingress = 0);
// S = the largest site's ranks, m = sites; intra-site and inter-site link terms.
double hierarchical_allreduce_cost(int max_site_size, int sites, double n, double alpha_intra,
                                   double beta_intra, double alpha_inter, double beta_inter,
                                   NicBeta nic = {});
// beta_egress / beta_ingress: seconds per byte of the NIC caps (0 when unlimited).
double param_server_allreduce_cost(int p, int servers, double n, double alpha, double beta,
                                   double beta_egress, double beta_ingress);
double gossip_allreduce_cost(int p, int rounds, double n, double alpha, double beta, double beta_egress = 0,
                             double beta_ingress = 0);
double barrier_cost(int p, double alpha);

// The formulas with alpha and beta from COMM's network (N = wire bytes of the buffer).
double ring_allreduce_model(const Communicator& comm, double n);
double ring_reduce_scatter_model(const Communicator& comm, double n);
double ring_allgather_model(const Communicator& comm, double n);
double halving_doubling_allreduce_model(const Communicator& comm, double n);
double tree_allreduce_model(const Communicator& comm, double n);
double tree_broadcast_model(const Communicator& comm, double n);
double hierarchical_allreduce_model(Communicator& comm, double n);  // collective on first use
double param_server_allreduce_model(const Communicator& comm, double n, int servers);
double gossip_allreduce_model(const Communicator& comm, double n, int rounds);
double barrier_model(const Communicator& comm);

// The largest alpha and the largest beta over the links a -> b (local ranks, a != b) for
// which PAIR(a, b) holds; zeros when none does.
struct AlphaBeta {
  double alpha = 0, beta = 0;
};
template <typename Pair>
AlphaBeta worst_link(const Communicator& comm, Pair pair) {
  AlphaBeta w;
  for (int a = 0; a < comm.size(); ++a)
    for (int b = 0; b < comm.size(); ++b) {
      if (a == b || !pair(a, b)) continue;
      const int ga = comm.global_rank(a), gb = comm.global_rank(b);
      w.alpha = std::max(w.alpha, comm.network().alpha(ga, gb));
      w.beta = std::max(w.beta, comm.network().beta(ga, gb));
    }
  return w;
}

// Seconds per payload byte of COMM's NIC caps (0 when unlimited), headers included, for
// messages of about N bytes.
inline NicBeta nic_betas(const Communicator& comm, double n) {
  const netem::NetworkModel& net = comm.network();
  const double wire_per_byte = n > 0 ? double(net.wire_bytes(uint64_t(n))) / n : 1.0;
  auto per_byte = [&](double rate) { return std::isinf(rate) ? 0.0 : wire_per_byte / rate; };
  std::vector<int> ranks(size_t(comm.size()));
  for (int r = 0; r < comm.size(); ++r) ranks[size_t(r)] = comm.global_rank(r);
  const netem::NetworkModel::NicRates nic = net.slowest_nic(ranks);
  return {per_byte(nic.egress), per_byte(nic.ingress)};
}

int ceil_log2(int p);   // rounds of a binomial tree or a dissemination barrier
int floor_log2(int p);  // depth of a binomial tree

}  // namespace dtb::coll
