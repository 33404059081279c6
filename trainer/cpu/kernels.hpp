#pragma once
// CPU layer kernels in the llm.c style: each layer is a forward and a backward free
// function, outputs first, then inputs, then sizes. N is the number of rows (B*T).
// Activations are assigned (=); every gradient output of a backward accumulates (+=), so
// the caller zeroes activation-gradient buffers and parameter gradients add up across
// micro-batches. The one exception is crossentropy_backward, the start of the chain,
// which assigns dlogits.
//
// Determinism: loops are split across OpenMP threads over independent outputs only, and
// every sum runs in a fixed order inside one thread, so results are bitwise the same for
// a given thread count (most kernels even for any thread count; the gemms are not).
// These are the fast set; cpu/kernel_set.hpp holds the reproducible one (train.kernels), the
// same bodies with the same bits for any thread count and x86-64 CPU.
// Templated on the real type (named Real: T is the sequence length); float and double are
// instantiated in kernels.cpp.
#include <array>
#include <cstddef>
#include <cstdint>

namespace dtb {

// A slice [lo, hi) of the vocabulary: the rows of wte one tensor-parallel rank holds
// (Megatron's vocabulary-parallel embedding). The default is the whole vocabulary.
struct VocabSlice {
  int lo = 0, hi = INT32_MAX;
  bool holds(int32_t token) const { return token >= lo && token < hi; }
};

// encoded = wte[token] + wpe[position]. With a slice, wte holds rows [lo, hi) only and a
// token outside them contributes zeros (the TP ranks' outputs then sum to the embedding);
// a null wpe adds no position term.
template <typename Real>
void encoder_forward(Real* out,           // (B, T, C)
                     const int32_t* inp,  // (B, T) token ids
                     const Real* wte,     // (V, C), or (hi - lo, C)
                     const Real* wpe,     // (>=T, C) or null
                     int B, int T, int C, VocabSlice vocab = {});
// Accumulates into the rows of wte the slice holds, and into dwpe unless it is null.
template <typename Real>
void encoder_backward(Real* dwte,          // (V, C), or (hi - lo, C)
                      Real* dwpe,          // (>=T, C) or null
                      const Real* dout,    // (B, T, C)
                      const int32_t* inp,  // (B, T)
                      int B, int T, int C, VocabSlice vocab = {});

// LayerNorm over the last dimension, eps 1e-5; saves mean and 1/std for the backward.
template <typename Real>
void layernorm_forward(Real* out,           // (N, C)
                       Real* mean,          // (N)
                       Real* rstd,          // (N)
                       const Real* inp,     // (N, C)
                       const Real* weight,  // (C)
                       const Real* bias,    // (C)
                       int N, int C);
template <typename Real>
void layernorm_backward(Real* dinp,          // (N, C)
                        Real* dweight,       // (C)
                        Real* dbias,         // (C)
                        const Real* dout,    // (N, C)
                        const Real* inp,     // (N, C)
                        const Real* weight,  // (C)
                        const Real* mean,    // (N)
                        const Real* rstd,    // (N)
                        int N, int C);

// out = inp @ weight^T + bias (bias may be null). Runs on BLAS (sgemm / dgemm).
template <typename Real>
void matmul_forward(Real* out,           // (N, OC)
                    const Real* inp,     // (N, C)
                    const Real* weight,  // (OC, C)
                    const Real* bias,    // (OC) or null
                    int N, int C, int OC);
// dinp += dout @ weight, dweight += dout^T @ inp, dbias += column sums of dout.
template <typename Real>
void matmul_backward(Real* dinp,          // (N, C)
                     Real* dweight,       // (OC, C)
                     Real* dbias,         // (OC) or null
                     const Real* dout,    // (N, OC)
                     const Real* inp,     // (N, C)
                     const Real* weight,  // (OC, C)
                     int N, int C, int OC);

// One row-major gemm on contiguous matrices: c(m, n) = op(a)(m, k) @ op(b)(k, n), plus c
// when accumulate. matmul_forward/backward issue exactly matmul_gemms() through gemm(),
// which splits c into one block of rows or columns per OpenMP thread and runs BLAS
// single-threaded on each. blas_gemm() is one plain BLAS call with BLAS's own threads: the
// benchmark's reference.
struct GemmShape {
  bool trans_a, trans_b;
  int m, n, k;
  bool accumulate;
  double flops() const { return 2.0 * m * n * k; }
  bool operator==(const GemmShape&) const = default;
};
std::array<GemmShape, 3> matmul_gemms(int N, int C, int OC, bool has_bias);  // fwd, dinp, dW
template <typename Real>
void gemm(const GemmShape& s, const Real* a, const Real* b, Real* c);
template <typename Real>
void blas_gemm(const GemmShape& s, const Real* a, const Real* b, Real* c);

// Causal multi-head self-attention, head size hs = C/NH, scores scaled by 1/sqrt(hs).
// qkv holds q, k, v side by side per token: [q (C) | k (C) | v (C)], head h at h*hs.
// att keeps the softmax probabilities (zero above the diagonal) for the backward.
template <typename Real>
void attention_forward(Real* out,        // (B, T, C)
                       Real* att,        // (B, NH, T, T)
                       const Real* qkv,  // (B, T, 3C)
                       int B, int T, int C, int NH);
// The same attention for N query rows whose keys and values sit in a cache (generation with
// a KV cache): row r is position pos[r] of sequence seq[r] and attends to that sequence's
// positions 0..pos[r], which must already be in the cache. Row r's output is, operation for
// operation, attention_forward's output at t = pos[r].
template <typename Real>
void attention_forward_cached(Real* out,            // (N, C)
                              const Real* q,        // (N, q_stride): the queries at columns [0, C)
                              int q_stride,
                              const Real* keys,     // (S, n_ctx, C) per sequence
                              const Real* values,   // (S, n_ctx, C)
                              const int32_t* seq,   // (N) in [0, S)
                              const int32_t* pos,   // (N) in [0, n_ctx)
                              int N, int n_ctx, int C, int NH);
template <typename Real>
void attention_backward(Real* dqkv,        // (B, T, 3C)
                        const Real* dout,  // (B, T, C)
                        const Real* qkv,   // (B, T, 3C)
                        const Real* att,   // (B, NH, T, T)
                        int B, int T, int C, int NH);

// GELU, tanh approximation (GPT-2's).
template <typename Real>
void gelu_forward(Real* out,        // (n)
                  const Real* inp,  // (n)
                  size_t n);
template <typename Real>
void gelu_backward(Real* dinp,        // (n)
                   const Real* inp,   // (n)
                   const Real* dout,  // (n)
                   size_t n);

// out = inp1 + inp2.
template <typename Real>
void residual_forward(Real* out,         // (n)
                      const Real* inp1,  // (n)
                      const Real* inp2,  // (n)
                      size_t n);
template <typename Real>
void residual_backward(Real* dinp1,       // (n)
                       Real* dinp2,       // (n)
                       const Real* dout,  // (n)
                       size_t n);

// Fused softmax + cross-entropy over the vocabulary. Returns the mean loss over the N rows
// and keeps the softmax for the backward.
template <typename Real>
Real crossentropy_forward(Real* losses,            // (N)
                          Real* probs,             // (N, V)
                          const Real* logits,      // (N, V)
                          const int32_t* targets,  // (N)
                          int N, int V);
// dlogits = (probs - onehot(target)) / N, the gradient of the mean loss. Assigns; dlogits
// may be probs itself (in place). With a slice, probs holds the columns [lo, hi) of the
// softmax and only targets inside them subtract.
template <typename Real>
void crossentropy_backward(Real* dlogits,           // (N, V), or (N, hi - lo)
                           const Real* probs,       // (N, V), or (N, hi - lo)
                           const int32_t* targets,  // (N)
                           int N, int V, VocabSlice vocab = {});

// Vocabulary-parallel cross-entropy (Megatron's parallel cross-entropy) in three steps, so
// the ranks exchange three numbers per row instead of their logits:
// 1. each rank's partial statistics of its columns [lo, hi) of the logits;
template <typename Real>
void crossentropy_partial(Real* stats,             // (N, 3): max, sum of exp(l - max), target logit or 0
                          const Real* logits,      // (N, hi - lo)
                          const int32_t* targets,  // (N)
                          int N, VocabSlice vocab);
// 2. the statistics of all P ranks (gathered, rank-major) combined into each row's
//    log-sum-exp and loss; returns the mean loss (the same on every rank);
template <typename Real>
Real crossentropy_combine(Real* losses,       // (N)
                          Real* lse,          // (N)
                          const Real* stats,  // (P, N, 3)
                          int P, int N);
// 3. each rank's columns of the softmax, probs = exp(logits - lse) (probs may be logits).
template <typename Real>
void softmax_from_lse(Real* probs,         // (N, V_local)
                      const Real* logits,  // (N, V_local)
                      const Real* lse,     // (N)
                      int N, int V_local);

}  // namespace dtb
