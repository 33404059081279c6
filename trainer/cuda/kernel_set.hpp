#pragma once
// The CUDA kernels (cuda/kernels.hpp) as the stage's kernel set (model/kernel_set.hpp): the
// one orchestration (model/stage.hpp) drives them on device memory, as it drives the CPU
// kernels on host memory. Everything is enqueued on the context's stream; only the loss
// (crossentropy_forward) and upload wait for it.
//
// Precision. fp32: every buffer is float. bf16 (llm.c's mixed precision): the kernels read
// a bf16 copy of the parameters (weights_changed() refreshes it, AdamW writes it), and keep
// the activations and their gradients as bf16 in the float-sized slots the stage carved
// (kActivations: half of each slot is unused, twice llm.c's activation memory); parameters,
// gradients, LayerNorm statistics and losses stay float.
//
// What differs from the CPU set, for the same stage: rows of the logits are padded to a
// multiple of 64 (vocab_stride), buffers start on 256-byte boundaries (align), the loss's
// backward recomputes the softmax from the logits (llm.c's fused classifier, with the loss
// scale as its dloss) instead of keeping it, and tensor parallelism is refused (TP = 1).
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "cuda/context.hpp"
#include "cuda/kernels.hpp"
#include "model/kernel_set.hpp"

namespace dtb::cuda {

class KernelSet final : public dtb::KernelSet<float> {
 public:
  KernelSet(Context& ctx, bool bf16);
  ~KernelSet() override;
  KernelSet(const KernelSet&) = delete;
  KernelSet& operator=(const KernelSet&) = delete;

  bool bf16_mode() const { return bf16_; }
  // bf16 mode: the compute copy of the parameters given to weights_changed (null in fp32).
  bf16* weight_copy() { return copy_.get(); }
  size_t device_bytes() const;  // everything this set allocated on the device

  float* allocate(size_t n, Memory kind) override;
  void release(float* p) override;
  void zero(float* p, size_t n) override;
  void upload(float* dst, const float* host, size_t n) override;
  void weights_changed(const float* params, size_t n) override;
  size_t align() const override { return kAlignFloats; }
  int vocab_stride(int v_local) const override { return (v_local + kVocabPad - 1) / kVocabPad * kVocabPad; }
  bool tensor_parallel() const override { return false; }

  void encoder_forward(float* out, const int32_t* inp, const float* wte, const float* wpe, int B, int T, int C,
                       VocabSlice vocab) override;
  void encoder_backward(float* dwte, float* dwpe, const float* dout, const int32_t* inp, int B, int T, int C,
                        VocabSlice vocab) override;
  void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                         const float* bias, int N, int C) override;
  void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                          const float* weight, const float* mean, const float* rstd, int N, int C) override;
  void matmul_forward(float* out, const float* inp, const float* weight, const float* bias, int N, int C, int OC,
                      int ldo) override;
  void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                       const float* weight, int N, int C, int OC, int ld_dout) override;
  void add_bias(float* out, const float* bias, int N, int C) override;
  void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH) override;
  void attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T, int C,
                          int NH) override;
  void gelu_forward(float* out, const float* inp, size_t n) override;
  void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) override;
  void residual_forward(float* out, const float* inp1, const float* inp2, size_t n) override;
  float crossentropy_forward(float* losses, float* probs, const float* logits, const int32_t* targets, int N, int V,
                             int ldv) override;
  void crossentropy_backward(float* dlogits, const float* probs, const float* logits, const int32_t* targets, int N,
                             int V, int ldv, VocabSlice vocab, float scale) override;
  void crossentropy_partial(float* stats, const float* logits, const int32_t* targets, int N,
                            VocabSlice vocab) override;
  float crossentropy_combine(float* losses, float* lse, const float* stats, int P, int N) override;
  void softmax_from_lse(float* probs, const float* logits, const float* lse, int N, int V_local) override;

 private:
  static constexpr size_t kAlignFloats = 64;  // 256 bytes: every row pointer 16-byte aligned
  static constexpr int kVocabPad = 64;        // as llm.c pads 50257 -> 50304

  template <typename floatX>
  const floatX* weight(const float* p) const;  // the compute type's copy of a parameter
  int32_t* tokens_on_device(const int32_t* host, size_t n, int region);
  float* column_scratch(int N, int C);
  template <typename floatX>
  floatX* attention_scratch(int B, int T, int C, int NH);
  // Calls F with a value of the activation type (float or bf16).
  template <typename F>
  void dispatch(F&& f) const;

  Context& ctx_;
  bool bf16_;
  std::unordered_map<const float*, size_t> allocated_;  // pointer -> bytes
  const float* params_ = nullptr;  // weights_changed's buffer, and its bf16 copy
  size_t params_n_ = 0;
  DeviceBuffer<bf16> copy_;
  DeviceBuffer<float> col_scratch_, losses_scratch_;
  DeviceBuffer<double> attn_scratch_;      // floatX elements (8-byte aligned base)
  DeviceBuffer<int32_t> tokens_[3];        // inputs, targets, encoder buckets
  std::vector<float> host_losses_;
};

}  // namespace dtb::cuda
