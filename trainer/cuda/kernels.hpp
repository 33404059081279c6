#pragma once
// CUDA layer kernels: the layers of cpu/kernels.hpp on a GPU, in the style of llm.c's CUDA
// trainer. Each layer is a forward and a backward launcher: outputs first, then inputs,
// then sizes; everything is enqueued on the context's (or the given) stream, nothing
// synchronizes. Shapes are those of cpu/kernels.hpp, so each function is tested against
// its CPU twin (tests/cuda/test_cuda_kernels.cpp).
//
// Types. floatX is the activation type (llm.c's name): float (fp32 mode, for testing) or bf16 (mixed
// precision). Every kernel computes in float; matrix products accumulate in float on the
// tensor cores (cuBLASLt, CUBLAS_COMPUTE_32F; fp32 mode never uses TF32). Parameter
// gradients, LayerNorm statistics and losses are float in both modes.
//
// Accumulation, one difference from cpu/. Parameter gradients accumulate (+=), as there.
// Activation gradients on a single path are assigned (=), as in llm.c's CUDA trainer, so
// the scratch they live in needs no zeroing per layer: matmul_backward's dinp,
// gelu_backward, attention_backward and the classifier. layernorm_backward adds (+=) into
// dinp, because that is where the residual stream's two branches meet. (cpu/ adds
// everywhere; the model zeroes its buffers instead.)
//
// Layout requirements, checked by every launcher (std::invalid_argument): row lengths
// (C, 3C, 4C, the padded vocabulary) are multiples of 8 elements and row pointers are
// 16-byte aligned, so rows move in 128-bit packs. cudaMalloc'd buffers and the model's
// slices satisfy this whenever C % 8 == 0.
#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cuda/context.hpp"

