#pragma once
// The single-rank training loop written out on GPT<float>, independent of the trainer:
// forward, backward, the global norm in double, clipping, AdamW over param_layout's
// segments. What the trainer must compute on a world of one (bitwise) and, up to float
// rounding, on every layout. And the same step as a Backend (train/backend.hpp), so the
// seam a GPU is driven through runs where no GPU does.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "config.hpp"
#include "cpu/kernels.hpp"
#include "data/dataset.hpp"
#include "model/gpt2.hpp"
#include "optim/adamw.hpp"
#include "train/backend.hpp"
#include "train/train_config.hpp"

namespace dtb::test {

struct Reference {
  std::vector<double> losses, norms;  // per step
  std::vector<float> params;          // after the last step, GPT's layout
};

inline Reference reference_run(const Config& config) {
  const TrainSettings s = train_settings(config);
  set_num_threads(1);
  TokenSplit split(s.data_path, "train", s.model.vocab_size, s.seq_len);
  GPT<float> model(s.model, s.batch_size, s.seq_len);
  model.init_weights(s.seed);
  const size_t n = model.num_params();
  std::vector<float> m(n), v(n);
  std::vector<ParamSegment> segments;
  for (const auto& t : param_layout(s.model)) segments.push_back({t.offset, t.size, t.decay});
  std::vector<int32_t> in(size_t(s.batch_size) * s.seq_len), tg(in.size());
  Reference r;
  for (int step = 0; step < s.steps; ++step) {
    split.batch(s.seed, uint64_t(step), s.batch_size, s.seq_len, 0, 1, in.data(), tg.data());
    r.losses.push_back(model.forward(in.data(), tg.data()));
    model.zero_grad();
    model.backward();
    r.norms.push_back(std::sqrt(sum_of_squares(model.grads(), n)));
    const double lr = learning_rate(s.optim, step, s.steps);
    adamw_update(model.params(), model.grads(), m.data(), v.data(), segments, s.optim, lr, step + 1,
                 clip_scale(r.norms.back(), s.optim.grad_clip));
  }
  r.params.assign(model.params(), model.params() + n);
  return r;
}

// A Backend on the CPU (GPT<float> and AdamW, as the CUDA backend mirrors them), so the
// seam a GPU is driven through (BackendStage) runs here, where no GPU does.
class GptBackend final : public Backend {
 public:
  explicit GptBackend(const TrainSettings& s)
      : optim_(s.optim), model_(s.model, s.batch_size, s.seq_len), m_(model_.num_params()), v_(m_.size()) {
    for (const auto& t : param_layout(s.model)) segments_.push_back({t.offset, t.size, t.decay});
    model_.init_weights(s.seed);
  }
  std::string describe() const override { return "gpt on the cpu"; }
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
    std::copy_n(model_.params(), m_.size(), params);
    std::copy(m_.begin(), m_.end(), m);
    std::copy(v_.begin(), v_.end(), v);
  }
  void set_state(const float* params, const float* m, const float* v) override {
    std::copy_n(params, m_.size(), model_.params());
    std::copy_n(m, m_.size(), m_.begin());
    std::copy_n(v, v_.size(), v_.begin());
  }

 private:
  OptimSettings optim_;
  GPT<float> model_;
  std::vector<float> m_, v_;
  std::vector<ParamSegment> segments_;
};

}  // namespace dtb::test
