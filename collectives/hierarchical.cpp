// Hierarchical allreduce (as in Horovod's and NCCL's two-level schemes, with the network
// profile's sites as the levels): a binomial-tree reduce inside each site to its leader
// (the site's lowest rank), a ring allreduce among the m site leaders, and a binomial
// broadcast inside each site. Only the leaders' ring crosses the slow links, and it
// sends 2(m-1)/m n bytes over them in 2(m-1) latencies, where a flat ring over all p
// ranks pays 2(p-1) latencies of the slowest hop. With a codec the leaders' ring blocks
// are broadcast still encoded, so every rank decodes the same bits.
#include "algorithms.hpp"
#include "internal.hpp"

namespace dtb::coll {

double hierarchical_allreduce_cost(int max_site_size, int sites, double n, double alpha_intra,
                                   double beta_intra, double alpha_inter, double beta_inter, NicBeta nic) {
  return tree_allreduce_cost(max_site_size, n, alpha_intra, beta_intra, nic.egress, nic.ingress) +
         ring_allreduce_cost(sites, n, alpha_inter, beta_inter);
}

double hierarchical_allreduce_model(Communicator& comm, double n) {
  const SiteGroups& g = comm.site_groups();
  const AlphaBeta intra = worst_link(comm, [&](int a, int b) { return comm.same_site(a, b); });
  // The leaders are each site's lowest rank; their ring may use any inter-site link.
  const AlphaBeta inter = worst_link(comm, [&](int a, int b) { return !comm.same_site(a, b); });
  return hierarchical_allreduce_cost(g.max_site_size, g.num_sites, n, intra.alpha, intra.beta, inter.alpha,
                                     inter.beta, nic_betas(comm, n));
}

void hierarchical_allreduce(Communicator& comm, std::span<float> data, Compression c) {
  if (comm.size() == 1) return;
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
