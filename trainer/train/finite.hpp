#pragma once
// Finding non-finite numbers (NaN, +-inf) before anything trains on them or saves them.
#include <cstddef>
#include <limits>
#include <span>
#include <string>

#include "model/schema.hpp"

namespace dtb {

constexpr size_t kAllFinite = std::numeric_limits<size_t>::max();

// The index of the first element of DATA that is NaN or infinite; kAllFinite if none.
size_t first_nonfinite(std::span<const float> data);

// Throws UsageError naming FILE, DATASET and the first non-finite element of DATA (a flat
// buffer in param_layout(model) order: the tensor and layer it belongs to).
void require_finite_params(std::span<const float> data, const GPTConfig& model, const std::string& file,
                           const std::string& dataset);

}  // namespace dtb
