// Dissemination barrier (Hensgen, Finkel & Manber 1988): in round k every rank signals
// rank + 2^k and waits for rank - 2^k; after ceil(log2 p) rounds every rank has heard,
// directly or not, from every other. The messages are empty, so it costs the latencies:
// ceil(log2 p) alpha.
#include <vector>

#include "algorithms.hpp"
#include "internal.hpp"

namespace dtb::coll {

double barrier_cost(int p, double alpha) { return ceil_log2(p) * alpha; }

// Round d: every rank signals rank + d (empty messages: the latencies of the links taken).
void barrier_rounds(int p, const RoundSink& emit) {
  std::vector<Message> round(static_cast<size_t>(p));
  for (int d = 1; d < p; d <<= 1) {
    for (int r = 0; r < p; ++r) round[size_t(r)] = {r, (r + d) % p, 0.0};
    emit(round);
  }
}

double barrier_model(const Net& net, std::span<const int> ranks) {
  return replay(net, ranks, [&](const RoundSink& emit) { barrier_rounds(int(ranks.size()), emit); });
}

void barrier(Communicator& comm) {
  const int p = comm.size(), r = comm.rank();
  for (int d = 1; d < p; d <<= 1) comm.sendrecv(detail::mod(r + d, p), {}, detail::mod(r - d, p), {});
}

}  // namespace dtb::coll
