// device.backend = cpu: GPT<float> with the CPU kernels and optim/adamw, and the choice of
// backend for every build.
#include <algorithm>
#include <cmath>
#include <vector>

#include "optim/adamw.hpp"
#include "train/backend.hpp"

namespace dtb {
namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(const TrainSettings& s)
      : optim_(s.optim),
        model_(s.model, s.batch_size, s.seq_len),
        m_(model_.num_params(), 0.0f),
        v_(model_.num_params(), 0.0f) {
    for (const auto& t : param_layout(s.model)) segments_.push_back({t.offset, t.size, t.decay});
    model_.init_weights(s.seed);
  }

  std::string describe() const override { return "cpu, " + std::to_string(num_threads()) + " threads"; }
  float forward(const int32_t* inputs, const int32_t* targets) override { return model_.forward(inputs, targets); }
  double backward() override {
    model_.zero_grad();
    model_.backward();
    return std::sqrt(sum_of_squares(model_.grads(), model_.num_params()));
  }
  void update(double lr, int64_t t, double grad_scale) override {
    adamw_update(model_.params(), model_.grads(), m_.data(), v_.data(), segments_, optim_, lr, t, grad_scale);
  }
  void get_state(float* params, float* m, float* v) const override {
    std::copy(model_.params(), model_.params() + model_.num_params(), params);
    std::copy(m_.begin(), m_.end(), m);
    std::copy(v_.begin(), v_.end(), v);
  }
  void set_state(const float* params, const float* m, const float* v) override {
    const size_t n = model_.num_params();
    std::copy(params, params + n, model_.params());
    std::copy(m, m + n, m_.begin());
    std::copy(v, v + n, v_.begin());
  }
  const GPT<float>& host_model() const override { return model_; }
  double flops_per_token() const override { return model_.flops_per_token(); }

 private:
  OptimSettings optim_;
  GPT<float> model_;
  std::vector<float> m_, v_;
  std::vector<ParamSegment> segments_;
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(const TrainSettings& s) { return std::make_unique<CpuBackend>(s); }

std::unique_ptr<Backend> make_backend(const TrainSettings& s) {
#ifdef DTB_HAVE_CUDA
  if (s.backend == "cuda") return make_cuda_backend(s);
#endif
  // A CPU build never gets here with cuda: train_settings() refused it (check_backend).
  return make_cpu_backend(s);
}

}  // namespace dtb
