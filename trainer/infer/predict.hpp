#pragma once
// The simulator's prediction of one decode step (one new token per sequence) at any scale,
// with its pieces: the model split as the trainer splits it (parallel.pp stages of
// parallel.stages layers, parallel.tp slices, the placement), the device model of
// `dtbench sim` (configs/devices: peak x efficiency, memory bandwidth) and netem's closed
// form over the profile (configs/net). Per token, what dtbench infer's rounds do:
//
//   per stage   compute = max(FLOPs / (peak x efficiency), weight bytes / memory bandwidth)
//               FLOPs = what forward_cached's kernels issue for ROWS rows at the context
//               (model/flops.hpp's decode_flops: 2 per matmul weight, the attention over the
//               context 4 x context x C / TP per layer; decode reads every weight once per
//               step: at small batches the weights' bytes bound it, not the FLOPs)
//               + 2 allreduces per layer of (rows, C) activations over the stage's TP ranks
//   per hop     alpha + (rows x C x activation bytes) x beta to the next stage's rank
//   per round   + the token ids' hop from the last stage back to the first
// test_infer_mpi.cpp checks the same sum against the trainer's virtual clock.
#include <string>
#include <vector>

#include "sim/simulator.hpp"

namespace dtb::infer {

struct StagePrediction {
  int layers = 0;
  double params = 0;      // per TP rank
  double flops_time = 0, memory_time = 0, compute = 0, tp = 0, hop = 0;  // seconds; hop: to the next stage (last: back to the first)
  bool inter_site_hop = false;
};

struct TokenPrediction {
  int rows = 1, context = 0;
  std::vector<StagePrediction> stages;
  double compute = 0, tp = 0, hops = 0, per_token = 0;  // seconds per round (one token per sequence)
  double inter_bytes_per_token = 0;                       // bytes crossing sites per generated token
  double steps_per_s() const { return per_token > 0 ? 1 / per_token : 0; }
  double tokens_per_s() const { return rows * steps_per_s(); }
};

// ROWS sequences decoding together, each attending to CONTEXT positions (train.seq_len).
TokenPrediction predict_token(const sim::SimSettings& s, const sim::SimInputs& in, int rows);

// The table of stages and the totals, for dtbench infer --predict.
std::string prediction_table(const sim::SimSettings& s, const sim::SimInputs& in, const TokenPrediction& p);

}  // namespace dtb::infer
