#pragma once
// The per-run results file of `dtbench train` (layout in results/README.md, "Training runs").
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace dtb {
namespace h5 {
class File;
}

struct StepRecord {
  int64_t step;        // 0-based optimizer step
  double loss;         // mean training loss of the step's batch (before the update)
  double grad_norm;    // global L2 norm before clipping
  double lr;
  double time_ms;      // wall time of the whole step
  double tokens_per_s;
  double gflops;       // achieved GFLOP/s at 6N + 6LCT FLOPs per token
};

struct ValRecord {
  int64_t step;   // validation after this many optimizer steps
  double loss;
};

// One rank's step under MPI (dtbench train with parallel.*): where its time went, in
// seconds of its clock (virtual or wall), and the bytes it sent.
struct RankStepRecord {
  int64_t rank = 0, step = 0;
  double forward = 0, backward = 0, optimizer = 0, harness = 0;  // compute charged
  double tp_comm = 0, pp_comm = 0, bubble = 0;    // compute waiting on TP / PP transfers / the pipeline
  double dp_total = 0, dp_exposed = 0;            // DP sync on the comm stream; the part compute waited for
  double other_comm = 0, idle = 0, step_time = 0; // norm/loss allreduce; the rest; the whole step
  double kernel_cpu = 0, comm_cpu = 0;            // thread CPU inside kernels / inside communication
  uint64_t bytes_tp = 0, bytes_pp = 0, bytes_dp = 0, bytes_other = 0;  // sent, per traffic kind
  uint64_t bytes_intra = 0, bytes_inter = 0;      // sent, per link class (inside / across sites)
};

struct TrainRunSummary {
  std::string config_yaml, command_line;
  int64_t num_params = 0;
  double flops_per_token = 0;
  std::vector<StepRecord> steps;
  std::vector<ValRecord> val;
  std::vector<RankStepRecord> rank_steps;  // under MPI: every rank's steps (rank-major)
  std::string layout;                      // under MPI: "dp=2 pp=2 tp=2 ..."
  double mfu_peak_gflops = 0;              // under MPI: per rank, what MFU is counted against
  std::string mfu_peak_source;             // where that peak comes from
  std::function<void(h5::File&)> write_more;  // more groups in the same file (verify/: commitments)
  int64_t dp_buckets = 0;                  // DP gradient buckets of the stage with the most (parallel.bucket_mb)
  double dp_bucket_mb = 0;                 // parallel.bucket_mb (0 = one bucket)
  std::string status = "complete";         // "running" (the steps so far), "stopped by SIGTERM", ...
  int64_t outlier_skips = -1;              // optim.outlier_z: updates skipped (-1: off, nothing written)
  std::vector<int64_t> skipped_steps;      // their 0-based steps
  int64_t pp_buffer_bytes = -1;            // parallel.pp_compress: AQ-SGD's buffers on the fullest rank (-1: off, nothing written)
  int64_t pp_buffer_bytes_world = 0;       // and over all ranks
};

// Written to a temporary name and renamed.
void write_train_results(const std::string& path, const TrainRunSummary& run);

}  // namespace dtb
