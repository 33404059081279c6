#pragma once
// A device that holds the whole model and its optimizer on one rank: one GPU (cuda::Model,
// device.backend = cuda, in -DDTB_CUDA=ON builds). The trainer drives it through its stage
// seam (parallel/stage_compute.hpp, BackendStage) with the same loop as every CPU layout:
// data, validation, step lines, results and checkpoints are not repeated here. It holds
// the parameters and the AdamW moments in param_layout() order, so a checkpoint is the same
// file whichever device wrote it, and resumes on either.
#include <cstdint>
#include <memory>
#include <string>

#include "model/gpt2.hpp"
#include "train/train_config.hpp"

namespace dtb {

class Backend {
 public:
  virtual ~Backend() = default;

  // For the run's first log line, e.g. "cpu, 2 threads" or "cuda fp32, NVIDIA H100 (sm_90)".
  virtual std::string describe() const = 0;
  // Mean cross-entropy over one (B, T) batch of host token ids.
  virtual float forward(const int32_t* inputs, const int32_t* targets) = 0;
  // Gradients of the last forward()'s loss, zeroed first; returns their global L2 norm.
  virtual double backward() = 0;
  // One AdamW step of every parameter (T: 1-based step count; GRAD_SCALE: the clipping
  // factor). Returns when the step is done, so the step time covers all of it.
  virtual void update(double lr, int64_t t, double grad_scale) = 0;
  // Parameters, AdamW m and v: num_parameters(model) floats each, param_layout() order.
  virtual void get_state(float* params, float* m, float* v) const = 0;
  virtual void set_state(const float* params, const float* m, const float* v) = 0;
};

// The GPU backend (cuda/backend.cpp, CUDA builds only), with GPT-2's initial weights from
// S.seed (GPT::init_weights, drawn on the host) and zero moments. train_settings() has
// already refused a backend this build or machine cannot run.
std::unique_ptr<Backend> make_cuda_backend(const TrainSettings& s);

}  // namespace dtb
