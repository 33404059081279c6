#pragma once
// One collective in one group of ranks, on paper: its time from the collectives' own cost
// formulas (collectives/algorithms.hpp) with alpha and beta from netem's model of the
// group's links, and the bytes each rank sends, by link class. The formulas are never
// re-derived here; what this file adds is which links an algorithm uses (as the
// collectives' *_model functions pick them from a communicator: the worst of those links)
// and which messages it sends (for the byte counts).
#include <span>
#include <vector>

#include "algorithms.hpp"
#include "network.hpp"
#include "sim/sim_config.hpp"

namespace dtb::sim {

struct CollectiveSpec {
  Algo algo = Algo::kRing;
  int servers = 0;  // ps: 0 = one per rank
  int rounds = 10;  // gossip
};

// The alpha-beta terms one group offers ALGO, fixed for the group: compute once, cost
// many buffer sizes.
struct GroupLinks {
  CollectiveSpec spec;
  int p = 1;
  coll::AlphaBeta used;          // the worst link the algorithm uses (hier: both classes)
  coll::AlphaBeta intra, inter;  // hier: inside sites / between sites
  int max_site_size = 1, sites = 1;
  double egress_rate = 0, ingress_rate = 0;  // ps: NIC caps, wire bytes/s (+inf = none)
};
GroupLinks group_links(const netem::NetworkModel& net, std::span<const int> ranks, const CollectiveSpec& spec);

// Seconds for an allreduce of N bytes on the wire (the codec's encoded size): the
// algorithm's cost formula on L's alpha and beta.
double allreduce_time(const netem::NetworkModel& net, const GroupLinks& l, double n);

// Payload bytes the group's ranks send, summed over them, by link class; and the most
// that one rank sends.
struct Traffic {
  double intra = 0, inter = 0, busiest = 0;
  Traffic& operator+=(const Traffic& o);
};
// The messages of one allreduce of N wire bytes over RANKS (local order = ring order).
Traffic allreduce_traffic(const netem::NetworkModel& net, std::span<const int> ranks, const CollectiveSpec& spec,
                          double n);
// BYTES from A to B (a point-to-point message).
Traffic p2p_traffic(const netem::NetworkModel& net, int a, int b, double bytes);

}  // namespace dtb::sim
