#include "parallel/stage_compute.hpp"

#include <algorithm>
#include <stdexcept>

#include "cpu/kernels.hpp"
#include "model/flops.hpp"

namespace dtb::par {
namespace {

// device.backend = cpu: StageModel with the moments beside it, all in host memory.
class CpuStage final : public StageCompute {
 public:
  CpuStage(const TrainSettings& s, const StageShard& shard, int rows, int slots)
      : model_(s.model, shard, rows, s.seq_len, slots, StageLayout::kLayerMajor, cpu_kernel_set<float>(s.kernels)),
        mode_(s.kernels),
        math_(optim_math(s.kernels)) {
    model_.init_weights(s.seed);
  }

  std::string describe() const override {
    const std::string kernels = kernel_mode() == KernelMode::kFast ? "" : ", reproducible kernels";
    return "cpu, " + std::to_string(num_threads()) + " thread(s) per rank" + kernels;
  }
  const StageShard& shard() const override { return model_.shard(); }
  size_t num_params() const override { return model_.num_params(); }
  const std::vector<ShardRun>& runs() const override { return model_.runs(); }
  std::vector<ParamSegment> segments() const override { return model_.segments(); }
  size_t wte_size() const override { return model_.wte_size(); }
  double flops() const override { return model_.flops(); }

  float* input(int slot) override { return model_.input(slot); }
  const float* output(int slot) override { return model_.output(slot); }
  float* dresidual() override { return model_.dresidual(); }
  float forward(int slot, const int32_t* inputs, const int32_t* targets, TpReduce& tp) override {
    return model_.forward(slot, inputs, targets, tp);
  }
  void zero_grad() override { model_.zero_grad(); }
  void backward(int slot, float loss_scale, TpReduce& tp, const std::function<void(size_t)>& ready) override {
    model_.backward(slot, loss_scale, tp, ready);
  }

  float* params() override { return model_.params(); }
  float* grads() override { return model_.grads(); }

  double sum_of_squares(const std::vector<Range>& ranges) override {
    double sum = 0;
    for (const Range& r : ranges) sum += math_.sum_of_squares(model_.grads() + r.offset, r.size);
    return sum;
  }
  void init_moments(size_t state_size) override {
    m_.assign(state_size, 0.0f);
    v_.assign(state_size, 0.0f);
  }
  void adamw(const std::vector<UpdatePiece>& pieces, const OptimSettings& o, double lr, int64_t t,
             double grad_scale) override {
    for (const UpdatePiece& p : pieces) {
      const ParamSegment seg{0, p.size, p.decay};
      math_.adamw_update(model_.params() + p.offset, model_.grads() + p.offset, m_.data() + p.state, v_.data() + p.state,
                   std::span(&seg, 1), o, lr, t, grad_scale);
    }
  }
  float* adam_m() override { return m_.data(); }
  float* adam_v() override { return v_.data(); }
  void get_state(std::vector<float>* params, std::vector<float>* m, std::vector<float>* v) override {
    params->assign(model_.params(), model_.params() + model_.num_params());
    *m = m_;
    *v = v_;
  }
  void set_state(const std::vector<float>& params, const std::vector<float>& m, const std::vector<float>& v) override {
    std::copy(params.begin(), params.end(), model_.params());
    m_ = m;
    v_ = v;
  }
  void set_probe(StageModel::Probe probe) override { model_.set_probe(std::move(probe)); }

 private:
  KernelMode kernel_mode() const { return mode_; }
  StageModel model_;
  KernelMode mode_;  // train.kernels
  const OptimMath& math_;  // the optimizer's arithmetic of the same kernel mode
  std::vector<float> m_, v_;
};

// A Backend holding the whole model (GPT's layout is its local layout): the stage of a
// one-rank, one-micro-batch run. Its backward() computes the norm where the gradients
// live, so sum_of_squares() returns that norm squared for the whole buffer.
class BackendStage final : public StageCompute {
 public:
  BackendStage(std::unique_ptr<Backend> backend, const TrainSettings& s)
      : backend_(std::move(backend)),
        model_(s.model),
        shard_(whole_model(s.model)),
        tokens_(double(s.batch_size) * s.seq_len),
        issued_(stage_flops(s.model, shard_, s.seq_len)),
        num_params_(rank_parameters(model_, shard_)),
        runs_(StageModel::shard_runs(model_, shard_, StageLayout::kTensorMajor)),
        segments_(StageModel::run_segments(model_, runs_)) {}

