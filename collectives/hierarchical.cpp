// Hierarchical allreduce (as in Horovod's and NCCL's two-level schemes, with the network
// profile's sites as the levels): a binomial-tree reduce inside each site to its leader
// (the site's lowest rank), a ring allreduce among the m site leaders, and a binomial
// broadcast inside each site. Only the leaders' ring crosses the slow links, and it
// sends 2(m-1)/m n bytes over them in 2(m-1) latencies, where a flat ring over all p
// ranks pays 2(p-1) latencies of the slowest hop. With a codec the leaders' ring blocks
// are broadcast still encoded, so every rank decodes the same bits. With the codec's scope
// across sites only (CodecScope::kAcrossSites), the trees inside a site move raw fp32 (the
// leaders broadcast their decoded sums), and only the leaders' ring is compressed.
#include <functional>
#include <vector>

#include "algorithms.hpp"
#include "internal.hpp"

namespace dtb::coll {

double hierarchical_allreduce_cost(int max_site_size, int sites, double n, double alpha_intra,
                                   double beta_intra, double alpha_inter, double beta_inter, NicBeta nic) {
  return tree_allreduce_cost(max_site_size, n, alpha_intra, beta_intra, nic.egress, nic.ingress) +
         ring_allreduce_cost(sites, n, alpha_inter, beta_inter);
}

namespace {

// Rounds of a per-group algorithm run by several groups at once (the sites' trees): round k
// holds every group's round k, local ranks mapped to the whole group's.
void merged_rounds(const std::vector<std::vector<int>>& groups,
                   const std::function<void(int p, const RoundSink&)>& each, const RoundSink& emit) {
  std::vector<std::vector<Message>> rounds;
  for (const std::vector<int>& g : groups) {
    size_t k = 0;
    each(int(g.size()), [&](std::span<const Message> round) {
      if (rounds.size() <= k) rounds.emplace_back();
      for (const Message& m : round) rounds[k].push_back({g[size_t(m.from)], g[size_t(m.to)], m.bytes});
      ++k;
    });
  }
  for (const std::vector<Message>& round : rounds) emit(round);
}

}  // namespace

// A tree inside each site (in local order, led by its first rank, as site_groups() splits
// them), a ring among the site leaders in local order, and the trees back: each level on
// its own links, the leaders' ring starting when each leader's site has reduced.
void hierarchical_allreduce_rounds(const netem::NetworkModel& net, std::span<const int> ranks, double n,
                                   const RoundSink& emit, double site_n) {
  if (site_n < 0) site_n = n;
  std::vector<std::vector<int>> sites(net.profile().sites.size());
  std::vector<int> leaders;
  for (size_t i = 0; i < ranks.size(); ++i) {
    std::vector<int>& site = sites[size_t(net.site_of(ranks[i]))];
    if (site.empty()) leaders.push_back(int(i));
    site.push_back(int(i));
  }
  std::erase_if(sites, [](const std::vector<int>& s) { return s.empty(); });
  merged_rounds(sites, [&](int p, const RoundSink& e) { tree_reduce_rounds(p, site_n, 0, e); }, emit);
  merged_rounds({leaders}, [&](int p, const RoundSink& e) { ring_allreduce_rounds(p, n, e); }, emit);
  merged_rounds(sites, [&](int p, const RoundSink& e) { tree_broadcast_rounds(p, site_n, 0, e); }, emit);
}

double hierarchical_allreduce_model(const Net& net, std::span<const int> ranks, double n) {
  return replay(net, ranks, [&](const RoundSink& emit) { hierarchical_allreduce_rounds(net, ranks, n, emit); });
}

// The codec on the leaders' ring only; raw trees. One site: nothing crosses, nothing is
// compressed.
void across_sites_allreduce(Communicator& comm, std::span<float> data, Compression c) {
  SiteGroups& g = comm.site_groups();
  FloatWire raw(comm, data, {});
  detail::tree_reduce(g.site, raw, 0);
  if (g.leaders && g.num_sites > 1) {
    FloatWire wire(comm, data, c);
    detail::ring_reduce_scatter(*g.leaders, wire);
    detail::ring_allgather(*g.leaders, wire);  // the leader's DATA: the decoded sums
  }
  detail::tree_broadcast_bytes(g.site, std::as_writable_bytes(data), 0);
}

void hierarchical_allreduce(Communicator& comm, std::span<float> data, Compression c) {
  if (comm.size() == 1) return;
  if (c.codec && c.scope == CodecScope::kAcrossSites) return across_sites_allreduce(comm, data, c);
  SiteGroups& g = comm.site_groups();
  FloatWire wire(comm, data, c);
  detail::tree_reduce(g.site, wire, 0);
  if (g.leaders) {
    detail::ring_reduce_scatter(*g.leaders, wire);
    detail::ring_allgather(*g.leaders, wire);  // blocks: block_range(count, m, b)
  } else {
    wire.set_blocks(g.num_sites);
  }
  detail::tree_broadcast_bytes(g.site, wire.block_bytes(0, g.num_sites), 0);
  if (!g.leaders) wire.decode_blocks(0, g.num_sites);
}

}  // namespace dtb::coll
