#pragma once
// GPT-2 in the llm.c style: one flat parameter buffer, one flat gradient buffer, named
// views into both, explicit forward and backward per layer (no autograd).
// Templated on the real type: float is the trainer, double is the reference that the
// finite-difference tests check.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dtb {

struct GPTConfig {
  int vocab_size = 256;  // V
  int n_ctx = 64;        // maximum sequence length (rows of wpe)
  int n_layer = 2;       // L
  int n_head = 4;        // NH
  int n_embd = 64;       // C
};

// The 16 parameter tensors, in buffer order. Per-layer tensors are stored (L, ...).
constexpr int kNumParamTensors = 16;
enum ParamIndex {
  kWte, kWpe, kLn1w, kLn1b, kQkvw, kQkvb, kAttprojw, kAttprojb,
  kLn2w, kLn2b, kFcw, kFcb, kFcprojw, kFcprojb, kLnfw, kLnfb
};
extern const std::array<const char*, kNumParamTensors> kParamNames;

struct ParamTensorInfo {
  const char* name;
  std::vector<size_t> shape;
  size_t offset;  // in elements, into the flat buffer
  size_t size;    // elements
  bool decay;     // AdamW weight decay applies (matrices and embeddings, not biases or LN)
};
std::array<ParamTensorInfo, kNumParamTensors> param_layout(const GPTConfig& c);
size_t num_parameters(const GPTConfig& c);

// Views into a flat buffer laid out by param_layout().
template <typename T>
struct ParamViews {
  T* wte;       // (V, C)
  T* wpe;       // (n_ctx, C)
  T* ln1w;      // (L, C)
  T* ln1b;      // (L, C)
  T* qkvw;      // (L, 3C, C)
  T* qkvb;      // (L, 3C)
  T* attprojw;  // (L, C, C)
  T* attprojb;  // (L, C)
  T* ln2w;      // (L, C)
  T* ln2b;      // (L, C)
  T* fcw;       // (L, 4C, C)
  T* fcb;       // (L, 4C)
  T* fcprojw;   // (L, C, 4C)
  T* fcprojb;   // (L, C)
  T* lnfw;      // (C)
  T* lnfb;      // (C)
};
template <typename T>
ParamViews<T> param_views(const GPTConfig& c, T* base);

// Bytes each part of a model of this shape needs at batch B x T (for the memory report).
struct MemoryBreakdown {
  size_t params, grads, adam_m, adam_v, activations, activation_grads;
  size_t total() const { return params + grads + adam_m + adam_v + activations + activation_grads; }
};
MemoryBreakdown memory_breakdown(const GPTConfig& c, int B, int T, size_t real_size);

// The model's linear layers: `count` of them map `in` to `out` features per token. The LM
// head (tied to wte, no bias) is the last. For FLOP accounting and the BLAS reference timing.
struct LinearShape {
  int in, out, count;
  bool bias;
};
std::vector<LinearShape> linear_shapes(const GPTConfig& c);

// Draws elements [begin, begin + count) of parameter tensor TENSOR (a ParamIndex) exactly
// as GPT::init_weights() draws them into the full buffer, so any slice of the model (a TP
// shard, a pipeline stage's layers) starts from the same numbers as the whole model.
template <typename Real>
void init_param_slice(const GPTConfig& c, uint64_t seed, int tensor, size_t begin, size_t count,
                      Real* dst);

template <typename T>
class GPT {
 public:
  // Allocates parameters, gradients and activations for batches of B sequences of T tokens
  // (T <= n_ctx). Parameters start at zero until init_weights() or a checkpoint fills them.
  GPT(const GPTConfig& config, int batch, int seq_len);

  // GPT-2's initialisation from one seed: weights N(0, 0.02), residual output projections
  // (attprojw, fcprojw) N(0, 0.02/sqrt(2L)), biases 0, LayerNorm weights 1.
  void init_weights(uint64_t seed);

  // inputs, targets: (B, T) token ids in [0, V). Returns the mean cross-entropy loss.
  // targets may be null (no loss, returns NaN; logits only). Both arrays must stay alive
  // until backward() has run.
  T forward(const int32_t* inputs, const int32_t* targets);
  void zero_grad();
  // Accumulates d(mean loss)/d(params) into grads(). Needs a forward() with targets before
  // each backward() (it consumes that forward's softmax).
  void backward();

  const GPTConfig& config() const { return config_; }
  int batch() const { return B_; }
  int seq_len() const { return T_; }
  size_t num_params() const { return params_.size(); }
  T* params() { return params_.data(); }
  T* grads() { return grads_.data(); }
  const T* params() const { return params_.data(); }
  const T* grads() const { return grads_.data(); }
  const T* logits() const;  // (B, T, V) after forward()
  // FLOPs of one training step (forward + backward) per token: 6N + 6LCT (llm.c, PaLM).
  double flops_per_token() const;

 private:
  GPTConfig config_;
  int B_, T_;
  std::vector<T> params_, grads_;
  std::vector<T> acts_, grad_acts_;  // flat activation buffers (see gpt2.cpp for the views)
  const int32_t* inputs_ = nullptr;
  const int32_t* targets_ = nullptr;
};

extern template class GPT<float>;
extern template class GPT<double>;

// Threads used by the kernels (n <= 0: every core). All of them are OpenMP threads: the
// gemms are split across them with OpenBLAS single-threaded inside (see cpu/kernels.hpp).
// Results are bitwise deterministic for a given thread count.
void set_num_threads(int n);
int num_threads();

}  // namespace dtb
