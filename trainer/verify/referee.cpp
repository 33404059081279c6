#include "verify/referee.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "model/stage.hpp"
#include "parallel/parallel_trainer.hpp"
#include "verify/recorder.hpp"
#include "verify/verifier.hpp"

namespace dtb::verify {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The trainer's hooks and probe point at RECORDER while it lives: detach them when it goes.
struct Attached {
  Attached(par::ParallelTrainer& t, Recorder& r) : t_(t) { r.attach(t); }
  ~Attached() {
    t_.set_hooks(nullptr);
    t_.compute().set_probe({});
  }
  par::ParallelTrainer& t_;
};

// The one operation on a stage of its own (the whole model at TP = 1 in GPT's parameter
// order, so the agreed state's parameters are its buffer as they are): its output's hash.
Digest rerun_alone(const TrainSettings& s, const Evidence& e, int layer, double* seconds) {
  const GPTConfig& m = s.model;
  const size_t per_row = size_t(s.seq_len) * size_t(m.n_embd);
  const int rows = int(e.input.size() / per_row);
  if (rows < 1 || size_t(rows) * per_row != e.input.size())
    throw std::logic_error("referee: the input of '" + e.op_name + "' is not whole (rows, T, C) rows");
  TransformerStage<float> stage(m, whole_model(m), rows, s.seq_len, 1, StageLayout::kTensorMajor,
                                cpu_kernel_set<float>(s.kernels));
  if (e.state.params.size() != stage.num_params()) throw std::logic_error("referee: the agreed state is another model's");
  std::copy(e.state.params.begin(), e.state.params.end(), stage.params());
  const Clock::time_point t0 = Clock::now();
  const float* out = layer >= 0 ? stage.forward_block(0, layer, e.input.data()) : stage.forward_logits(0, e.input.data());
  *seconds = seconds_since(t0);
  const size_t n = layer >= 0 ? e.input.size() : size_t(rows) * size_t(s.seq_len) * size_t(stage.logits_stride());
  return op_leaf(e.step, e.op, e.op_name, std::as_bytes(std::span(out, n)));
}

// The whole step from the agreed state, with a recorder: the disputed operation's hash
// (without traces, the state the step ends in). Its hashing is not the referee's work.
Digest rerun_step(par::ParallelTrainer& t, const VerifySettings& v, const Evidence& e, double* seconds) {
  t.restore(e.state, "the referee's agreed state");
  Recorder rec(v, e.config_digest, num_threads(), /*save_checkpoints=*/false);
  Attached on(t, rec);
  const Clock::time_point t0 = Clock::now();
  t.run_steps(e.step + 1);
  *seconds = seconds_since(t0);
  const Commitment& c = rec.commitment();
  for (double h : c.hash_seconds) *seconds -= h;
  return e.op_name.empty() ? c.state.back() : c.ops.back()[e.op];
}

}  // namespace

std::string Ruling::reran() const {
  return alone ? "the operation alone" : "the whole step (this operation is not re-run alone)";
}

// The numbers read from NAME, then the name rebuilt by the recorder's own op_name: one
// spelling of every operation's name.
bool runs_alone(const std::string& name, int* layer) {
  int m = 0, l = 0;
  if (std::sscanf(name.c_str(), "microbatch %d: block %d", &m, &l) == 2 && name == op_name(ProbePoint::kBlockForward, l, m)) {
    *layer = l;
    return true;
  }
  if (std::sscanf(name.c_str(), "microbatch %d:", &m) == 1 && name == op_name(ProbePoint::kLogits, 0, m)) {
    *layer = -1;
    return true;
  }
  return false;
}

Evidence gather_evidence(par::ParallelTrainer& t, const VerifySettings& v, const Commitment& w,
                         const std::string& checkpoint, const Dispute& d) {
  Evidence e;
  e.step = d.step;
  e.config_digest = w.config_digest;
  e.state_hash = w.state[size_t(d.step - w.first_step)];
  e.op_name = d.op;
  e.op = d.op.empty() ? 0 : d.worker.op_index;
  t.restore(load_checkpoint(checkpoint), checkpoint);
  Recorder rec(v, w.config_digest, w.threads, /*save_checkpoints=*/false);
  Attached on(t, rec);
  t.run_steps(d.step);
  e.state = t.checkpoint_state();
  int layer = 0;
  if (e.op == 0 || !runs_alone(d.op, &layer)) return e;
  // The previous operation's output is this one's input (a block's forward follows the
  // embedding or the block before it, the logits the last block, in the same micro-batch).
  rec.keep_op(d.step, e.op - 1);
  t.run_steps(d.step + 1);
  e.input.resize(rec.kept().size() / sizeof(float));
  std::memcpy(e.input.data(), rec.kept().data(), e.input.size() * sizeof(float));
  e.input_name = w.op_names[e.op - 1];
  e.input_hash = w.ops[size_t(d.step + 1 - w.first_step)][e.op - 1];
  return e;
}

Ruling referee(par::ParallelTrainer& t, const VerifySettings& v, const Evidence& e, const Dispute& d) {
  Ruling r;
  auto refuse = [&](const std::string& why) {
    r.refused = true;
    r.why = why;
    return r;
  };
  if (state_hash(e.state, e.config_digest) != e.state_hash)
    return refuse("the state handed over does not hash to the committed state of step " + std::to_string(e.step));
  int layer = 0;
  if (!e.input.empty()) {
    if (op_leaf(e.step, e.op - 1, e.input_name, std::as_bytes(std::span(e.input))) != e.input_hash)
      return refuse("the input tensor handed over does not hash to the committed output of '" + e.input_name + "'");
    if (!runs_alone(e.op_name, &layer)) throw std::logic_error("referee: '" + e.op_name + "' has an input but is not re-run alone");
    r.alone = true;
    r.output = rerun_alone(t.settings(), e, layer, &r.seconds);
  } else {
    r.output = rerun_step(t, v, e, &r.seconds);
  }
  r.for_worker = r.output == d.worker.hash;
  r.for_verifier = r.output == d.verifier.hash;
  return r;
}

}  // namespace dtb::verify