namespace dtb::cuda {

using bf16 = __nv_bfloat16;

// ------------------------------------------------------------------------------ encoder

// out = wte[token] + wpe[position].
template <typename floatX>
void encoder_forward(floatX* out,         // (B, T, C)
                     const int32_t* inp,  // (B, T) token ids, on the device
                     const floatX* wte,   // (V, C)
                     const floatX* wpe,   // (>=T, C)
                     int B, int T, int C, cudaStream_t stream);

// The positions of each distinct token, built on the host from the host copy of the
// tokens: the backward of the embedding then sums each token's rows in a fixed order
// (deterministic, no atomics; llm.c buckets on the CPU the same way).
// data = [starts (unique + 1) | tokens (unique) | positions (B*T)]: token tokens[u] occurs
// at positions[starts[u] .. starts[u+1]), in increasing order.
struct EncoderBuckets {
  std::vector<int32_t> data;
  int unique = 0, positions = 0;
};
EncoderBuckets encoder_buckets(const int32_t* inp_host, int BT);

// dwte += the rows of dout summed per token, dwpe += dout summed over the batch.
template <typename floatX>
void encoder_backward(float* dwte,             // (V, C)
                      float* dwpe,             // (>=T, C)
                      const floatX* dout,      // (B, T, C)
                      const int32_t* buckets,  // EncoderBuckets::data, on the device
                      int unique, int B, int T, int C, cudaStream_t stream);

// ---------------------------------------------------------------------------- layernorm

// LayerNorm over the last dimension, eps 1e-5; saves mean and 1/std.
template <typename floatX>
void layernorm_forward(floatX* out,           // (N, C)
                       float* mean,           // (N)
                       float* rstd,           // (N)
                       const floatX* inp,     // (N, C)
                       const floatX* weight,  // (C)
                       const floatX* bias,    // (C)
                       int N, int C, cudaStream_t stream);

// residual = inp1 + inp2, then out = LayerNorm(residual): residual_forward and
// layernorm_forward in one pass (llm.c's fused_residual_forward).
template <typename floatX>
void residual_layernorm_forward(floatX* residual,      // (N, C)
                                floatX* out,           // (N, C)
                                float* mean,           // (N)
                                float* rstd,           // (N)
                                const floatX* inp1,    // (N, C)
                                const floatX* inp2,    // (N, C)
                                const floatX* weight,  // (C)
                                const floatX* bias,    // (C)
                                int N, int C, cudaStream_t stream);

// Floats of scratch that layernorm_backward and matmul_backward's bias gradient need for N
// rows of C columns (per-chunk column sums, reduced in a fixed order: deterministic).
size_t column_scratch_floats(int N, int C);

// dinp += ..., dweight += ..., dbias += ... (see cpu/kernels.hpp).
template <typename floatX>
void layernorm_backward(floatX* dinp,          // (N, C)
                        float* dweight,        // (C)
                        float* dbias,          // (C)
                        const floatX* dout,    // (N, C)
                        const floatX* inp,     // (N, C)
                        const floatX* weight,  // (C)
                        const float* mean,     // (N)
                        const float* rstd,     // (N)
                        int N, int C,
                        float* scratch,  // column_scratch_floats(N, C)
                        cudaStream_t stream);

// ------------------------------------------------------------------------------- matmul

// out = inp @ weight^T + bias (bias may be null; the add is fused into the gemm's
// epilogue). LDO: the row stride of out (0: OC); the LM head pads its rows to 8 elements.
template <typename floatX>
void matmul_forward(Context& ctx,
                    floatX* out,           // (N, OC), rows LDO apart
                    const floatX* inp,     // (N, C)
                    const floatX* weight,  // (OC, C)
                    const floatX* bias,    // (OC) or null
                    int N, int C, int OC, int ldo = 0);

// dinp = dout @ weight (assigned; skipped when dinp is null), dweight += dout^T @ inp,
// dbias += column sums of dout (skipped when null).
template <typename floatX>
void matmul_backward(Context& ctx,
                     floatX* dinp,          // (N, C) or null
                     float* dweight,        // (OC, C)
                     float* dbias,          // (OC) or null
                     const floatX* dout,    // (N, OC), rows LD_DOUT apart (0: OC)
                     const floatX* inp,     // (N, C)
                     const floatX* weight,  // (OC, C)
                     int N, int C, int OC,
                     float* scratch,  // column_scratch_floats(N, OC), when dbias
                     int ld_dout = 0);

// ---------------------------------------------------------------------------- attention

// Elements of floatX scratch attention_forward and attention_backward need.
size_t attention_scratch_elems(int B, int T, int C, int NH);

// Causal multi-head attention as in cpu/kernels.hpp: q @ k^T and att @ v are batched
// cuBLAS gemms over (B, NH); the softmax is one warp per row with the causal mask and the
// 1/sqrt(hs) scale fused, in place. att keeps the probabilities, zero above the diagonal.
template <typename floatX>
void attention_forward(Context& ctx,
                       floatX* out,        // (B, T, C)
                       floatX* att,        // (B, NH, T, T)
                       const floatX* qkv,  // (B, T, 3C)
                       int B, int T, int C, int NH,
                       floatX* scratch);  // attention_scratch_elems(B, T, C, NH)
// dqkv = ... (assigned).
template <typename floatX>
void attention_backward(Context& ctx,
                        floatX* dqkv,        // (B, T, 3C)
                        const floatX* dout,  // (B, T, C)
                        const floatX* qkv,   // (B, T, 3C)
                        const floatX* att,   // (B, NH, T, T)
                        int B, int T, int C, int NH,
                        floatX* scratch);  // attention_scratch_elems(B, T, C, NH)

// ------------------------------------------------------------------ gelu, residual, copy

// GELU, tanh approximation. N must be a multiple of 8.
template <typename floatX>
void gelu_forward(floatX* out, const floatX* inp, size_t n, cudaStream_t stream);
// dinp = gelu'(inp) * dout (assigned; dinp may be dout itself).
template <typename floatX>
void gelu_backward(floatX* dinp, const floatX* inp, const floatX* dout, size_t n, cudaStream_t stream);

// out = inp1 + inp2.
template <typename floatX>
void residual_forward(floatX* out, const floatX* inp1, const floatX* inp2, size_t n, cudaStream_t stream);
// dinp1 += dout, dinp2 += dout.
template <typename floatX>
void residual_backward(floatX* dinp1, floatX* dinp2, const floatX* dout, size_t n, cudaStream_t stream);

// out = in, converted (float <-> bf16, or a plain copy between equal types).
template <typename To, typename From>
void convert(To* out, const From* in, size_t n, cudaStream_t stream);

// ---------------------------------------------------------------------- cross-entropy

// losses = logsumexp(logits) - logits[target], per row; logits stay. Rows are LDV apart.
template <typename floatX>
void crossentropy_forward(float* losses,           // (N)
                          const floatX* logits,    // (N, V), rows LDV apart
                          const int32_t* targets,  // (N)
                          int N, int V, int ldv, cudaStream_t stream);

// The LM head's softmax, the cross-entropy and its backward in one kernel, one block per
// row (llm.c's fused classifier): losses as crossentropy_forward, then, in place of the
// logits, dlogits = (softmax - onehot(target)) * dloss (dloss = 1/N for the mean loss).
// The probabilities are never stored.
template <typename floatX>
void fused_classifier(floatX* logits,          // (N, V), rows LDV apart: in logits, out dlogits
                      float* losses,           // (N)
                      const int32_t* targets,  // (N)
                      int N, int V, int ldv, float dloss, cudaStream_t stream);

// ------------------------------------------------------------------------------ optimizer

// The float constants of one AdamW step, computed on the host exactly as optim/adamw.cpp
// computes them, so both backends round the same way.
struct AdamWStep {
  float lr, beta1, beta2, eps;
  float decay;       // lr * weight_decay for decayed tensors, else 0
  float m_corr;      // 1 / (1 - beta1^t)
  float v_corr;      // 1 / (1 - beta2^t)
  float grad_scale;  // clipping factor
};

// One AdamW update of N parameters (fp32 master weights and moments). When params_copy is
// not null it receives the updated weights in the compute type (bf16 mode).
void adamw_update(float* params, const float* grads, float* m, float* v, bf16* params_copy, size_t n,
                  const AdamWStep& step, cudaStream_t stream);

// Partial sums that sum_of_squares needs on the device.
constexpr int kNormBlocks = 1024;
// *out = sum of g[i]^2, in a fixed order (the same on any GPU): float per thread and block,
// the block sums added in double. PARTIALS holds kNormBlocks floats.
void sum_of_squares(double* out, const float* g, size_t n, float* partials, cudaStream_t stream);

}  // namespace dtb::cuda
