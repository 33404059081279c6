#pragma once
// What a worker publishes while it trains (verify.segment = K > 0), after Gensyn's
// litepaper and Verde (arXiv 2502.19405): after every step the hash of its whole state
// (parameters, AdamW moments, step, data cursor, seed, config digest), a Merkle leaf per
// step over that hash and, with verify.trace, the root of the step's operation hashes
// (each layer's forward output and backward gradient: the leaves of the dispute's second
// phase); one Merkle root over all leaves; and a checkpoint at every K-th step, from which
// a verifier re-runs the segment that follows it. Stored as the /verify group of the run's
// results file (results/README.md) and as attributes of each segment checkpoint.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "train/checkpoint.hpp"
#include "verify/merkle.hpp"

namespace dtb::h5 {
class File;
}

namespace dtb::verify {

struct Commitment {
  int segment = 0;            // K
  int threads = 1;            // kernel threads: the bits depend on them (cpu/kernels.hpp)
  bool trace = false;
  std::string mode = "fast";  // the kernels' mode (fast: OpenBLAS, bitwise for this thread count and CPU)
  Digest config_digest{};
  int64_t first_step = 0;     // the step of state[0]
  std::vector<Digest> state;  // after each step: state[i] is the state at step first_step + i
  std::vector<Digest> trace_root;            // per state (zero for state[0]: no step made it)
  std::vector<std::vector<Digest>> ops;      // per state: the operation hashes of the step that made it
  std::vector<std::string> op_names;         // the operations of one step, in order
  std::vector<Digest> leaves;                // per state: step_leaf(...)
  std::vector<int64_t> checkpoint_steps;
  std::string checkpoint_dir;
  std::vector<double> hash_seconds;          // per state: the time spent hashing and gathering it

  Digest root() const { return merkle_root(leaves); }
  int64_t last_step() const { return first_step + int64_t(state.size()) - 1; }
  size_t bytes_per_step() const;  // what the worker stores per step: leaf, state hash, trace
  void write(h5::File& f) const;
  // From a results file; throws UsageError when it has no commitments or they are malformed.
  static Commitment read(const std::string& results_path);
};

Digest state_hash(const CheckpointState& ck, const Digest& config_digest);
Digest step_leaf(int64_t step, const Digest& state, const Digest& trace_root);
Digest op_leaf(int64_t step, size_t index, const std::string& name, std::span<const std::byte> data);
// DIR/seg-step000010.h5
std::string segment_checkpoint_path(const std::string& dir, int64_t step);

}  // namespace dtb::verify
