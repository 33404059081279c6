#include "cpu/kernel_set.hpp"

namespace dtb {

const char* kernel_mode_name(KernelMode m) { return m == KernelMode::kFast ? "fast" : "reproducible"; }

template <typename Real>
const KernelSet<Real>& kernel_set(KernelMode mode) {
  static const KernelSet<Real> fast = DTB_KERNEL_SET(Real, KernelMode::kFast);
  return mode == KernelMode::kFast ? fast : repro::kernels<Real>();
}
template const KernelSet<float>& kernel_set<float>(KernelMode);
template const KernelSet<double>& kernel_set<double>(KernelMode);

}  // namespace dtb
