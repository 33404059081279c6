#pragma once
// The verify.* keys: commitments while training (off by default: a run without them is
// bitwise what it was) and the test-and-experiment cheats that `dtbench verify` must catch.
#include <string>
#include <vector>

#include "config.hpp"
#include "verify/hash.hpp"

namespace dtb::verify {

std::vector<KeySpec> key_specs();  // appended to train_schema()

// What a dishonest or faulty worker does at step verify.cheat_step, and every
// verify.cheat_every steps after if set (a knob for tests and experiments, never for real runs): none | skip_step (keeps the previous state: the update
// is not computed) | other_data (trains that step on another batch) | low_precision (block
// outputs rounded to bf16) | perturb_param (one weight moved after the update) | skip_layer
// (block verify.cheat_layer passes its input through) | corrupt_checkpoint (the first
// segment checkpoint at or after the step is stored with one flipped bit; the commitment
// holds the true state's hash).
struct VerifySettings {
  int segment = 0;          // K: steps per segment (0 = no commitments)
  std::string dir;          // segment checkpoints
  bool trace = false;       // per-layer hashes inside every step (the dispute's second phase)
  std::string cheat = "none";
  int cheat_step = 0, cheat_every = 0, cheat_layer = 0;
  bool on() const { return segment > 0; }
};

// Read and checked against the rest of the config (UsageError naming the key).
VerifySettings verify_settings(const Config& c);

// The digest of every key that changes the computation: all but where files go, what is
// logged, validation (it changes no state), the data's path (its content is checked by
// re-execution) and the cheat keys (the worker's secret).
// Thread count is not a key here: the commitment records the threads the run used.
Digest config_digest(const Config& c);

}  // namespace dtb::verify
