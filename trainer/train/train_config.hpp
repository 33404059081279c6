#pragma once
// The keys the trainer understands (model.*, train.*, data.*, optim.*) and the typed
// settings built from them once every cross-key constraint has been checked.
#include <string>
#include <vector>

#include "config.hpp"
#include "model/gpt2.hpp"

namespace dtb {

std::vector<KeySpec> train_schema();

struct OptimSettings {
  double lr, min_lr_ratio, beta1, beta2, eps, weight_decay, grad_clip;
  int warmup_steps;
};

struct TrainSettings {
  std::string name;          // model.name
  GPTConfig model;
  int batch_size, seq_len;   // global B, T
  int steps, threads, log_every, val_every, val_batches, checkpoint_every;
  uint64_t seed;
  std::string data_path, checkpoint_path, results_path;
  OptimSettings optim;
};

// Reads the typed settings and checks the constraints between keys (heads divide the width,
// T <= n_ctx, ...); throws UsageError naming the keys.
TrainSettings train_settings(const Config& config);

}  // namespace dtb
