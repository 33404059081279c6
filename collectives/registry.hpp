#pragma once
// The table of (operation, algorithm) pairs that `dtbench coll` and the tests run: one
// row per pair, with its cost model. The help text and the errors are built from it.
#include <span>
#include <string>

#include "codec.hpp"
#include "communicator.hpp"
#include "cost_model.hpp"

namespace dtb::coll {

enum class Op { kAllreduce, kReduceScatter, kAllgather, kBroadcast };
const char* op_name(Op op);  // "allreduce", "reducescatter", "allgather", "broadcast"
Op parse_op(const std::string& name);  // throws UsageError listing the operations

struct CollParams {
  int servers = 1;  // parameter server: shards / server ranks
  int rounds = 10;  // gossip
  int root = 0;     // broadcast
  // hier: the bytes its trees inside a site carry when they differ from the wire bytes
  // (a codec across sites only: raw there, encoded on the leaders' ring); < 0: the same.
  double site_bytes = -1;
};

struct Algorithm {
  Op op;
  const char* name;
  const char* summary;
  void (*run)(Communicator& comm, std::span<float> data, const CollParams& params, Compression c);
  // Its messages round by round for WIRE_BYTES on the wire over RANKS (netem ranks, in local
  // order), or null (MPI's own: no model). Its cost model is their replay (cost_model.hpp).
  void (*rounds)(const netem::NetworkModel& net, std::span<const int> ranks, double wire_bytes,
                 const CollParams& params, const RoundSink& emit);
  bool uses_transport;  // false for MPI's own: no netem timing, no codec (time it on a real clock)
  bool estimate;        // gossip: exact only when every rank starts from the same buffer

  // ROUNDS bound to one group and size, for replay() and traffic(). Needs a model (rounds).
  Rounds messages(const netem::NetworkModel& net, std::span<const int> ranks, double wire_bytes,
                  const CollParams& params) const;
  // Cost-model time: the replay of its messages (its *_model function). Needs a model.
  double model(const netem::NetworkModel& net, std::span<const int> ranks, double wire_bytes,
               const CollParams& params) const;
};

std::span<const Algorithm> all_algorithms();
// Throws UsageError naming the algorithms OP has.
const Algorithm& find_algorithm(Op op, const std::string& name);
std::string algorithm_names(Op op);  // "ring, hd, ..." for help and errors

}  // namespace dtb::coll
