#include "sim/collective_model.hpp"

namespace dtb::sim {
namespace {

const coll::Algorithm& algorithm(const CollectiveSpec& spec) {
  return coll::find_algorithm(spec.op, algo_name(spec.algo));
}

coll::CollParams params(const CollectiveSpec& spec, int p) {
  coll::CollParams out;
  out.servers = spec.servers > 0 ? spec.servers : p;
  out.rounds = spec.rounds;
  out.site_bytes = spec.site_bytes;
  return out;
}

}  // namespace

double allreduce_time(const netem::NetworkModel& net, std::span<const int> ranks, const CollectiveSpec& spec,
                      double n) {
  return algorithm(spec).model(net, ranks, n, params(spec, int(ranks.size())));
}

std::vector<double> allreduce_each(const netem::NetworkModel& net, std::span<const int> ranks,
                                   const CollectiveSpec& spec, double n, std::span<const double> start) {
  return coll::replay_each(net, ranks, algorithm(spec).messages(net, ranks, n, params(spec, int(ranks.size()))), start);
}

std::vector<std::vector<coll::NicBusy>> allreduce_egress(const netem::NetworkModel& net, std::span<const int> ranks,
                                                         const CollectiveSpec& spec, double n) {
  return coll::egress_busy(net, ranks, algorithm(spec).messages(net, ranks, n, params(spec, int(ranks.size()))));
}

coll::Traffic allreduce_traffic(const netem::NetworkModel& net, std::span<const int> ranks,
                                const CollectiveSpec& spec, double n) {
  return coll::traffic(net, ranks, algorithm(spec).messages(net, ranks, n, params(spec, int(ranks.size()))));
}

}  // namespace dtb::sim
