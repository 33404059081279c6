#include "parallel/dp_strategy.hpp"

#include <stdexcept>

#include "partition.hpp"

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
  for (int f = 0; f < s.fragments; ++f) {
    const coll::Range r = coll::block_range(start.size(), s.fragments, f);
    frags_.push_back({r.offset, r.count, {}});
    frags_.back().codec_state.error_feedback = error_feedback;
  }
}

// Fragment f's syncs start at steps_done = k H - f H / F, k >= 1 (those > 0).
bool DiLoCo::starts(int64_t steps_done, int f) const {
  const int64_t h = s_.inner_steps, offset = int64_t(f) * h / fragments();
  return steps_done > 0 && (steps_done + offset) % h == 0;
}

void DiLoCo::take(int f, std::span<const float> params) {
  const Fragment& g = frags_[size_t(f)];
  for (size_t i = g.offset; i < g.offset + g.size; ++i) delta_[i] = anchor_[i] - params[i];
}

void DiLoCo::send(int f) {
  Fragment& g = frags_[size_t(f)];
  algo_.run(dp_, slice(delta_, f), params_, {codec_.get(), codec_ ? &g.codec_state : nullptr, scope_});
}

void DiLoCo::land(int f, std::span<float> params) {
  if (params.size() != anchor_.size()) throw std::logic_error("DiLoCo: parameter count changed");
  const Fragment& g = frags_[size_t(f)];
  const float p = float(dp_.size()), mu = float(s_.outer_momentum), lr = float(s_.outer_lr);
  const float alpha = float(s_.mix), keep = 1.0f - alpha;
  for (size_t i = g.offset; i < g.offset + g.size; ++i) {
    const float d = delta_[i] / p;  // division: an average of equal deltas is exactly them (p = 2)
    momentum_[i] = mu * momentum_[i] + d;
    anchor_[i] -= lr * (d + mu * momentum_[i]);
    params[i] = alpha * params[i] + keep * anchor_[i];  // alpha = 0: 0 x p + a = a exactly
    delta_[i] = 0.0f;
  }
}

std::vector<float> DiLoCo::residual() const {
  std::vector<float> out(anchor_.size(), 0.0f);
  for (const Fragment& g : frags_)
    if (!g.codec_state.residual.empty())
      std::copy(g.codec_state.residual.begin(), g.codec_state.residual.end(), out.begin() + ptrdiff_t(g.offset));
  return out;
}

void DiLoCo::restore(std::vector<float> anchor, std::vector<float> momentum, const std::vector<float>& residual,
                     std::vector<float> in_flight, int64_t steps_done) {
  const size_t n = anchor_.size();
  if (anchor.size() != n || momentum.size() != n || residual.size() != n || in_flight.size() != n)
    throw std::logic_error("DiLoCo::restore: state of the wrong size");
  anchor_ = std::move(anchor);
  momentum_ = std::move(momentum);
  delta_ = std::move(in_flight);
  for (int f = 0; f < fragments(); ++f) {
    Fragment& g = frags_[size_t(f)];
    // A zero residual is a fresh state (x + 0 = x): kept empty, as a run that never encoded.
    const auto first = residual.begin() + ptrdiff_t(g.offset), last = first + ptrdiff_t(g.size);
    const bool any = std::any_of(first, last, [](float e) { return e != 0.0f; });
    g.codec_state.residual = any ? std::vector<float>(first, last) : std::vector<float>{};
    g.codec_state.calls = 0;  // the stochastic codecs' stream: one call per sync started
    for (int64_t t = 1; t <= steps_done; ++t) g.codec_state.calls += starts(t, f) ? 1 : 0;
  }
}

}  // namespace dtb::par
