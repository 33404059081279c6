#pragma once
// What the report reads from one result file: only the datasets and attributes that
// results/README.md documents, for `kind = train` and `kind = coll`. A dataset an older or
// single-rank file lacks is left empty (the report shows n/a).
#include <limits>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace dtb::exp {

struct TrainData {
  std::map<std::string, std::string> config;  // /config, flattened: "parallel.dp" -> "2"
  double flops_per_token = 0;                 // @flops_per_token
  double mfu_peak_gflops = 0;                 // @mfu_peak_gflops (0: none, or an older file)
  std::vector<double> step, loss, time_ms;    // /steps/*
  std::vector<double> val_step, val_loss;     // /val/* (empty: no validation)
  // The per-rank step accounting (/ranks/*, runs under MPI): each part's mean over ranks
  // and steps, in seconds, in step_parts() order; empty when the file has none.
  std::vector<double> parts;
  // Means per rank and step: the step; the communication compute waited for (TP, PP, the
  // DP part not hidden, the scalars: parts of the step, so never more than it); the DP
  // time that ran beside the backward on the DP channel (not part of the step).
  double step_time_s = 0, exposed_s = 0, dp_hidden_s = 0;
  double bytes_per_step = 0, bytes_inter_per_step = 0;  // sent, all ranks together; across sites
  // The most bytes sent across sites in one step, all ranks together (/ranks/bytes_inter
  // summed per /ranks/step): a DiLoCo outer step's, a Streaming DiLoCo fragment's.
  double peak_bytes_inter_step = std::numeric_limits<double>::quiet_NaN();  // NaN: no /ranks/step
  bool has_ranks = false;
  // /privacy (issue 16): DP-SGD's settings and epsilon, secure aggregation; absent: both off.
  bool has_privacy = false, dp_sgd = false, secure_agg = false;
  double noise_multiplier = 0, clip_norm = 0, epsilon = 0, delta = 0;
};

struct CollData {
  std::string op, algo, codec, clock, net_name;  // @op, @algo, ...
  int64_t world = 0;
  std::vector<double> bytes, time_us, busbw_GBps;  // /rows/*
};

struct ResultFile {
  std::string path, name;  // name: the file's stem (the run's name under dtbench run)
  std::string kind, git_commit, host, created_utc;
  TrainData train;  // kind == "train"
  CollData coll;    // kind == "coll"
};

// Reads PATH. A file that is not HDF5, is damaged, is not a dtbench result, or is a kind
// the report does not show throws UsageError with one line naming the file.
ResultFile read_result(const std::string& path);

// The parts a rank's step is made of (/ranks/<dataset>), in the order bars stack them.
struct StepPart {
  const char* dataset;
  const char* label;
};
std::span<const StepPart> step_parts();

}  // namespace dtb::exp
