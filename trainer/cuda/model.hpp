#pragma once
// GPT-2 on one GPU: the one orchestration (model/stage.hpp, every layer at TP = 1) over the
// CUDA kernel set (cuda/kernel_set.hpp), with GPT<float>'s flat parameter layout
// (param_layout), so parameters, gradients and Adam moments copy 1:1 between the CPU and
// the CUDA backends, and a DP bucket or a checkpoint means the same floats on both.
//
// Precision::kBf16 is llm.c-style mixed precision: fp32 master weights, fp32 gradients and
// fp32 Adam moments, with a bf16 copy of the weights (refreshed by every AdamW step) and
// bf16 activations for the compute; matrix products accumulate in fp32. Precision::kFp32
// keeps everything in fp32 (no TF32): the mode the tests compare with the CPU.
//
// The calls mirror GPT<float> and optim/adamw.hpp, so the Trainer can drive either:
// forward -> zero_grad -> backward -> grad_norm -> adamw_update. Everything runs on the
// context's stream; forward() (the loss) and grad_norm() wait for it, the rest does not.
// Tokens are host arrays. This header needs no CUDA headers.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "model/gpt2.hpp"

namespace dtb::cuda {

class Context;

// Rows move in 128-bit packs (8 bf16): n_embd must be a multiple of this. The config
// check (availability.cpp) refuses other widths before a Model is made.
inline constexpr int kEmbdMultiple = 8;

enum class Precision { kFp32, kBf16 };
const char* precision_name(Precision p);             // "fp32", "bf16"
Precision parse_precision(const std::string& name);  // throws std::invalid_argument

// One AdamW step's settings (optim/adamw.hpp's OptimSettings, learning rate, step count and
// clipping factor, without the trainer's config types).
struct AdamWSettings {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t t;          // 1-based step count (bias correction)
  double grad_scale;  // clip_scale(grad_norm, clip)
};

class Model {
 public:
  // Allocates everything on DEVICE for batches of B x T (T <= n_ctx). Needs
  // n_embd % kEmbdMultiple == 0 besides GPT<float>'s own checks; throws
  // std::invalid_argument otherwise, CudaError when the GPU refuses.
  Model(const GPTConfig& config, int B, int T, Precision precision, int device = 0);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Flat fp32 buffers of num_params() floats, in param_layout() order. Synchronous.
  void set_params(const float* host);
  void get_params(float* host) const;
  void get_grads(float* host) const;
  void set_adam_state(const float* m, const float* v);
  void get_adam_state(float* m, float* v) const;

  // inputs, targets: (B, T) token ids in [0, V) on the host; targets may be null (then the
  // logits are kept: get_logits). Returns the mean loss (NaN without targets). With
  // targets the logits are replaced by their gradient (the fused classifier), ready for
  // backward().
  float forward(const int32_t* inputs, const int32_t* targets);
  void get_logits(float* host) const;  // (B, T, V) after a forward() without targets
  void zero_grad();
  // Accumulates d(mean loss)/d(params) into the gradients; needs a forward() with targets.
  void backward();
  // sqrt of the sum of squares of all gradients (waits for the GPU).
  double grad_norm();
  void adamw_update(const AdamWSettings& s);

  const GPTConfig& config() const;
  int batch() const;
  int seq_len() const;
  Precision precision() const;
  size_t num_params() const;
  double flops_per_token() const;  // 6N + 6LCT, as GPT<float>
  size_t device_bytes() const;     // everything this model allocated on the GPU
  Context& context();
  float* device_params();  // fp32 master weights (num_params())
  float* device_grads();   // fp32 gradients (num_params()): what DP allreduces

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace dtb::cuda
