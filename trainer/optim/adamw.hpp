#pragma once
// AdamW with decoupled weight decay (Loshchilov & Hutter), global grad-norm clipping and a
// warm-up + cosine learning-rate schedule, over flat buffers. Works on any contiguous slice
// of the parameter buffer, so a ZeRO shard is just a shorter span.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>

#include "cpu/kernel_set.hpp"  // KernelMode
#include "model/schema.hpp"  // ParamSegment
#include "train/train_config.hpp"

namespace dtb {

// Learning rate for optimizer step STEP (0-based) of STEPS: linear warm-up to the peak over
// warmup_steps, then cosine decay to min_lr_ratio * peak at the last step.
double learning_rate(const OptimSettings& o, int step, int steps);

// Sum of squares of G in double, in fixed-size chunks summed in order: the result does not
// depend on the thread count.
double sum_of_squares(const float* g, size_t n);

// Factor that scales gradients down to a global norm of at most clip (1 when clip is 0).
double clip_scale(double grad_norm, double clip);

// AdamW's arithmetic per element, written once for adamw_update (optim/adamw_bodies.inc) and
// the strategies that communicate or freeze a moment (parallel/compressed_adam.cpp). Only
// + - * / and sqrt (IEEE-exact), so both kernel modes can use them; the expressions keep
// adamw_update's order of operations, so its results are bitwise what they were.
inline float adam_first_moment(float b1, float m, float g) { return b1 * m + (1.0f - b1) * g; }
inline float adam_second_moment(float b2, float v, float g) { return b2 * v + (1.0f - b2) * g * g; }
// What one parameter's step needs besides its moments: the learning rate, its decay factor
// (lr x weight_decay, 0 where the tensor is not decayed) and the bias corrections.
struct AdamStep {
  float lr, decay, m_corr, v_corr, eps;
};
inline float adamw_step(float w, float m, float v, const AdamStep& a) {
  const float update = (m * a.m_corr) / (std::sqrt(v * a.v_corr) + a.eps);
  return w - (a.lr * update + a.decay * w);
}

// One AdamW update of every segment. T is the 1-based step count for bias correction;
// GRAD_SCALE multiplies each gradient first (clipping).
void adamw_update(float* params, const float* grads, float* m, float* v,
                  std::span<const ParamSegment> segments, const OptimSettings& o, double lr,
                  int64_t t, double grad_scale);

// The optimizer's arithmetic of one kernel mode (train.kernels, cpu/kernel_set.hpp): fast
// is the functions above; reproducible (optim/adamw_repro.cpp) the same code with cos and
// pow of its own (cpu/repro_math.hpp), built with -ffp-contract=off.
struct OptimMath {
  decltype(&dtb::learning_rate) learning_rate;
  decltype(&dtb::sum_of_squares) sum_of_squares;
  decltype(&dtb::adamw_update) adamw_update;
};
const OptimMath& optim_math(KernelMode mode);
namespace repro {
const OptimMath& optim_math();  // optim/adamw_repro.cpp, in namespace dtb::DTB_REPRO_NS
}  // namespace repro

}  // namespace dtb
