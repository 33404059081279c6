#include "optim/adamw.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

namespace dtb {

double clip_scale(double grad_norm, double clip) {
  if (clip <= 0 || grad_norm <= clip) return 1.0;
  return clip / (grad_norm + 1e-6);
}

namespace {
inline double kcos_pi(double t) { return std::cos(std::numbers::pi * t); }
inline double kpow(double b, int64_t n) { return std::pow(b, double(n)); }
}  // namespace

#include "optim/adamw_bodies.inc"

const OptimMath& optim_math(KernelMode mode) {
  static const OptimMath fast{&learning_rate, &sum_of_squares, &adamw_update};
  return mode == KernelMode::kFast ? fast : repro::optim_math();
}

}  // namespace dtb
