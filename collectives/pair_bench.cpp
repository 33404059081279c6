// coll_pair_bench: paired, in-process comparison of the unshaped transport (what
// collectives/bench.sh reports as figures 1 and 2). On a small shared host the load
// changes from one mpirun to the next by more than the effects measured here, so each
// iteration runs all three variants back to back on the same buffer:
//   mpi:   MPI_Allreduce (Open MPI's own algorithm choice)
//   timed: ring_allreduce over the netem-timed transport, wall clock, unshaped profile
//   raw:   ring_allreduce over plain MPI point-to-point (Transport::kRaw)
// and reports per size the median time of each, busbw, and the medians of the per-
// iteration ratios ring/mpi (busbw) and timed/raw (time).
// Usage: mpirun -np 4 coll_pair_bench [MIN_BYTES [MAX_BYTES [ITERATIONS]]] (4M 32M 50).
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "algorithms.hpp"

namespace {

using namespace dtb::coll;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Seconds of the slowest rank for one call of RUN, from a barrier.
double time_once(std::vector<float>& data, const std::function<void()>& run) {
  std::fill(data.begin(), data.end(), 1.0f);
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = MPI_Wtime();
  run();
  double dt = MPI_Wtime() - t0;
  MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return dt;
}

void bench_size(Communicator& timed, Communicator& raw, size_t bytes, int iters) {
  const int p = timed.size();
  std::vector<float> data(bytes / sizeof(float));
  const std::function<void()> variants[3] = {
      [&] { mpi_allreduce(timed, data); }, [&] { ring_allreduce(timed, data); }, [&] { ring_allreduce(raw, data); }};
  std::vector<double> t[3], ring_over_mpi, timed_over_raw;
  const int warmup = 5;
  for (int it = 0; it < warmup + iters; ++it) {
    double dt[3];
    for (int v = 0; v < 3; ++v) dt[v] = time_once(data, variants[v]);
    if (it < warmup) continue;
    for (int v = 0; v < 3; ++v) t[v].push_back(dt[v]);
    ring_over_mpi.push_back(dt[0] / dt[1]);  // busbw ratio = inverse time ratio
    timed_over_raw.push_back(dt[1] / dt[2]);
  }
  const double factor = 2.0 * (p - 1) / p * double(bytes) / 1e9;
  if (timed.rank() == 0)
    std::printf("%10zu B  mpi %8.1f us %6.3f GB/s | ring timed %8.1f us %6.3f GB/s | ring raw %8.1f us"
                " | ring/mpi busbw %4.0f%%  timed/raw time %+5.1f%%\n",
                bytes, 1e6 * median(t[0]), factor / median(t[0]), 1e6 * median(t[1]), factor / median(t[1]),
                1e6 * median(t[2]), 100 * median(ring_over_mpi), 100 * (median(timed_over_raw) - 1));
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  {
    const size_t min_bytes = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : size_t(4) << 20;
    const size_t max_bytes = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : size_t(32) << 20;
    const int iters = argc > 3 ? std::atoi(argv[3]) : 50;
    int p = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &p);
    const auto unshaped = dtb::netem::uniform_profile(p, 0, 0);
    Communicator timed(MPI_COMM_WORLD, unshaped, dtb::netem::ClockKind::kWall);
    Communicator raw(MPI_COMM_WORLD, unshaped, dtb::netem::ClockKind::kWall, Transport::kRaw);
    if (timed.rank() == 0)
      std::printf("# coll_pair_bench: %d ranks, allreduce float32 sum, unshaped, wall clock, medians of %d\n", p,
                  iters);
    for (size_t bytes = min_bytes; bytes <= max_bytes; bytes *= 2) bench_size(timed, raw, bytes, iters);
  }
  MPI_Finalize();
  return 0;
}
