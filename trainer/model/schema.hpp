#pragma once
// The GPT-2 model's shape and parameter schema: its config, the parameter tensors in
// checkpoint order (param_layout), their initialisation, and the counts every part of
// dtbench uses (parameters, FLOPs per token). The model's computation is model/stage.hpp.
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
  // true (GPT-2): wte is also the LM head. false (DT-FM): the last stage has its own LM
  // head, lm_head (V, C) without bias, and no gradient sync ties it to wte.
  bool tie_embeddings = true;
  bool operator==(const GPTConfig&) const = default;  // the same model shape
};

// The parameter tensors, in buffer order. Per-layer tensors are stored (L, ...). lm_head
// exists only without tied embeddings, so a tied model's layout (and its checkpoints) is
// GPT-2's 16 tensors.
constexpr int kNumParamTensors = 17;  // the most a layout holds
enum ParamIndex {
  kWte, kWpe, kLn1w, kLn1b, kQkvw, kQkvb, kAttprojw, kAttprojb,
  kLn2w, kLn2b, kFcw, kFcb, kFcprojw, kFcprojb, kLnfw, kLnfb, kLmHead
};
extern const char* const kParamNames[kNumParamTensors];

struct ParamTensorInfo {
  const char* name;
  std::vector<size_t> shape;
  size_t offset;  // in elements, into the flat buffer
  size_t size;    // elements
  bool decay;     // AdamW weight decay applies (matrices and embeddings, not biases or LN)
};
// The model's tensors in checkpoint order: layout[i] is tensor i (a ParamIndex).
std::vector<ParamTensorInfo> param_layout(const GPTConfig& c);
size_t num_parameters(const GPTConfig& c);
// Where element INDEX of the flat buffer sits, for messages: "tensor 'qkvw' (layer 1,
// element 37 of the layer's slice)" or "tensor 'wte' (element 5)".
std::string param_element_name(const GPTConfig& c, size_t index);

// A contiguous run of parameters that share a weight-decay rule (one parameter tensor, or
// several neighbours with the same rule).
struct ParamSegment {
  size_t offset, size;
  bool decay;
};

// Views into a flat buffer laid out by param_layout() (the CUDA model's weights).
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

// The model's linear layers: `count` of them map `in` to `out` features per token. The LM
// head (no bias; wte when tied) is the last. For the BLAS reference timing.
struct LinearShape {
  int in, out, count;
  bool bias;
};
std::vector<LinearShape> linear_shapes(const GPTConfig& c);

// FLOPs of one training step (forward + backward) per token at sequence length T:
// 6N + 6LCT (llm.c, PaLM): 6 per parameter (2 forward, 4 backward) and the attention's
// scores and weighted sums. The one formula the trainers' MFU, the bench and the simulator
// use. PARAMS_SCALE multiplies N (the simulator's model.params: another size, this shape).
double flops_per_token(const GPTConfig& c, int T, double params_scale = 1.0);

// Draws elements [begin, begin + count) of parameter tensor TENSOR (a ParamIndex) exactly
// as a whole model's init_weights() draws them, so any slice of the model (a TP shard, a
// pipeline stage's layers) starts from the same numbers as the whole model.
// GPT-2's initialisation from one seed: weights N(0, 0.02), residual output projections
// (attprojw, fcprojw) N(0, 0.02/sqrt(2L)), biases 0, LayerNorm weights 1.
template <typename Real>
void init_param_slice(const GPTConfig& c, uint64_t seed, int tensor, size_t begin, size_t count,
                      Real* dst);

// Threads used by the kernels (n <= 0: every core). All of them are OpenMP threads: the
// gemms are split across them with OpenBLAS single-threaded inside (see cpu/kernels.hpp).
// Results are bitwise deterministic for a given thread count.
void set_num_threads(int n);
int num_threads();

}  // namespace dtb
