#pragma once
// The simulator's DP collectives: net.algo's entry in the collectives' registry, its own
// cost model and messages (collectives/cost_model.hpp) over the group's netem ranks. The
// simulator re-derives no link logic: what a group's collective costs, and which links its
// bytes take, come from the algorithm's own description.
#include <span>
#include <vector>

#include "cost_model.hpp"
#include "network.hpp"
#include "registry.hpp"
#include "sim/sim_config.hpp"

namespace dtb::sim {

struct CollectiveSpec {
  Algo algo = Algo::kRing;
  int servers = 0;  // ps: 0 = one per rank
  int rounds = 10;  // gossip
  coll::Op op = coll::Op::kAllreduce;  // ZeRO-1's buckets: kReduceScatter
  double site_bytes = -1;  // hier: its trees' bytes inside a site (a codec across sites only); < 0: as the wire
};

// Seconds for the collective (an allreduce, or SPEC.op) of N bytes on the wire (the codec's
// encoded size) over RANKS.
double allreduce_time(const netem::NetworkModel& net, std::span<const int> ranks, const CollectiveSpec& spec,
                      double n);
// When each rank of RANKS is done with it, the ranks starting at START (empty: all at 0;
// a rank behind fast links may be done before the slowest).
std::vector<double> allreduce_each(const netem::NetworkModel& net, std::span<const int> ranks,
                                   const CollectiveSpec& spec, double n, std::span<const double> start = {});
// When each rank's egress NIC is busy with it where a NIC or host cap binds (all starting at 0).
std::vector<std::vector<coll::NicBusy>> allreduce_egress(const netem::NetworkModel& net, std::span<const int> ranks,
                                                         const CollectiveSpec& spec, double n);
// Its messages: bytes by link class, and the worst link they take.
coll::Traffic allreduce_traffic(const netem::NetworkModel& net, std::span<const int> ranks,
                                const CollectiveSpec& spec, double n);

}  // namespace dtb::sim
