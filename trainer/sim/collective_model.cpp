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
  return out;
}

}  // namespace

double allreduce_time(const netem::NetworkModel& net, std::span<const int> ranks, const CollectiveSpec& spec,
                      double n) {
  return algorithm(spec).model(net, ranks, n, params(spec, int(ranks.size())));
}

std::vector<double> allreduce_each(const netem::NetworkModel& net, std::span<const int> ranks,
                                   const CollectiveSpec& spec, double n, std::span<const double> start) {
  const coll::CollParams p = params(spec, int(ranks.size()));
  return coll::replay_each(net, ranks, [&](const coll::RoundSink& emit) { algorithm(spec).rounds(net, ranks, n, p, emit); }, start);
}

coll::Traffic allreduce_traffic(const netem::NetworkModel& net, std::span<const int> ranks,
                                const CollectiveSpec& spec, double n) {
  const coll::CollParams p = params(spec, int(ranks.size()));
  return coll::traffic(net, ranks, [&](const coll::RoundSink& emit) { algorithm(spec).rounds(net, ranks, n, p, emit); });
}

}  // namespace dtb::sim
