#pragma once
// GPT-2 on one rank, in the llm.c style: one flat parameter buffer in param_layout() order
// (the checkpoint schema), one flat gradient buffer, explicit forward and backward (no
// autograd). It owns the stage that holds every layer at TP = 1 (model/stage.hpp), the
// model's one orchestration, so it computes bitwise what any pipeline/TP layout computes
// at TP = 1, and adds no second forward or backward.
// Templated on the real type: float is the trainer, double is the reference that the
// finite-difference tests check.
#include <cstddef>
#include <cstdint>

#include "model/schema.hpp"
#include "model/stage.hpp"

namespace dtb {

// Bytes each part of the whole model needs at batch B x T on one rank (rank_memory of
// whole_model(c)).
MemoryBreakdown memory_breakdown(const GPTConfig& c, int B, int T, size_t real_size);

template <typename T>
class GPT {
 public:
  // Allocates parameters, gradients and activations for batches of B sequences of T tokens
  // (T <= n_ctx); throws std::invalid_argument on a shape it cannot run. Parameters start
  // at zero until init_weights() or a checkpoint fills them. KERNELS: the kernel set
  // (train.kernels, cpu/kernel_set.hpp).
  GPT(const GPTConfig& config, int batch, int seq_len, KernelSet<T>& kernels = cpu_kernel_set<T>());

  // GPT-2's initialisation from one seed (init_param_slice).
  void init_weights(uint64_t seed) { stage_.init_weights(seed); }

  // inputs, targets: (B, T) token ids in [0, V) (std::out_of_range otherwise). Returns the
  // mean cross-entropy loss. targets may be null (no loss, returns NaN; logits only). Both
  // arrays must stay alive until backward() has run.
  T forward(const int32_t* inputs, const int32_t* targets) {
    return stage_.forward(0, inputs, targets, no_tensor_parallelism());
  }
  void zero_grad() { stage_.zero_grad(); }
  // Accumulates d(mean loss)/d(params) into grads(). Needs a forward() with targets before
  // each backward() (it consumes that forward's softmax); std::logic_error otherwise.
  void backward() { stage_.backward(0, T(1), no_tensor_parallelism()); }

  const GPTConfig& config() const { return config_; }
  int batch() const { return B_; }
  int seq_len() const { return T_; }
  size_t num_params() const { return stage_.num_params(); }
  T* params() { return stage_.params(); }
  T* grads() { return stage_.grads(); }
  const T* params() const { return stage_.params(); }
  const T* grads() const { return stage_.grads(); }
  const T* logits() const;  // (B, T, V) after forward()
  // FLOPs of one training step (forward + backward) per token: 6N + 6LCT (flops_per_token).
  double flops_per_token() const { return dtb::flops_per_token(config_, T_); }

 private:
  GPTConfig config_;
  int B_, T_;
  TransformerStage<T> stage_;  // the whole model, param_layout() order
};

extern template class GPT<float>;
extern template class GPT<double>;

}  // namespace dtb
