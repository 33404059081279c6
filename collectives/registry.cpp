#include "registry.hpp"

#include "algorithms.hpp"
#include "usage_error.hpp"

namespace dtb::coll {
namespace {

using P = const CollParams&;
using Ranks = std::span<const int>;

const Algorithm kAlgorithms[] = {
    {Op::kAllreduce, "ring", "ring reduce-scatter + allgather",
     [](Communicator& c, std::span<float> d, P, Compression z) { ring_allreduce(c, d, z); },
     [](const Net&, Ranks r, double n, P, const RoundSink& e) { ring_allreduce_rounds(int(r.size()), n, e); }, true, false},
    {Op::kAllreduce, "hd", "recursive halving-doubling (Rabenseifner), folding non-powers of two",
     [](Communicator& c, std::span<float> d, P, Compression z) { halving_doubling_allreduce(c, d, z); },
     [](const Net&, Ranks r, double n, P, const RoundSink& e) { halving_doubling_allreduce_rounds(int(r.size()), n, e); }, true, false},
    {Op::kAllreduce, "tree", "binomial tree reduce + broadcast",
     [](Communicator& c, std::span<float> d, P, Compression z) { tree_allreduce(c, d, z); },
     [](const Net&, Ranks r, double n, P, const RoundSink& e) { tree_allreduce_rounds(int(r.size()), n, e); }, true, false},
    {Op::kAllreduce, "hier", "tree inside each site, ring among site leaders, tree back",
     [](Communicator& c, std::span<float> d, P, Compression z) { hierarchical_allreduce(c, d, z); },
     [](const Net& net, Ranks r, double n, P p, const RoundSink& e) { hierarchical_allreduce_rounds(net, r, n, e, p.site_bytes); }, true, false},
    {Op::kAllreduce, "ps", "sharded parameter server (--servers)",
     [](Communicator& c, std::span<float> d, P p, Compression z) { param_server_allreduce(c, d, p.servers, z); },
     [](const Net&, Ranks r, double n, P p, const RoundSink& e) { param_server_allreduce_rounds(int(r.size()), n, p.servers, e); }, true, false},
    {Op::kAllreduce, "gossip", "ring-neighbour averaging, --rounds rounds (an estimate)",
     [](Communicator& c, std::span<float> d, P p, Compression z) { gossip_allreduce(c, d, p.rounds, z); },
     [](const Net&, Ranks r, double n, P p, const RoundSink& e) { gossip_allreduce_rounds(int(r.size()), n, p.rounds, e); }, true, true},
    {Op::kAllreduce, "mpi", "MPI_Allreduce, unshaped baseline",
     [](Communicator& c, std::span<float> d, P, Compression) { mpi_allreduce(c, d); }, nullptr, false, false},
    {Op::kReduceScatter, "ring", "ring reduce-scatter",
     [](Communicator& c, std::span<float> d, P, Compression z) { ring_reduce_scatter(c, d, z); },
     [](const Net&, Ranks r, double n, P, const RoundSink& e) { ring_reduce_scatter_rounds(int(r.size()), n, e); }, true, false},
    {Op::kReduceScatter, "mpi", "MPI_Reduce_scatter, unshaped baseline",
     [](Communicator& c, std::span<float> d, P, Compression) { mpi_reduce_scatter(c, d); }, nullptr, false, false},
    {Op::kAllgather, "ring", "ring allgather",
     [](Communicator& c, std::span<float> d, P, Compression z) { ring_allgather(c, d, z); },
     [](const Net&, Ranks r, double n, P, const RoundSink& e) { ring_allgather_rounds(int(r.size()), n, e); }, true, false},
    {Op::kAllgather, "mpi", "MPI_Allgatherv, unshaped baseline",
     [](Communicator& c, std::span<float> d, P, Compression) { mpi_allgather(c, d); }, nullptr, false, false},
    {Op::kBroadcast, "tree", "binomial tree from --root",
     [](Communicator& c, std::span<float> d, P p, Compression z) { tree_broadcast(c, d, p.root, z); },
     [](const Net&, Ranks r, double n, P p, const RoundSink& e) { tree_broadcast_rounds(int(r.size()), n, p.root, e); }, true, false},
    {Op::kBroadcast, "mpi", "MPI_Bcast, unshaped baseline",
     [](Communicator& c, std::span<float> d, P p, Compression) { mpi_broadcast(c, d, p.root); }, nullptr, false, false},
};

constexpr Op kOps[] = {Op::kAllreduce, Op::kReduceScatter, Op::kAllgather, Op::kBroadcast};

}  // namespace

const char* op_name(Op op) {
  switch (op) {
    case Op::kAllreduce: return "allreduce";
    case Op::kReduceScatter: return "reducescatter";
    case Op::kAllgather: return "allgather";
    case Op::kBroadcast: return "broadcast";
  }
  return "?";
}

Op parse_op(const std::string& name) {
  for (Op op : kOps)
    if (name == op_name(op)) return op;
  throw UsageError("--op '" + name + "': allowed: allreduce, reducescatter, allgather, broadcast");
}

Rounds Algorithm::messages(const netem::NetworkModel& net, std::span<const int> ranks, double wire_bytes,
                           const CollParams& params) const {
  return [this, &net, ranks, wire_bytes, params](const RoundSink& emit) { rounds(net, ranks, wire_bytes, params, emit); };
}

double Algorithm::model(const netem::NetworkModel& net, std::span<const int> ranks, double wire_bytes,
                        const CollParams& params) const {
  return replay(net, ranks, messages(net, ranks, wire_bytes, params));
}

std::span<const Algorithm> all_algorithms() { return kAlgorithms; }

std::string algorithm_names(Op op) {
  std::string names;
  for (const Algorithm& a : kAlgorithms)
    if (a.op == op) names += (names.empty() ? "" : ", ") + std::string(a.name);
  return names;
}

const Algorithm& find_algorithm(Op op, const std::string& name) {
  for (const Algorithm& a : kAlgorithms)
    if (a.op == op && name == a.name) return a;
  throw UsageError("--algo '" + name + "': " + op_name(op) + " has " + algorithm_names(op));
}

}  // namespace dtb::coll
