#include "registry.hpp"

#include "algorithms.hpp"
#include "usage_error.hpp"

namespace dtb::coll {
namespace {

using P = const CollParams&;

const Algorithm kAlgorithms[] = {
    {Op::kAllreduce, "ring", "ring reduce-scatter + allgather",
     [](Communicator& c, std::span<float> d, P, Compression z) { ring_allreduce(c, d, z); },
     [](Communicator& c, double n, P) { return ring_allreduce_model(c, n); }, true, false},
    {Op::kAllreduce, "hd", "recursive halving-doubling (Rabenseifner), folding non-powers of two",
     [](Communicator& c, std::span<float> d, P, Compression z) { halving_doubling_allreduce(c, d, z); },
     [](Communicator& c, double n, P) { return halving_doubling_allreduce_model(c, n); }, true, false},
    {Op::kAllreduce, "tree", "binomial tree reduce + broadcast",
     [](Communicator& c, std::span<float> d, P, Compression z) { tree_allreduce(c, d, z); },
     [](Communicator& c, double n, P) { return tree_allreduce_model(c, n); }, true, false},
    {Op::kAllreduce, "hier", "tree inside each site, ring among site leaders, tree back",
     [](Communicator& c, std::span<float> d, P, Compression z) { hierarchical_allreduce(c, d, z); },
     [](Communicator& c, double n, P) { return hierarchical_allreduce_model(c, n); }, true, false},
    {Op::kAllreduce, "ps", "sharded parameter server (--servers)",
     [](Communicator& c, std::span<float> d, P p, Compression z) { param_server_allreduce(c, d, p.servers, z); },
     [](Communicator& c, double n, P p) { return param_server_allreduce_model(c, n, p.servers); }, true, false},
    {Op::kAllreduce, "gossip", "ring-neighbour averaging, --rounds rounds (an estimate)",
     [](Communicator& c, std::span<float> d, P p, Compression z) { gossip_allreduce(c, d, p.rounds, z); },
     [](Communicator& c, double n, P p) { return gossip_allreduce_model(c, n, p.rounds); }, true, true},
    {Op::kAllreduce, "mpi", "MPI_Allreduce, unshaped baseline",
     [](Communicator& c, std::span<float> d, P, Compression) { mpi_allreduce(c, d); }, nullptr, false, false},
    {Op::kReduceScatter, "ring", "ring reduce-scatter",
     [](Communicator& c, std::span<float> d, P, Compression z) { ring_reduce_scatter(c, d, z); },
     [](Communicator& c, double n, P) { return ring_reduce_scatter_model(c, n); }, true, false},
    {Op::kReduceScatter, "mpi", "MPI_Reduce_scatter, unshaped baseline",
     [](Communicator& c, std::span<float> d, P, Compression) { mpi_reduce_scatter(c, d); }, nullptr, false, false},
    {Op::kAllgather, "ring", "ring allgather",
     [](Communicator& c, std::span<float> d, P, Compression z) { ring_allgather(c, d, z); },
     [](Communicator& c, double n, P) { return ring_allgather_model(c, n); }, true, false},
    {Op::kAllgather, "mpi", "MPI_Allgatherv, unshaped baseline",
     [](Communicator& c, std::span<float> d, P, Compression) { mpi_allgather(c, d); }, nullptr, false, false},
    {Op::kBroadcast, "tree", "binomial tree from --root",
     [](Communicator& c, std::span<float> d, P p, Compression z) { tree_broadcast(c, d, p.root, z); },
     [](Communicator& c, double n, P) { return tree_broadcast_model(c, n); }, true, false},
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
