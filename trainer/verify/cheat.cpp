#include "verify/cheat.hpp"

#include <algorithm>
#include <cstring>

#include "codec.hpp"
#include "parallel/parallel_trainer.hpp"

namespace dtb::verify {

bool Cheat::at(int64_t step) const {
  if (!any() || step < v_.cheat_step) return false;
  return step == v_.cheat_step || (v_.cheat_every > 0 && (step - v_.cheat_step) % v_.cheat_every == 0);
}

void Cheat::before_step(par::ParallelTrainer& t) {
  if (v_.cheat == "skip_step" && at(t.step())) before_ = t.checkpoint_state();
}

// Other data: every token moved to the next vocabulary id (a batch the data order never gives).
void Cheat::after_batch(par::ParallelTrainer& t, std::span<int32_t> inputs, std::span<int32_t> targets) {
  if (v_.cheat != "other_data" || !at(t.step())) return;
  const int32_t V = t.settings().model.vocab_size;
  for (auto* span : {&inputs, &targets})
    for (int32_t& id : *span) id = (id + 1) % V;
}

void Cheat::probe(int64_t step, ProbePoint at_point, int layer, float* data, size_t n) {
  if (!at(step)) return;
  const bool forward = at_point == ProbePoint::kEmbed || at_point == ProbePoint::kBlockForward;
  if (v_.cheat == "low_precision" && at_point == ProbePoint::kBlockForward) {
    // Each block's output rounded to bf16 (the codec's round to nearest even) and back.
    static const std::unique_ptr<coll::Codec> bf16 = coll::make_bf16_codec();
    std::vector<std::byte> wire(bf16->encoded_bytes(n));
    bf16->encode({data, n}, wire, 0);
    bf16->decode(wire, {data, n}, coll::DecodeMode::kAssign);
  }
  if (v_.cheat == "skip_layer" && forward) {
    if (at_point == ProbePoint::kBlockForward && layer == v_.cheat_layer) std::copy_n(block_input_.data(), n, data);
    block_input_.assign(data, data + n);  // the next block's input
  }
}

void Cheat::after_step(par::ParallelTrainer& t) {
  const int64_t made = t.step() - 1;
  if (!at(made)) return;
  if (v_.cheat == "skip_step") {  // the previous state, at the next step: the update never computed
    before_.step += 1;
    before_.data_cursor += 1;
    t.restore(before_);
  }
  if (v_.cheat == "perturb_param") t.compute().params()[0] += 1e-3f;
}

void Cheat::corrupt(CheckpointState& ck, int64_t step, int segment) const {
  if (v_.cheat != "corrupt_checkpoint") return;
  // The first segment checkpoint at or after a cheat step: the step's own, or the next one's.
  bool follows = false;
  for (int64_t s = std::max<int64_t>(0, step - segment + 1); s <= step; ++s) follows = follows || at(s);
  if (!follows || ck.params.empty()) return;
  uint32_t bits;
  std::memcpy(&bits, &ck.params[0], sizeof bits);
  bits ^= 1u;  // the lowest mantissa bit: a silent, tiny corruption
  std::memcpy(&ck.params[0], &bits, sizeof bits);
}

}  // namespace dtb::verify
