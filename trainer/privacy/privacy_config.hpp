#pragma once
// The privacy.* keys (issue 16): DP-SGD (Abadi et al. 2016, as Opacus runs it) and secure
// aggregation of the DP gradient sum (Bonawitz et al. 2017). Both off by default: a run
// without them is bitwise what it was.
#include <string>
#include <vector>

#include "config.hpp"

namespace dtb::privacy {

std::vector<KeySpec> key_specs();  // appended to train_schema()

struct PrivacySettings {
  bool dp_sgd = false;
  double clip_norm = 1;          // C: every sample's gradient clipped to this L2 norm
  double noise_multiplier = 1;   // sigma: the summed gradient gets N(0, sigma^2 C^2) per element
  double delta = 1e-5;           // the accountant's delta
  bool secure_agg = false;
  int scale_bits = 24;           // fixed point: a value x travels as round(x 2^scale_bits) mod 2^32
  bool any() const { return dp_sgd || secure_agg; }
};

// Read and checked against the rest of the config (UsageError naming the key).
PrivacySettings privacy_settings(const Config& c);

}  // namespace dtb::privacy
