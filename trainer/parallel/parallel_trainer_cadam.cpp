// 1-bit Adam and QuantizedAdam in the training loop (compressed_adam.hpp): set up, the
// switch at the end of the warm-up, the optimizer step after it, checkpoint state. The
// hooks sit in parallel_trainer.cpp's constructor, train_step, checkpoint_state and restore.
#include <algorithm>

#include "train/checkpoint.hpp"
#include "usage_error.hpp"

#include "parallel/parallel_trainer.hpp"

namespace dtb::par {

// The rank's pieces of the model's tensors are the compression units. The gradient buckets of the
// steps after the warm-up go nowhere (no DP group), so each rank's norm share is its whole
// owned buffer, as in DiLoCo.
void ParallelTrainer::setup_compressed_adam(coll::Communicator& dp, size_t bucket, const std::vector<Range>& owned) {
  cadam_ = std::make_unique<CompressedAdam>(s_.strategy, dp, tensor_units(model_->runs()), s_.parallel.error_feedback);
  local_sync_ = std::make_unique<GradSync>(model_->num_params(), bucket, nullptr, false, s_.parallel.dp_algo, "none",
                                           coll::CollParams{});
  local_norm_ranges_ = local_sync_->owned_blocks(owned);
}

void ParallelTrainer::set_compressing(bool on) {
  if (on == compressing_) return;
  std::swap(sync_, local_sync_);
  std::swap(norm_ranges_, local_norm_ranges_);
  compressing_ = on;
}

// Momentum from the local gradient (each is local / p: times p, and the clip), the
// compressed allreduce on the DP channel, blocking (nothing to overlap: the momentum needs
// the whole gradient), then Adam's update with the variance frozen.
void ParallelTrainer::compressed_adam_step(const StepRecord& r) {
  Timeline& tl = *timeline_;
  float* m = model_->adam_m();
  const double scale = clip_scale(r.grad_norm, s_.optim.grad_clip) * layout_.dp;
  cadam_->update_momentum(m, model_->grads(), pieces_, s_.optim, scale);
  const double wait = tl.blocking(Traffic::kDp, [&] { cadam_->communicate(std::span<float>(m, sync_->state_size())); });
  tl.record().dp_total += wait;
  tl.record().dp_exposed += wait;
  tl.set_phase(Phase::kOptimizer);
  cadam_->apply(model_->params(), m, model_->adam_v(), pieces_, s_.optim, r.lr, step_ + 1);
}

namespace {
std::string error_array(const std::string& strategy, int worker) {
  return strategy + "/worker" + std::to_string(worker) + "/worker_error";
}
}  // namespace

// Momentum and the frozen variance are the checkpoint's adam/m and adam/v (the same on
// every worker); beside them each worker's worker error and the server errors, whose
// chunks are disjoint across workers, as one array.
void ParallelTrainer::save_compressed_adam(CheckpointState& ck) {
  const size_t n = model_->num_params();
  const std::vector<float> worker = cadam_->worker_error(n), server = cadam_->server_error(n);
  std::vector<float> servers;
  for (int d = 0; d < layout_.dp; ++d) {
    std::vector<std::vector<float>> w = gather_worker({&worker, &server}, d);
    if (world_.rank() != 0) continue;
    ck.strategy.emplace_back(error_array(s_.strategy.name, d), std::move(w[0]));
    if (servers.empty()) servers.assign(w[1].size(), 0.0f);
    for (size_t i = 0; i < w[1].size(); ++i)
      if (w[1][i] != 0.0f) servers[i] = w[1][i];
  }
  if (world_.rank() == 0) ck.strategy.emplace_back(s_.strategy.name + "/server_error", std::move(servers));
}

// A checkpoint without this strategy's errors (a DDP run's, another strategy's) starts
// them at zero; one with them needs the same DP size (each worker its own).
void ParallelTrainer::resume_compressed_adam(const CheckpointState& ck, const std::string& path) {
  const std::string& name = s_.strategy.name;
  int workers = 0;
  while (ck.strategy_array(error_array(name, workers))) ++workers;
  const std::vector<float> zeros(model_->num_params(), 0.0f);
  if (workers == 0) return cadam_->restore(zeros, zeros);
  if (workers != layout_.dp)
    throw UsageError(path + ": holds " + std::to_string(workers) + " " + name + " workers' error buffers, the run has " +
                     "parallel.dp = " + std::to_string(layout_.dp) + " (resume with the same DP)");
  cadam_->restore(localize(*ck.strategy_array(error_array(name, coord_.dp))),
                  localize(*ck.strategy_array(name + "/server_error")));
}

}  // namespace dtb::par
