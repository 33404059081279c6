#pragma once
// The harness behind `dtbench coll`, in the style of nccl-tests: a sweep of sizes, each
// checked once in an untimed pass on inputs whose sum is exactly known, then timed over
// warm-up + iterations; one table row per size, and the rows into an HDF5 results file.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "communicator.hpp"
#include "registry.hpp"

namespace dtb::coll {

struct BenchOptions {
  uint64_t min_bytes = 1024, max_bytes = 4u << 20;
  double factor = 2;
  int iters = 20, warmup = 5;
  Op op = Op::kAllreduce;
  std::string algo = "ring", codec = "none";
  CollParams params;
  bool check = true;
  std::string net_path;  // "" = unshaped
  std::string clock = "virtual";
  std::string transport = "timed";  // or "raw": MPI point-to-point without netem
  std::string out_path;  // "" = no file
  std::string command_line;
};

struct BenchRow {
  uint64_t bytes = 0, count = 0;
  double time_us = 0;         // mean per iteration, the slowest rank's
  double algbw = 0, busbw = 0;  // GB/s (decimal)
  double model_us = 0;        // the cost formula's prediction; NaN when none
  int64_t wrong = 0;          // elements off, all ranks
  uint64_t bytes_intra = 0, bytes_inter = 0;  // sent per iteration, all ranks
};

// The sizes min, min*factor, ... up to max (nccl-tests' -b, -e, -f).
std::vector<uint64_t> bench_sizes(uint64_t min_bytes, uint64_t max_bytes, double factor);

// The checks that need the world size (--root, --servers) and the pairing of --algo with
// --codec; UsageError naming the option. run_coll_bench makes them first; `dtbench run`
// makes them before any run starts.
void check_bench_options(const BenchOptions& options, int world);

// Collective over COMM. Prints the table on rank 0 and returns the rows on every rank.
std::vector<BenchRow> run_coll_bench(Communicator& comm, const BenchOptions& options, std::ostream& out);

// Rank 0 writes; the layout is in results/README.md ("Collective benchmarks").
void write_coll_results(const std::string& path, const BenchOptions& options, const Communicator& comm,
                        const std::vector<BenchRow>& rows);

}  // namespace dtb::coll
