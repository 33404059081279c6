#pragma once
// The single-rank training loop written out on GPT<float>, independent of the trainer:
// forward, backward, the global norm in double, clipping, AdamW over param_layout's
// segments. What the trainer must compute on a world of one (bitwise) and, up to float
// rounding, on every layout.
#include <cmath>
#include <vector>

#include "config.hpp"
#include "cpu/kernels.hpp"
#include "data/dataset.hpp"
#include "model/gpt2.hpp"
#include "optim/adamw.hpp"
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

}  // namespace dtb::test
