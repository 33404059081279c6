#include "train/finite.hpp"

#include <cmath>

#include "usage_error.hpp"

namespace dtb {

size_t first_nonfinite(std::span<const float> data) {
  for (size_t i = 0; i < data.size(); ++i)
    if (!std::isfinite(data[i])) return i;
  return kAllFinite;
}

void require_finite_params(std::span<const float> data, const GPTConfig& model, const std::string& file,
                           const std::string& dataset) {
  const size_t i = first_nonfinite(data);
  if (i == kAllFinite) return;
  throw UsageError(file + ": dataset '" + dataset + "' holds a non-finite value (" + std::to_string(data[i]) +
                   " in " + param_element_name(model, i) + "); a run that diverged cannot be resumed from it");
}

}  // namespace dtb
