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
// only). The *_model functions take a network model and a rank list (no Communicator, no
// MPI) and charge each message the link it takes (cost_model.hpp).
#include <algorithm>
#include <cmath>
#include <span>

#include "codec.hpp"
#include "communicator.hpp"
#include "cost_model.hpp"

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

// ---- cost formulas (closed forms: every link alike) ----------------------------------
// NicBeta (cost_model.hpp): the NIC caps as seconds per payload byte (0: unlimited).
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

// ---- messages and cost models (cost_model.hpp) ---------------------------------------
// Each algorithm's messages round by round for P ranks and N wire bytes (local ranks;
// trees rooted at local rank ROOT), and its model: RANKS are the group's netem ranks in the
// algorithm's local order (a Communicator's ranks()), N the wire bytes of the buffer.
// Every model replays its algorithm's messages over the links each one takes, through the
// NIC queues (on mixed links a step costs what its own sends cost, not the worst link's);
// on uniform links that is the closed form above (tests/test_coll.cpp).
void ring_reduce_scatter_rounds(int p, double n, const RoundSink& emit);
void ring_allgather_rounds(int p, double n, const RoundSink& emit);
void ring_allreduce_rounds(int p, double n, const RoundSink& emit);
void halving_doubling_allreduce_rounds(int p, double n, const RoundSink& emit);
void tree_reduce_rounds(int p, double n, int root, const RoundSink& emit);
void tree_broadcast_rounds(int p, double n, int root, const RoundSink& emit);
void tree_allreduce_rounds(int p, double n, const RoundSink& emit);
// The sites of RANKS come from NET. SITE_N: the bytes of the trees inside a site, where
// they differ from the leaders' ring's N (a codec across sites only); < 0: N.
void hierarchical_allreduce_rounds(const netem::NetworkModel& net, std::span<const int> ranks, double n,
                                   const RoundSink& emit, double site_n = -1);
void param_server_allreduce_rounds(int p, double n, int servers, const RoundSink& emit);
void gossip_allreduce_rounds(int p, double n, int rounds, const RoundSink& emit);
void barrier_rounds(int p, const RoundSink& emit);

using Net = netem::NetworkModel;
double ring_allreduce_model(const Net& net, std::span<const int> ranks, double n);
double ring_reduce_scatter_model(const Net& net, std::span<const int> ranks, double n);
double ring_allgather_model(const Net& net, std::span<const int> ranks, double n);
double halving_doubling_allreduce_model(const Net& net, std::span<const int> ranks, double n);
double tree_allreduce_model(const Net& net, std::span<const int> ranks, double n);
double tree_broadcast_model(const Net& net, std::span<const int> ranks, double n, int root = 0);
double hierarchical_allreduce_model(const Net& net, std::span<const int> ranks, double n);
double param_server_allreduce_model(const Net& net, std::span<const int> ranks, double n, int servers);
double gossip_allreduce_model(const Net& net, std::span<const int> ranks, double n, int rounds);
double barrier_model(const Net& net, std::span<const int> ranks);

int ceil_log2(int p);   // rounds of a binomial tree or a dissemination barrier
int floor_log2(int p);  // depth of a binomial tree

}  // namespace dtb::coll
