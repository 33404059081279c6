#pragma once
// The single-rank training loop written out on GPT<float>, independent of the trainer:
// forward, backward, the global norm in double, clipping, AdamW over param_layout's
// segments. What the trainer must compute on a world of one (bitwise) and, up to float
// rounding, on every layout. Beside it the DP workers' gradients for the strategies'
// references, and the comparison within rounding. And the same step as a Backend (train/backend.hpp), so the
// seam a GPU is driven through runs where no GPU does.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
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

// The DP workers' view of a global batch, independent of the trainer: GPT<float> on worker
// W's rows (the trainer's DP rank W reads rows [W B / P, (W + 1) B / P) of every global
// batch, dataset.hpp) at whatever parameters a reference loop gives it. For the references
// of the strategies that step, or average, per worker.
class WorkerGradients {
 public:
  WorkerGradients(const TrainSettings& s, int workers)
      : s_(s), p_(workers), split_(s.data_path, "train", s.model.vocab_size, s.seq_len),
        model_(s.model, s.batch_size / workers, s.seq_len), in_(size_t(s.batch_size / workers) * s.seq_len),
        tg_(in_.size()) {
    set_num_threads(1);
  }
  size_t size() const { return model_.num_params(); }
  std::vector<float> initial() {  // the trainer's start: init_weights(seed)
    model_.init_weights(s_.seed);
    return std::vector<float>(model_.params(), model_.params() + size());
  }
  // Worker W's mean loss on its rows of global batch STEP at PARAMS; GRAD = its gradient.
  double at(const std::vector<float>& params, int step, int w, std::vector<float>& grad) {
    std::copy(params.begin(), params.end(), model_.params());
    split_.batch(s_.seed, uint64_t(step), s_.batch_size, s_.seq_len, w, p_, in_.data(), tg_.data());
    const double loss = model_.forward(in_.data(), tg_.data());
    model_.zero_grad();
    model_.backward();
    grad.assign(model_.grads(), model_.grads() + size());
    return loss;
  }
  std::vector<ParamSegment> segments() const {
    std::vector<ParamSegment> out;
    for (const auto& t : param_layout(s_.model)) out.push_back({t.offset, t.size, t.decay});
    return out;
  }

 private:
  TrainSettings s_;
  int p_;
  TokenSplit split_;
  GPT<float> model_;
  std::vector<int32_t> in_, tg_;
};

// Comparing a run with a reference within rounding, per tensor of MODEL. The key bias's true
// gradient is zero (a query's scores all shift by q.b_k: softmax does not change), so what
// it gets is rounding noise, which Adam turns into steps of about lr either way: it is
// compared in absolute terms (|diff| <= 2 lr steps), not relatively.
inline bool is_key_bias(const GPTConfig& c, const ParamTensorInfo& t, size_t i) {
  const size_t C = size_t(c.n_embd), j = (i - t.offset) % (3 * C);
  return std::string(t.name) == "qkvb" && j >= C && j < 2 * C;
}

// Per tensor of A against B: max |a - b| and max |b| (the key bias apart).
struct TensorDiff {
  std::string name;
  double diff = 0, scale = 0, key_bias = 0;
};
inline std::vector<TensorDiff> tensor_diffs(const std::vector<float>& a, const std::vector<float>& b, const GPTConfig& model) {
  std::vector<TensorDiff> out;
  for (const ParamTensorInfo& t : param_layout(model)) {
    TensorDiff d{t.name};
    for (size_t i = t.offset; i < t.offset + t.size; ++i) {
      const double x = std::abs(double(a[i]) - double(b[i]));
      if (is_key_bias(model, t, i)) d.key_bias = std::max(d.key_bias, x);
      else d.diff = std::max(d.diff, x), d.scale = std::max(d.scale, double(std::abs(b[i])));
    }
    out.push_back(d);
  }
  return out;
}

// Per tensor: max |a - b| <= tol x max |b| (the key bias: <= 2 steps x lr).
inline void check_params(const std::vector<float>& a, const std::vector<float>& b, double tol, const TrainSettings& s) {
  REQUIRE(a.size() == b.size());
  for (const TensorDiff& d : tensor_diffs(a, b, s.model)) {
    INFO(d.name << " maxdiff=" << d.diff << " scale=" << d.scale << " key-bias maxdiff=" << d.key_bias);
    CHECK(d.diff <= tol * d.scale);
    CHECK(d.key_bias <= 2 * s.steps * s.optim.lr);
  }
}

// The largest max |a - b| / max |b| over the tensors: how far outside check_params' TOL.
inline double worst_relative_diff(const std::vector<float>& a, const std::vector<float>& b, const TrainSettings& s) {
  double worst = 0;
  for (const TensorDiff& d : tensor_diffs(a, b, s.model)) worst = std::max(worst, d.diff / d.scale);
  return worst;
}

// Per step: |a - b| <= tol x |b|.
inline void check_losses(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("step " << i << ": " << a[i] << " vs " << b[i]);
    CHECK(std::abs(a[i] - b[i]) <= tol * std::abs(b[i]));
  }
}

// A lossless setting's run (LOSSES, PARAMS) equals REF within the layout tests' tolerances
// (losses 1e-5, parameters 1e-4 per tensor), and each of OTHERS (a name and a run's
// parameters: a lossy setting, a reference without the setting's one difference) lies more
// than 10x that tolerance from REF: the comparison could fail.
inline void check_lossless(const std::vector<double>& losses, const std::vector<float>& params, const Reference& ref,
                           const TrainSettings& s,
                           const std::vector<std::pair<std::string, const std::vector<float>*>>& others) {
  check_losses(losses, ref.losses, 1e-5);
  check_params(params, ref.params, 1e-4, s);
  INFO("largest per-tensor relative difference from the reference: lossless " << worst_relative_diff(params, ref.params, s));
  for (const auto& [name, other] : others) {
    INFO(name << ": " << worst_relative_diff(*other, ref.params, s));
    CHECK(worst_relative_diff(*other, ref.params, s) > 10 * 1e-4);
  }
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
