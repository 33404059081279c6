#pragma once
// The single-rank training loop: data -> forward -> backward -> clip -> AdamW, with
// validation, checkpoints and a results file, on the backend device.backend names
// (train/backend.hpp: the CPU, or one GPU).
#include <iosfwd>
#include <memory>
#include <string>

#include "config.hpp"
#include "data/dataset.hpp"
#include "model/gpt2.hpp"
#include "optim/adamw.hpp"
#include "train/backend.hpp"
#include "train/results.hpp"
#include "train/train_config.hpp"

namespace dtb {

// Validation batches come from their own stream, so they never depend on training.
inline constexpr uint64_t kValSeedSalt = 0x76616c69646174ULL;

// Where train.checkpoint_every writes: "ck/tiny.h5" at step 10 -> "ck/tiny-step000010.h5".
// The final checkpoint goes to train.checkpoint itself.
std::string periodic_checkpoint_path(const std::string& final_path, int64_t step);

class Trainer {
 public:
  // Checks every input (settings, dataset against the model) before any work.
  Trainer(const Config& config, std::ostream& log);

  // Continues from a checkpoint; its model shape must match the config's.
  void resume(const std::string& checkpoint_path);
  // Runs the remaining steps; returns the per-step and validation records.
  const TrainRunSummary& run(const std::string& command_line);

  double validate();  // mean loss over train.val_batches fixed batches of the val split
  void save(const std::string& path) const;
  // The parameters as a CPU model (on a GPU backend: a host copy made by this call).
  const GPT<float>& model() const { return backend_->host_model(); }
  int64_t step() const { return step_; }

 private:
  StepRecord train_step();
  std::string default_results_path() const;

  std::string config_yaml_;
  TrainSettings s_;
  std::ostream& log_;
  TokenSplit train_split_, val_split_;
  std::unique_ptr<Backend> backend_;
  std::vector<int32_t> inputs_, targets_;
  int64_t step_ = 0;
  TrainRunSummary summary_;
};

}  // namespace dtb
