#pragma once
// The files a training run will write, checked before its first step (so a full or
// read-only disk, or a typo in a path, costs no training): the results file and every
// checkpoint. Rank 0 writes them all (parallel_trainer.cpp).
#include <cstdint>
#include <string>
#include <vector>

#include "train/train_config.hpp"

namespace dtb {

// Every checkpoint a run from step FROM to s.steps writes: the periodic ones
// (train.checkpoint_every) and the final one (train.checkpoint); none without it.
std::vector<std::string> planned_checkpoints(const TrainSettings& s, int64_t from);

// The name a run's checkpoints derive from: train.checkpoint, or, without one,
// "<RESULTS without .h5>-checkpoint.h5" (where a stopped run leaves its checkpoint).
std::string checkpoint_base(const TrainSettings& s, const std::string& results);
// Where a run stopped by a signal after STEP leaves its checkpoint: the periodic name
// (checkpoint.hpp) of checkpoint_base, "...-stepNNNNNN.h5".
std::string stop_checkpoint_path(const TrainSettings& s, const std::string& results, int64_t step);

// Refuses (UsageError, one line) a file of FILES that exists, unless OVERWRITE, and a
// folder where a file cannot be created (each file's folder is created and tried once).
void check_outputs(const std::vector<std::string>& files, bool overwrite);

// Temporaries of an interrupted write of TARGET or of its periodic names
// (<stem>[-stepNNNNNN]<ext>.tmp-<pid>, results/h5's names), beside it, whose process is
// not alive on this host: removed; returns their paths.
std::vector<std::string> remove_stale_temporaries(const std::string& target);

}  // namespace dtb
