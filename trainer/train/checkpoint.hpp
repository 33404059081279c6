#pragma once
// Checkpoints in HDF5: everything a run needs to continue bit for bit.
//   /params, /adam/m, /adam/v   float32, flat, in param_layout() order
//   /config                     the resolved config (YAML text)
//   each dataset's @crc32       zlib's CRC-32 of its bytes (version 2), verified on load
//   root attributes: format = "dtbench-checkpoint", version, step (optimizer steps done),
//   seed, data_cursor (the next global batch index), the model shape (model.*).
// The data loader is counter-based: (seed, data_cursor) is its whole random state, and
// training draws no other random numbers, so that pair is the RNG state.
#include <cstdint>
#include <string>
#include <vector>

#include "model/gpt2.hpp"

namespace dtb {

struct CheckpointState {
  GPTConfig model;
  int64_t step = 0;         // optimizer steps already taken
  uint64_t seed = 0;
  uint64_t data_cursor = 0; // next global batch index
  std::vector<float> params, adam_m, adam_v;
  std::string config_yaml;
};

// Written to a temporary name, flushed and renamed.
void save_checkpoint(const std::string& path, const CheckpointState& state);
// Throws UsageError for a missing, foreign or inconsistent file, a dataset whose checksum
// fails (naming it) and parameters or moments that are not finite (naming the tensor).
CheckpointState load_checkpoint(const std::string& path);

// Where train.checkpoint_every writes: "ck/tiny.h5" at step 10 -> "ck/tiny-step000010.h5".
// The final checkpoint goes to train.checkpoint itself.
std::string periodic_checkpoint_path(const std::string& final_path, int64_t step);

}  // namespace dtb
