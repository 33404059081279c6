// The optimizer of the reproducible kernel mode (optim/adamw.hpp's OptimMath): the same
// code as the fast one (optim/adamw_bodies.inc) with cos and pow from + - * / alone
// (cpu/repro_math.hpp), built with -ffp-contract=off (trainer/CMakeLists.txt). Its sums
// (the squared norm) run in fixed chunks in order, whatever the thread count.
// DTB_REPRO_NS names the namespace, as in cpu/repro_kernels.cpp (tests build it twice).
#ifndef DTB_REPRO_NS
#define DTB_REPRO_NS repro
#endif

#include <algorithm>
#include <cmath>
#include <vector>

#include "cpu/repro_math.hpp"
#include "optim/adamw.hpp"

namespace dtb::DTB_REPRO_NS {
namespace {
inline double kcos_pi(double t) { return repro_math::cos_pi(t); }
inline double kpow(double b, int64_t n) { return repro_math::powi(b, n); }
}  // namespace

#include "optim/adamw_bodies.inc"

const OptimMath& optim_math() {
  static const OptimMath set{&learning_rate, &sum_of_squares, &adamw_update};
  return set;
}

}  // namespace dtb::DTB_REPRO_NS
