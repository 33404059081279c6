#include "sim/collective_model.hpp"

#include <algorithm>
#include <cmath>

namespace dtb::sim {
namespace {

void take_worst(coll::AlphaBeta& w, const netem::NetworkModel& net, int a, int b) {
  w.alpha = std::max(w.alpha, net.alpha(a, b));
  w.beta = std::max(w.beta, net.beta(a, b));
}

// Links depend only on the two ranks' sites (NIC caps are per rank and alike), so the
// worst link over all pairs of a group is found from two ranks per site: O(sites^2)
// instead of O(p^2) for a thousand-rank group.
struct SiteCensus {
  struct Entry {
    int count = 0, first = -1, second = -1;
  };
  std::vector<Entry> sites;  // indexed by netem site; count 0 = not in the group
  coll::AlphaBeta intra, inter;
  int present = 0, largest = 0;

  SiteCensus(const netem::NetworkModel& net, std::span<const int> ranks)
      : sites(net.profile().sites.size()) {
    for (int r : ranks) {
      Entry& e = sites[size_t(net.site_of(r))];
      if (e.count == 0) e.first = r;
      else if (e.count == 1) e.second = r;
      ++e.count;
    }
    for (size_t i = 0; i < sites.size(); ++i) {
      const Entry& a = sites[i];
      if (a.count == 0) continue;
      ++present;
      largest = std::max(largest, a.count);
      if (a.count >= 2) take_worst(intra, net, a.first, a.second);
      for (size_t j = 0; j < sites.size(); ++j)
        if (j != i && sites[j].count > 0) take_worst(inter, net, a.first, sites[j].first);
    }
  }
};

coll::AlphaBeta worst(const coll::AlphaBeta& a, const coll::AlphaBeta& b) {
  return {std::max(a.alpha, b.alpha), std::max(a.beta, b.beta)};
}

// ---- the messages each algorithm sends (local ranks; SEND(from, to, bytes)) -----------

template <typename Send>
void ring_messages(std::span<const int> members, double n, Send send) {
  const size_t p = members.size();
  if (p < 2) return;
  for (size_t i = 0; i < p; ++i) send(members[i], members[(i + 1) % p], 2.0 * double(p - 1) / double(p) * n);
}

// Binomial tree rooted at members[0] (tree.cpp): v sends its partial sum to its parent
// v & (v - 1), which later sends the result back down the same edge.
template <typename Send>
void tree_messages(std::span<const int> members, double n, Send send) {
  for (size_t v = 1; v < members.size(); ++v) {
    send(members[v], members[v & (v - 1)], n);
    send(members[v & (v - 1)], members[v], n);
  }
}

// halving_doubling.cpp: the first 2(p - q) ranks fold in pairs, the q active ones exchange
// n mask/q bytes with the partner at distance mask, twice (halving, then doubling).
template <typename Send>
void hd_messages(int p, double n, Send send) {
  int q = 1;
  while (2 * q <= p) q *= 2;
  const int extra = p - q;
  for (int v = 0; v < extra; ++v) {
    send(2 * v, 2 * v + 1, n);
    send(2 * v + 1, 2 * v, n);
  }
  auto active = [extra](int v) { return v < extra ? 2 * v + 1 : v + extra; };
  for (int v = 0; v < q; ++v)
    for (int mask = 1; mask < q; mask *= 2) send(active(v), active(v ^ mask), 2.0 * n * mask / q);
}

// param_server.cpp: shard j is served by rank j p / S; every rank pushes each shard it does
// not serve, and each server sends its summed shard back to every other rank.
template <typename Send>
void ps_messages(int p, int servers, double n, Send send) {
  const double shard = n / servers;
  for (int j = 0; j < servers; ++j) {
    const int server = int(int64_t(j) * p / servers);
    for (int r = 0; r < p; ++r) {
      if (r == server) continue;
      send(r, server, shard);
      send(server, r, shard);
    }
  }
}

// gossip.cpp: each round every rank sends its whole buffer to both ring neighbours (to
// the one other rank when p = 2).
template <typename Send>
void gossip_messages(int p, int rounds, double n, Send send) {
  for (int r = 0; r < p; ++r) {
    send(r, (r + 1) % p, rounds * n);
    if (p > 2) send(r, (r + p - 1) % p, rounds * n);
  }
}

// hierarchical.cpp: a tree inside each site (in local order, led by its first rank), a
// ring among the site leaders.
template <typename Send>
void hier_messages(const netem::NetworkModel& net, std::span<const int> ranks, double n, Send send) {
  std::vector<std::vector<int>> by_site(net.profile().sites.size());
  std::vector<int> leaders;
  for (size_t i = 0; i < ranks.size(); ++i) {
    std::vector<int>& members = by_site[size_t(net.site_of(ranks[i]))];
    if (members.empty()) leaders.push_back(int(i));
    members.push_back(int(i));
  }
  for (const std::vector<int>& members : by_site) tree_messages(std::span<const int>(members), n, send);
  ring_messages(std::span<const int>(leaders), n, send);
}

}  // namespace

GroupLinks group_links(const netem::NetworkModel& net, std::span<const int> ranks, const CollectiveSpec& spec) {
  GroupLinks l;
  l.spec = spec;
  l.p = int(ranks.size());
  const netem::NetworkModel::NicRates nic = net.slowest_nic(ranks);
  l.egress_rate = nic.egress;
  l.ingress_rate = nic.ingress;
  if (l.p <= 1) return l;
  const size_t p = ranks.size();
  switch (spec.algo) {
    case Algo::kRing:
    case Algo::kGossip:  // ring neighbours; gossip also sends the other way round
      for (size_t i = 0; i < p; ++i) {
        take_worst(l.used, net, ranks[i], ranks[(i + 1) % p]);
        if (spec.algo == Algo::kGossip) take_worst(l.used, net, ranks[(i + 1) % p], ranks[i]);
      }
      break;
    default: {  // tree, hd, ps: any pair; hier: each class on its own
      const SiteCensus census(net, ranks);
      l.intra = census.intra;
      l.inter = census.inter;
      l.used = worst(census.intra, census.inter);
      l.sites = census.present;
      l.max_site_size = census.largest;
    }
  }
  return l;
}

double allreduce_time(const netem::NetworkModel& net, const GroupLinks& l, double n) {
  const double a = l.used.alpha, b = l.used.beta;
  switch (l.spec.algo) {
    case Algo::kRing: return coll::ring_allreduce_cost(l.p, n, a, b);
    case Algo::kHd: return coll::halving_doubling_allreduce_cost(l.p, n, a, b);
    case Algo::kTree: return coll::tree_allreduce_cost(l.p, n, a, b);
    case Algo::kHier:
      return coll::hierarchical_allreduce_cost(l.max_site_size, l.sites, n, l.intra.alpha, l.intra.beta,
                                               l.inter.alpha, l.inter.beta);
    case Algo::kPs: {  // NIC terms per payload byte, as param_server_allreduce_model takes them
      const double wire_per_byte = n > 0 ? double(net.wire_bytes(uint64_t(n))) / n : 1.0;
      auto per_byte = [&](double rate) { return std::isinf(rate) ? 0.0 : wire_per_byte / rate; };
      const int servers = l.spec.servers > 0 ? l.spec.servers : l.p;
      return coll::param_server_allreduce_cost(l.p, servers, n, a, b, per_byte(l.egress_rate),
                                               per_byte(l.ingress_rate));
    }
    case Algo::kGossip: return coll::gossip_allreduce_cost(l.p, l.spec.rounds, n, a, b);
  }
  return 0;
}

Traffic& Traffic::operator+=(const Traffic& o) {
  intra += o.intra;
  inter += o.inter;
  busiest = std::max(busiest, o.busiest);
  return *this;
}

Traffic allreduce_traffic(const netem::NetworkModel& net, std::span<const int> ranks, const CollectiveSpec& spec,
                          double n) {
  const int p = int(ranks.size());
  Traffic t;
  if (p <= 1) return t;
  std::vector<double> sent(size_t(p), 0.0);
  auto send = [&](int from, int to, double bytes) {
    (net.same_site(ranks[size_t(from)], ranks[size_t(to)]) ? t.intra : t.inter) += bytes;
    sent[size_t(from)] += bytes;
  };
  std::vector<int> all(static_cast<size_t>(p));
  for (int i = 0; i < p; ++i) all[size_t(i)] = i;
  switch (spec.algo) {
    case Algo::kRing: ring_messages(std::span<const int>(all), n, send); break;
    case Algo::kHd: hd_messages(p, n, send); break;
    case Algo::kTree: tree_messages(std::span<const int>(all), n, send); break;
    case Algo::kHier: hier_messages(net, ranks, n, send); break;
    case Algo::kPs: ps_messages(p, spec.servers > 0 ? spec.servers : p, n, send); break;
    case Algo::kGossip: gossip_messages(p, spec.rounds, n, send); break;
  }
  t.busiest = *std::max_element(sent.begin(), sent.end());
  return t;
}

Traffic p2p_traffic(const netem::NetworkModel& net, int a, int b, double bytes) {
  Traffic t;
  if (a == b) return t;
  (net.same_site(a, b) ? t.intra : t.inter) = bytes;
  t.busiest = bytes;
  return t;
}

}  // namespace dtb::sim
