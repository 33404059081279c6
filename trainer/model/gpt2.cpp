// GPT-2 on one rank: the stage that holds the whole model, in param_layout() order.
#include "model/gpt2.hpp"

namespace dtb {

MemoryBreakdown memory_breakdown(const GPTConfig& c, int B, int T, size_t real_size) {
  return rank_memory(c, whole_model(c), B, T, 1, real_size);
}

template <typename Real>
GPT<Real>::GPT(const GPTConfig& config, int B, int T, KernelSet<Real>& kernels)
    : config_(config), B_(B), T_(T), stage_(config, whole_model(config), B, T, 1, StageLayout::kTensorMajor, kernels) {}

template <typename Real>
const Real* GPT<Real>::logits() const {
  return stage_.logits(0);
}

template class GPT<float>;
template class GPT<double>;

}  // namespace dtb
