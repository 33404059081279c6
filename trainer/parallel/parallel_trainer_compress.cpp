// The trainer's hooks for CocktailSGD (cocktail.hpp) and DeMo (demo.hpp): their syncs in
// the step and their checkpoint state.
#include <algorithm>

#include "algorithms.hpp"
#include "parallel/parallel_trainer.hpp"
#include "parallel/timeline.hpp"
#include "train/checkpoint.hpp"

namespace dtb::par {

namespace {
std::string worker_array(const char* strategy, int worker, const char* what) {
  return std::string(strategy) + "/worker" + std::to_string(worker) + "/" + what;
}
}  // namespace

// Before the optimizer: the average launched after the last step lands (the DP channel
// joined first; the exposed part is what the forward and backward did not hide).
void ParallelTrainer::cocktail_land() {
  if (!cocktail_->in_flight()) return;
  timeline_->join();
  cocktail_->land(std::span<float>(model_->params(), model_->num_params()));
}

// After the optimizer: the delta encoded and its sent part subtracted, then the exchange
// on the DP channel beside the next step's forward and backward. The last step's lands at
// once, so the run ends with every sync applied.
void ParallelTrainer::cocktail_take() {
  Timeline& tl = *timeline_;
  tl.charge_memory(double(model_->num_params()) * kCocktailBytesPerParam);
  cocktail_->take(std::span<float>(model_->params(), model_->num_params()));
  launch([this] { cocktail_->exchange(); });
  if (step_ + 1 == s_.steps) cocktail_land();
}

// DeMo's step in place of AdamW: decay, momentum, its top-k DCT components all-gathered
// over the DP group (blocking, all of it exposed), the sign step on the decoded mean.
void ParallelTrainer::demo_step(float lr, float clip) {
  Timeline& tl = *timeline_;
  const size_t n = model_->num_params();
  const std::span<float> params(model_->params(), n);
  const float keep = 1.0f - lr * float(s_.optim.weight_decay);
  for (const UpdatePiece& p : pieces_)
    if (p.decay)
      for (size_t i = p.offset; i < p.offset + p.size; ++i) params[i] *= keep;
  tl.charge_memory(double(n) * kDemoBytesPerParam);
  coll::Communicator& dp = demo_->group();
  const int p = dp.size();
  std::vector<float> gathered(demo_->payload_floats() * size_t(p));
  const size_t mine = demo_->payload_floats() * size_t(dp.rank());
  demo_->encode(std::span<const float>(model_->grads(), n), clip, lr,
                std::span(gathered).subspan(mine, demo_->payload_floats()));
  const double wait = tl.blocking(Traffic::kDp, [&] { coll::ring_allgather(dp, gathered); });
  tl.record().dp_total += wait;
  tl.record().dp_exposed += wait;
  const std::vector<float> g = demo_->decode(gathered, p);
  for (size_t i = 0; i < n; ++i) params[i] -= lr * float((g[i] > 0.0f) - (g[i] < 0.0f));
}

// Worker 0's parameters and moments are the checkpoint's own. CocktailSGD: every other
// worker's (they differ by what each has not sent yet), each worker's server residual,
// and the shared global and pending average. DeMo: each worker's momentum (the parameters
// are the same on every worker).
void ParallelTrainer::save_compressed(CheckpointState& ck) {
  if (timeline_->comm_thread()) timeline_->join();  // an exchange in flight: its average is in
  if (demo_) {
    for (int d = 0; d < layout_.dp; ++d) {
      std::vector<std::vector<float>> w = gather_worker({&demo_->momentum()}, d);
      if (world_.rank() == 0) ck.strategy.emplace_back(worker_array("demo", d, "momentum"), std::move(w[0]));
    }
    return;
  }
  std::vector<std::vector<float>> shared = gather_worker({&cocktail_->global(), &cocktail_->pending()}, 0);
  if (world_.rank() == 0) {
    ck.strategy.emplace_back("cocktail/global", std::move(shared[0]));
    ck.strategy.emplace_back("cocktail/pending", std::move(shared[1]));
  }
  std::vector<float> p, m, v;
  model_->get_state(&p, &m, &v);
  for (int d = 0; d < layout_.dp; ++d) {
    std::vector<std::vector<float>> w = gather_worker({&p, &m, &v, &cocktail_->server_residual()}, d);
    if (world_.rank() != 0) continue;
    if (d > 0) {
      ck.strategy.emplace_back(worker_array("cocktail", d, "params"), std::move(w[0]));
      ck.strategy.emplace_back(worker_array("cocktail", d, "adam_m"), std::move(w[1]));
      ck.strategy.emplace_back(worker_array("cocktail", d, "adam_v"), std::move(w[2]));
    }
    ck.strategy.emplace_back(worker_array("cocktail", d, "server_residual"), std::move(w[3]));
  }
}

// A checkpoint without the strategy's state (a DDP run's) starts every worker from its
// parameters with nothing in flight.
void ParallelTrainer::resume_compressed(const CheckpointState& ck, const std::string& path) {
  const int d = coord_.dp;
  const char* name = demo_ ? "demo" : "cocktail";
  const char* per_worker = demo_ ? "momentum" : "server_residual";
  int workers = 0;
  while (ck.strategy_array(worker_array(name, workers, per_worker))) ++workers;
  const bool has = workers > 0;
  if (has && workers != layout_.dp)
    throw UsageError(path + ": holds " + std::to_string(workers) + " " + name + " workers, the run has parallel.dp = " +
                     std::to_string(layout_.dp) + " (resume with the same DP)");
  const std::vector<float> zeros(model_->num_params(), 0.0f);
  if (demo_) {
    model_->set_state(localize(ck.params), localize(ck.adam_m), localize(ck.adam_v));
    demo_->restore(has ? localize(*ck.strategy_array(worker_array(name, d, per_worker))) : zeros);
    return;
  }
  auto array = [&](const char* what, const std::vector<float>& own) -> const std::vector<float>& {
    return has && d > 0 ? *ck.strategy_array(worker_array(name, d, what)) : own;
  };
  model_->set_state(localize(array("params", ck.params)), localize(array("adam_m", ck.adam_m)),
                    localize(array("adam_v", ck.adam_v)));
  if (!has) {
    cocktail_->restore(localize(ck.params), zeros, zeros, 0);
    return;
  }
  cocktail_->restore(localize(*ck.strategy_array("cocktail/global")),
                     localize(*ck.strategy_array(worker_array(name, d, per_worker))),
                     localize(*ck.strategy_array("cocktail/pending")), step_);
}

}  // namespace dtb::par
