#pragma once
// Checkpoints in HDF5: everything a run needs to continue bit for bit.
//   /params, /adam/m, /adam/v   float32, flat, in param_layout() order
//   /config                     the resolved config (YAML text)
//   /strategy/<name>            float32, flat: a DP strategy's own state (dp_strategy.hpp:
//                               DiLoCo's outer anchor and momentum, every worker's own
//                               replica), listed in the root attribute strategy_arrays
//   each dataset's @crc32       zlib's CRC-32 of its bytes (version 2), verified on load;
//                               every dataset since the root's state_crc32 came (the strategy
//                               state, pp_buffers/*, outlier/*; older version 2 files had
//                               it on params, adam/* and config only)
//   root @state_crc32           CRC-32 of the run's position: step, seed, data_cursor, the
//                               epoch sampler's data.* and AQ-SGD's pp_* attributes
//   /outlier/state              float64: optim.outlier_z's detector (train/outlier.hpp: its
//                               two running sums, then its window of norms, oldest first)
//   root attributes: format = "dtbench-checkpoint", version, step (optimizer steps done),
//   seed, data_cursor (the next global batch index), the model shape (model.*).
// The data loader is counter-based: (seed, data_cursor) is its whole random state, and
// training draws no other random numbers, so that pair is the RNG state.
// Runs with data.sampler = epoch also record data.sampler, data.epoch_samples and where the
// cursor falls (data.epoch, data.epoch_position: informative, both follow from the cursor).
// Runs with parallel.pp_compress = aqsgd also hold AQ-SGD's buffers (pp_compress.hpp), one
// set per pipeline boundary, named by the layers before it (the stage split's cut):
//   /pp_buffers/layers, /pp_buffers/counts   int64 per boundary: its cut, its samples
//   /pp_buffers/ids, /pp_buffers/values      uint32 sample ids, float32 (count, T x C) rows,
//                                            the boundaries one after another
//   root attributes: pp_compress = "aqsgd", pp_buffer_width (T x C)
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/gpt2.hpp"

namespace dtb {

// AQ-SGD's m(x_i) of one pipeline boundary: LAYER layers before it; per id, T x C values.
struct PpBufferSet {
  int64_t layer = 0;
  std::vector<uint32_t> ids;
  std::vector<float> values;  // (ids.size(), width)
};

struct CheckpointState {
  GPTConfig model;
  int64_t step = 0;         // optimizer steps already taken
  uint64_t seed = 0;
  uint64_t data_cursor = 0; // next global batch index
  std::vector<float> params, adam_m, adam_v;
  std::string config_yaml;
  std::string sampler = "windows";  // data.sampler
  uint64_t epoch_samples = 0, epoch = 0, epoch_position = 0;  // sampler = epoch only
  std::string pp_compress = "none";  // "aqsgd": the buffers below are saved
  int64_t pp_buffer_width = 0;       // T x C
  std::vector<PpBufferSet> pp_buffers;
  // More string attributes of the root, written as given (verify/: the state's hash).
  std::vector<std::pair<std::string, std::string>> attrs;
  // A DP strategy's state: (name, values), in param_layout() order where per parameter.
  std::vector<std::pair<std::string, std::vector<float>>> strategy;
  const std::vector<float>* strategy_array(const std::string& name) const;  // null if absent
  std::vector<double> outlier_state;  // optim.outlier_z's detector (train/outlier.hpp); empty: off
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
