#pragma once
// A dishonest or faulty worker (verify.cheat; a TEST AND EXPERIMENT KNOB, never for real
// runs): what it does to its own run at verify.cheat_step (and every verify.cheat_every
// steps after, if set). The worker commits to what it computed, as a cheater would: the
// verifier must find the difference by re-executing.
#include <cstdint>
#include <span>
#include <vector>

#include "model/stage.hpp"
#include "train/checkpoint.hpp"
#include "verify/verify_config.hpp"

namespace dtb::par {
class ParallelTrainer;
}

namespace dtb::verify {

class Cheat {
 public:
  explicit Cheat(const VerifySettings& v) : v_(v) {}
  bool any() const { return v_.cheat != "none"; }
  bool at(int64_t step) const;  // does the cheat alter this 0-based step?

  void before_step(par::ParallelTrainer& t);
  void after_batch(par::ParallelTrainer& t, std::span<int32_t> inputs, std::span<int32_t> targets);
  void probe(int64_t step, ProbePoint at, int layer, float* data, size_t n);  // inside the step
  void after_step(par::ParallelTrainer& t);  // T's step has advanced past the one it made
  // corrupt_checkpoint: flips one bit of the segment checkpoint at STEP that follows a cheat step.
  void corrupt(CheckpointState& ck, int64_t step, int segment) const;

 private:
  VerifySettings v_;
  CheckpointState before_;         // skip_step: the state the step should have changed
  std::vector<float> block_input_;  // skip_layer: what entered the block the cheat skips
};

}  // namespace dtb::verify