  std::string describe() const override { return backend_->describe(); }
  const StageShard& shard() const override { return shard_; }
  size_t num_params() const override { return num_params_; }
  const std::vector<ShardRun>& runs() const override { return runs_; }
  std::vector<ParamSegment> segments() const override { return segments_; }
  size_t wte_size() const override { return size_t(model_.vocab_size) * model_.n_embd; }
  double flops() const override { return flops_; }

  // One stage, one micro-batch: no neighbour reads or writes a boundary tensor.
  float* input(int) override { throw std::logic_error("BackendStage: one stage holds every layer, no input"); }
  const float* output(int) override { throw std::logic_error("BackendStage: one stage holds every layer, no output"); }
  float* dresidual() override { throw std::logic_error("BackendStage: one stage holds every layer, no dresidual"); }
  float forward(int, const int32_t* inputs, const int32_t* targets, TpReduce&) override {
    flops_ += issued_.forward() * tokens_;  // what the CPU stage's kernels would issue (model/flops.hpp)
    return backend_->forward(inputs, targets);
  }
  void zero_grad() override {}  // backward() zeroes first: one micro-batch, nothing accumulates
  void backward(int, float loss_scale, TpReduce&, const std::function<void(size_t)>& ready) override {
    if (loss_scale != 1.0f) throw std::logic_error("BackendStage: one rank and one micro-batch only (loss scale 1)");
    norm_ = backend_->backward();
    flops_ += issued_.backward() * tokens_;
    ready(0);
  }

  float* params() override { return nullptr; }
  float* grads() override { return nullptr; }

  // One rank owns every element: RANGES (the DP buckets' blocks) cover the buffer once.
  double sum_of_squares(const std::vector<Range>& ranges) override {
    size_t covered = 0;
    for (const Range& r : ranges) covered += r.size;
    if (covered != num_params_) throw std::logic_error("BackendStage: the norm of the whole buffer only");
    return norm_ * norm_;
  }
  void init_moments(size_t state_size) override {
    if (state_size != num_params_) throw std::logic_error("BackendStage: moments for every parameter only");
  }
  void adamw(const std::vector<UpdatePiece>&, const OptimSettings&, double lr, int64_t t, double grad_scale) override {
    backend_->update(lr, t, grad_scale);  // the backend's own optimizer settings (the same S.optim)
  }
  void get_state(std::vector<float>* params, std::vector<float>* m, std::vector<float>* v) override {
    for (auto* out : {params, m, v}) out->resize(num_params_);
    backend_->get_state(params->data(), m->data(), v->data());
  }
  void set_state(const std::vector<float>& params, const std::vector<float>& m, const std::vector<float>& v) override {
    backend_->set_state(params.data(), m.data(), v.data());
  }

 private:
  std::unique_ptr<Backend> backend_;
  GPTConfig model_;
  StageShard shard_;
  double tokens_;
  StageFlops issued_;  // per token: the whole model's stage at TP = 1
  size_t num_params_;
  std::vector<ShardRun> runs_;
  std::vector<ParamSegment> segments_;
  double norm_ = 0, flops_ = 0;
};

}  // namespace

void StageCompute::set_probe(StageModel::Probe) {
  throw std::logic_error("this device stage has no layer probe (verify.trace needs device.backend = cpu)");
}

std::unique_ptr<StageCompute> make_backend_stage(std::unique_ptr<Backend> backend, const TrainSettings& s) {
  return std::make_unique<BackendStage>(std::move(backend), s);
}

std::unique_ptr<StageCompute> make_stage_compute(const TrainSettings& s, const StageShard& shard, int rows,
                                                 int slots) {
#ifdef DTB_HAVE_CUDA
  // train_settings() has checked that cuda runs one rank, one micro-batch, on a usable GPU.
  if (s.backend == "cuda") return make_backend_stage(make_cuda_backend(s), s);
#endif
  // A CPU build never gets here with cuda: train_settings() refused it (check_backend).
  return std::make_unique<CpuStage>(s, shard, rows, slots);
}

}  // namespace dtb::par
