#include "parallel/dp_strategy.hpp"

#include <stdexcept>

namespace dtb::par {

double ring_allreduce_bytes_sent(int p, double wire) { return p <= 1 ? 0.0 : 2.0 * (p - 1) * wire; }

DiLoCo::DiLoCo(const StrategySettings& s, coll::Communicator& dp, const std::string& algo,
               const coll::CollParams& params, const std::string& codec, coll::CodecScope scope, bool error_feedback,
               std::span<const float> start)
    : s_(s),
      dp_(dp),
      algo_(coll::find_algorithm(coll::Op::kAllreduce, algo)),
      params_(params),
      codec_(coll::make_codec(codec)),
      scope_(scope),
      anchor_(start.begin(), start.end()),
      momentum_(start.size(), 0.0f),
      delta_(start.size(), 0.0f) {
  codec_state_.error_feedback = error_feedback;
}

void DiLoCo::outer_step(std::span<float> params) {
  const size_t n = anchor_.size();
  if (params.size() != n) throw std::logic_error("DiLoCo: parameter count changed");
  for (size_t i = 0; i < n; ++i) delta_[i] = anchor_[i] - params[i];
  algo_.run(dp_, delta_, params_, {codec_.get(), codec_ ? &codec_state_ : nullptr, scope_});
  const float p = float(dp_.size()), mu = float(s_.outer_momentum), lr = float(s_.outer_lr);
  for (size_t i = 0; i < n; ++i) {
    const float d = delta_[i] / p;  // division: an average of equal deltas is exactly them (p = 2)
    momentum_[i] = mu * momentum_[i] + d;
    anchor_[i] -= lr * (d + mu * momentum_[i]);
    params[i] = anchor_[i];
  }
}

std::vector<float> DiLoCo::residual() const {
  return codec_state_.residual.empty() ? std::vector<float>(anchor_.size(), 0.0f) : codec_state_.residual;
}

void DiLoCo::restore(std::vector<float> anchor, std::vector<float> momentum, const std::vector<float>& residual,
                     uint64_t outer_steps) {
  if (anchor.size() != anchor_.size() || momentum.size() != anchor_.size() || residual.size() != anchor_.size())
    throw std::logic_error("DiLoCo::restore: state of the wrong size");
  anchor_ = std::move(anchor);
  momentum_ = std::move(momentum);
  // A zero residual is a fresh state (x + 0 = x): kept empty, as a run that never encoded.
  bool any = false;
  for (float e : residual) any = any || e != 0.0f;
  codec_state_.residual = any ? residual : std::vector<float>{};
  codec_state_.calls = outer_steps;
}

}  // namespace dtb::par
