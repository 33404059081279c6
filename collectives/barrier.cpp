// Dissemination barrier (Hensgen, Finkel & Manber 1988): in round k every rank signals
// rank + 2^k and waits for rank - 2^k; after ceil(log2 p) rounds every rank has heard,
// directly or not, from every other. The messages are empty, so it costs the latencies:
// ceil(log2 p) alpha.
#include "algorithms.hpp"
#include "internal.hpp"

namespace dtb::coll {

double barrier_cost(int p, double alpha) { return ceil_log2(p) * alpha; }

double barrier_model(const Communicator& comm) {
  return barrier_cost(comm.size(), worst_link(comm, [](int, int) { return true; }).alpha);
}

void barrier(Communicator& comm) {
  const int p = comm.size(), r = comm.rank();
  for (int d = 1; d < p; d <<= 1) comm.sendrecv(detail::mod(r + d, p), {}, detail::mod(r - d, p), {});
}

}  // namespace dtb::coll
