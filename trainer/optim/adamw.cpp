#include "optim/adamw.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

namespace dtb {

double learning_rate(const OptimSettings& o, int step, int steps) {
  if (step < o.warmup_steps) return o.lr * (step + 1) / o.warmup_steps;
  const double min_lr = o.lr * o.min_lr_ratio;
  const int decay_steps = steps - o.warmup_steps - 1;
  if (decay_steps <= 0) return o.lr;
  const double progress = std::min(1.0, double(step - o.warmup_steps) / decay_steps);
  return min_lr + 0.5 * (o.lr - min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
}

double sum_of_squares(const float* g, size_t n) {
  constexpr size_t kChunk = 1 << 14;  // fixed, so the summation order never changes
  const size_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(chunks);
#pragma omp parallel for schedule(static)
  for (size_t c = 0; c < chunks; ++c) {
    const size_t end = std::min(n, (c + 1) * kChunk);
    double s = 0;
    for (size_t i = c * kChunk; i < end; ++i) s += double(g[i]) * g[i];
    partial[c] = s;
  }
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

double clip_scale(double grad_norm, double clip) {
  if (clip <= 0 || grad_norm <= clip) return 1.0;
  return clip / (grad_norm + 1e-6);
}

void adamw_update(float* params, const float* grads, float* m, float* v,
                  std::span<const ParamSegment> segments, const OptimSettings& o, double lr,
                  int64_t t, double grad_scale) {
  const float b1 = float(o.beta1), b2 = float(o.beta2), eps = float(o.eps);
  const float scale = float(grad_scale);
  const float m_corr = float(1.0 / (1.0 - std::pow(o.beta1, double(t))));
  const float v_corr = float(1.0 / (1.0 - std::pow(o.beta2, double(t))));
  for (const ParamSegment& seg : segments) {
    const float step = float(lr);
    const float decay = seg.decay ? float(lr * o.weight_decay) : 0.0f;
    float* p = params + seg.offset;
    const float* g = grads + seg.offset;
    float* ms = m + seg.offset;
    float* vs = v + seg.offset;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < seg.size; ++i) {
      const float gi = g[i] * scale;
      ms[i] = b1 * ms[i] + (1.0f - b1) * gi;
      vs[i] = b2 * vs[i] + (1.0f - b2) * gi * gi;
      const float update = (ms[i] * m_corr) / (std::sqrt(vs[i] * v_corr) + eps);
      p[i] -= step * update + decay * p[i];
    }
  }
}

}  // namespace dtb
