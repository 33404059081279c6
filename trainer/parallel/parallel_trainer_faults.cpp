// The trainer's hooks for issue 14's training faults: optim.outlier_z's skipped updates
// (train/outlier.hpp) and faults.grad_spike_step's injected spike that tests them.
#include <cmath>
#include <cstdio>

#include "parallel/parallel_trainer.hpp"

namespace dtb::par {

// Every gradient of every rank (or of faults.grad_spike_rank) times faults.grad_spike, or
// NaN, at faults.grad_spike_step (after the DP sync, before the norm): on every rank the
// world's norm grows by exactly that factor.
void ParallelTrainer::spike_gradients() {
  const FaultSettings& f = s_.faults;
  if (f.grad_spike_step != step_ + 1 || !model_->grads()) return;
  if (f.grad_spike_rank >= 0 && f.grad_spike_rank != world_.rank()) return;
  float* g = model_->grads();
  const bool nan = std::isnan(f.grad_spike);
  for (size_t i = 0; i < model_->num_params(); ++i) g[i] = nan ? std::nanf("") : g[i] * float(f.grad_spike);
}

// Whether this step's update is skipped: the norm's z-score over the last 128 norms is
// above optim.outlier_z. Every rank scores the same world norm (DiLoCo: its worker's), so
// every rank of it decides alike without a word.
bool ParallelTrainer::skip_outlier(const StepRecord& r) {
  last_skipped_ = false;
  if (s_.outlier_z <= 0) return false;
  last_z_ = outlier_.update(r.grad_norm);
  last_skipped_ = std::isfinite(last_z_) && last_z_ > s_.outlier_z;
  if (last_skipped_) summary_.skipped_steps.push_back(r.step);
  summary_.outlier_skips = int64_t(summary_.skipped_steps.size());
  return last_skipped_;
}

// The step line's tail with optim.outlier_z: the skips so far, and this step's score if skipped.
std::string ParallelTrainer::outlier_text() const {
  if (s_.outlier_z <= 0) return "";
  char buf[96];
  if (last_skipped_)
    std::snprintf(buf, sizeof buf, " | update skipped (norm z %.1f > %g) | skips %lld", last_z_, s_.outlier_z,
                  static_cast<long long>(summary_.outlier_skips));
  else
    std::snprintf(buf, sizeof buf, " | skips %lld", static_cast<long long>(summary_.outlier_skips));
  return buf;
}

}  // namespace dtb::par
