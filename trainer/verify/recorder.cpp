#include "verify/recorder.hpp"

#include "cpu/kernels.hpp"

namespace dtb::verify {

std::string op_name(ProbePoint at, int layer, int microbatch) {
  const std::string m = "microbatch " + std::to_string(microbatch) + ": ";
  switch (at) {
    case ProbePoint::kEmbed: return m + "embedding forward";
    case ProbePoint::kBlockForward: return m + "block " + std::to_string(layer) + " forward";
    case ProbePoint::kLogits: return m + "lm head forward (logits)";
    case ProbePoint::kHeadBackward: return m + "lm head backward";
    case ProbePoint::kBlockBackward: return m + "block " + std::to_string(layer) + " backward";
  }
  return m + "?";
}

Recorder::Recorder(const VerifySettings& v, const Digest& config_digest, int threads, bool save_checkpoints)
    : v_(v), save_(save_checkpoints), cheat_(v) {
  c_.segment = v.segment;
  c_.threads = threads;
  c_.trace = v.trace;
  c_.config_digest = config_digest;
  c_.checkpoint_dir = v.dir;
}

void Recorder::attach(par::ParallelTrainer& t) {
  root_ = t.world_rank() == 0;
  c_.mode = kernel_mode_name(t.settings().kernels);  // train.kernels: which bits a re-run must give
  t.set_hooks(this);
  if (v_.trace || cheat_.any())
    t.compute().set_probe([this](ProbePoint at, int layer, float* data, size_t n) { on_probe(at, layer, data, n); });
}

void Recorder::on_probe(ProbePoint at, int layer, float* data, size_t n) {
  if (!in_step_) return;  // validation's forward passes change no state
  if (at == ProbePoint::kEmbed) ++microbatch_;  // each micro-batch's forward starts there
  cheat_.probe(step_, at, layer, data, n);
  if (v_.trace) record_op(op_name(at, layer, microbatch_), std::as_bytes(std::span(data, n)));
}

void Recorder::record_op(const std::string& name, std::span<const std::byte> data) {
  if (step_ == keep_step_ && ops_.size() == keep_index_) kept_.assign(data.begin(), data.end());
  const Clock::time_point start = Clock::now();
  ops_.push_back(op_leaf(step_, ops_.size(), name, data));
  names_.push_back(name);
  hashing_ += std::chrono::duration<double>(Clock::now() - start).count();
}

void Recorder::before_step(par::ParallelTrainer& t) {
  if (c_.state.empty()) {  // the state every later one grows from
    c_.first_step = t.step();
    record_state(t);
  }
  cheat_.before_step(t);
  step_ = t.step();
  ops_.clear(), names_.clear();
  microbatch_ = -1;
  hashing_ = 0;
  in_step_ = true;
}

void Recorder::after_batch(par::ParallelTrainer& t, std::span<int32_t> inputs, std::span<int32_t> targets) {
  cheat_.after_batch(t, inputs, targets);
  if (!v_.trace) return;  // the data the step trains on: the first operation of its trace
  std::vector<int32_t> tokens(inputs.begin(), inputs.end());
  tokens.insert(tokens.end(), targets.begin(), targets.end());
  record_op("batch tokens (inputs, targets)", std::as_bytes(std::span(tokens)));
}

void Recorder::after_step(par::ParallelTrainer& t) {
  in_step_ = false;
  cheat_.after_step(t);
  if (v_.trace) {  // the step's last two operations: the summed gradient, then the update (below)
    par::StageCompute& s = t.compute();
    record_op("gradients (after the backward and the DP sum)", std::as_bytes(std::span(s.grads(), s.num_params())));
  }
  record_state(t);
}

// The state hash (gathered in GPT's layout, so any layout commits the same bytes), the step's
// trace, its leaf and, every K steps, the segment checkpoint the verifier starts from.
void Recorder::record_state(par::ParallelTrainer& t) {
  const Clock::time_point start = Clock::now();
  CheckpointState ck = t.checkpoint_state();
  if (!root_) return;
  const Digest state = state_hash(ck, c_.config_digest);
  Digest trace{};
  std::vector<Digest> ops;
  if (v_.trace && !c_.state.empty()) {
    ops = ops_;
    ops.push_back(Hasher("dtbench-op-v1").u64(uint64_t(step_)).u64(ops.size()).text("update (AdamW)").digest(state).finish());
    names_.push_back("update (AdamW)");
    trace = merkle_root(ops);
    if (c_.op_names.empty()) c_.op_names = names_;
    else if (c_.op_names != names_) throw std::logic_error("verify: a step's operations differ from the first step's");
  }
  c_.state.push_back(state);
  c_.trace_root.push_back(trace);
  c_.ops.push_back(ops);
  c_.leaves.push_back(step_leaf(ck.step, state, trace));
  c_.hash_seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count() + hashing_);
  if (save_ && ck.step % v_.segment == 0) {
    ck.attrs = {{"verify.state_hash", hex(state)}, {"verify.config_digest", hex(c_.config_digest)},
                {"verify.prefix_root", hex(c_.root())}};
    cheat_.corrupt(ck, ck.step, v_.segment);
    save_checkpoint(segment_checkpoint_path(v_.dir, ck.step), ck);
    c_.checkpoint_steps.push_back(ck.step);
  }
}

void Recorder::before_results(TrainRunSummary& run) {
  run.write_more = [this](h5::File& f) { c_.write(f); };
}

std::unique_ptr<Recorder> attach_recorder(const Config& config, par::ParallelTrainer& t) {
  const VerifySettings v = verify_settings(config);
  if (!v.on()) return nullptr;
  auto r = std::make_unique<Recorder>(v, config_digest(config), num_threads(), /*save_checkpoints=*/true);
  r->attach(t);
  return r;
}

}  // namespace dtb::verify
