#pragma once
// The worker's side of verification: a StepHooks (parallel_trainer.hpp) that hashes the
// state after every step (and, with verify.trace, every layer's output inside the step)
// into a Commitment (commitment.hpp), writes a checkpoint every K steps, applies the
// configured cheat, and puts the commitments into the results file. The verifier re-runs
// segments with the same recorder (no checkpoints, no cheat) and compares.
#include <chrono>
#include <memory>
#include <optional>

#include "parallel/parallel_trainer.hpp"
#include "verify/cheat.hpp"
#include "verify/commitment.hpp"

namespace dtb::verify {

// The name a trace gives the operation probed at AT (LAYER, MICROBATCH): "microbatch 0: block
// 2 forward". The referee (referee.cpp) recognises the operations it re-runs alone by it.
std::string op_name(ProbePoint at, int layer, int microbatch);

class Recorder final : public par::StepHooks {
 public:
  // SAVE_CHECKPOINTS: the worker writes them (into V.dir); a verifier's re-run does not.
  Recorder(const VerifySettings& v, const Digest& config_digest, int threads, bool save_checkpoints);
  // Hooks T (and, with traces, its stage's probe). T must outlive the recorder's use.
  void attach(par::ParallelTrainer& t);
  const Commitment& commitment() const { return c_; }
  // Keep a copy of the bytes of operation INDEX of step STEP (the referee's evidence: an
  // operation's input tensor as this re-execution computed it); kept() after that step.
  void keep_op(int64_t step, size_t index) { keep_step_ = step, keep_index_ = index; }
  const std::vector<std::byte>& kept() const { return kept_; }

  void before_step(par::ParallelTrainer& t) override;
  void after_batch(par::ParallelTrainer& t, std::span<int32_t> inputs, std::span<int32_t> targets) override;
  void after_step(par::ParallelTrainer& t) override;
  void before_results(TrainRunSummary& run) override;

 private:
  using Clock = std::chrono::steady_clock;
  void record_state(par::ParallelTrainer& t);
  void record_op(const std::string& name, std::span<const std::byte> data);
  void on_probe(ProbePoint at, int layer, float* data, size_t n);

  VerifySettings v_;
  bool save_;
  Cheat cheat_;
  Commitment c_;
  bool root_ = false, in_step_ = false;
  int64_t step_ = 0;                     // the step being made
  int microbatch_ = -1;                  // the micro-batch the probe is in (its embedding seen last)
  std::vector<Digest> ops_;              // this step's operation hashes so far
  std::vector<std::string> names_;       // and their names
  double hashing_ = 0;                   // this step's hashing time so far
  int64_t keep_step_ = -1;               // keep_op's operation, and its bytes
  size_t keep_index_ = 0;
  std::vector<std::byte> kept_;
};

// The recorder a `dtbench train` config asks for (null when verify.segment = 0), attached.
std::unique_ptr<Recorder> attach_recorder(const Config& config, par::ParallelTrainer& t);

}  // namespace dtb::verify
