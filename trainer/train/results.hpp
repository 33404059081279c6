#pragma once
// The per-run results file of `dtbench train` (layout in results/README.md, "Training runs").
#include <cstdint>
#include <string>
#include <vector>

namespace dtb {

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

struct TrainRunSummary {
  std::string config_yaml, command_line;
  int64_t num_params = 0;
  double flops_per_token = 0;
  std::vector<StepRecord> steps;
  std::vector<ValRecord> val;
};

// Written to a temporary name and renamed.
void write_train_results(const std::string& path, const TrainRunSummary& run);

}  // namespace dtb
