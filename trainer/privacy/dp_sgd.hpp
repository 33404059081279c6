#pragma once
// DP-SGD's arithmetic (Abadi et al. 2016; Opacus' DPOptimizer): the per-sample clip factor
// and the Gaussian noise added once per step to the summed gradient. How the loop gets a
// sample's gradient from the model's own kernels is in parallel_trainer_privacy.cpp.
#include <cstdint>
#include <span>
#include <vector>

#include "model/stage.hpp"  // ShardRun

namespace dtb::privacy {

// min(1, C / (norm + 1e-6)), Opacus' per_sample_clip_factor: a sample's gradient times it
// has norm <= C. With C far above every norm it is exactly 1 (DP-SGD is then plain SGD).
double clip_factor(double norm, double clip_norm);

// A standard normal deviate, the same for (SEED, STEP, INDEX) on every machine and rank:
// Box-Muller over two counter-based SplitMix64 outputs (data/splitmix64.hpp).
double gaussian_at(uint64_t seed, int64_t step, uint64_t index);

// Adds STDDEV x gaussian_at(seed, step, global index) to every element of GRADS that RUNS
// map (replicated TP tensors get the same noise on every replica, any layout the same noise
// per parameter).
void add_gaussian_noise(std::span<float> grads, const std::vector<ShardRun>& runs, uint64_t seed, int64_t step,
                        double stddev);

}  // namespace dtb::privacy
