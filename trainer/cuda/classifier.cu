// The LM head's softmax and cross-entropy, one block per row of V logits: an online max and
// sum of exponentials in one read (128-bit packs), the loss from the log-sum-exp, and, fused,
// the gradient written over the logits in a second read (llm.c's fused classifier).
#include <stdexcept>
#include <string>

#include "cuda/check.hpp"
#include "cuda/common.cuh"
#include "cuda/kernels.hpp"

namespace dtb::cuda {
namespace {

constexpr int kThreads = 1024;

struct RowStats {
  float max, sum;  // max logit, sum of exp(logit - max)
};

// Every thread of the block gets the row's statistics.
template <typename floatX>
__device__ RowStats row_stats(const floatX* x, int V, float* shared) {
  using P = Pack<floatX>;
  float m = -INFINITY, s = 0.0f;
  auto add = [&](float v) {
    if (v > m) {
      s = s * expf(m - v) + 1.0f;
      m = v;
    } else {
      s += expf(v - m);
    }
  };
  const int packs = V / P::size;
  for (int p = threadIdx.x; p < packs; p += blockDim.x) {
    const P pk = P::load(x + size_t(p) * P::size);
    for (int k = 0; k < P::size; ++k) add(to_float(pk[k]));
  }
  for (int i = packs * P::size + threadIdx.x; i < V; i += blockDim.x) add(to_float(x[i]));
  const float row_max = block_reduce<true>(m, shared);
  s = m == -INFINITY ? 0.0f : s * expf(m - row_max);  // threads that saw nothing add 0
  return {row_max, block_reduce<false>(s, shared)};
}

template <typename floatX, bool kBackward>
__global__ void __launch_bounds__(kThreads)
    classifier_kernel(floatX* logits, float* losses, const int32_t* targets, int V, int ldv, float dloss) {
  using P = Pack<floatX>;
  __shared__ float shared[kThreads / kWarpSize];
  const int row = blockIdx.x;
  floatX* x = logits + size_t(row) * ldv;  // (V)
  const int target = targets[row];
  const float target_logit = to_float(x[target]);  // read before any thread overwrites it
  const RowStats st = row_stats(x, V, shared);     // ends with a barrier
  if (threadIdx.x == 0) losses[row] = st.max + logf(st.sum) - target_logit;
  if constexpr (kBackward) {
    // As cpu/: p = exp(l - max) / sum; dl = p * dloss, minus dloss at the target.
    const float inv = 1.0f / st.sum;
    auto grad = [&](float v, int i) {
      const float d = expf(v - st.max) * inv * dloss;
      return i == target ? d - dloss : d;
    };
    const int packs = V / P::size;
    for (int p = threadIdx.x; p < packs; p += blockDim.x) {
      P pk = P::load_cs(x + size_t(p) * P::size);
      for (int k = 0; k < P::size; ++k) pk[k] = from_float<floatX>(grad(to_float(pk[k]), p * P::size + k));
      pk.store(x + size_t(p) * P::size);
    }
    for (int i = packs * P::size + threadIdx.x; i < V; i += blockDim.x)
      x[i] = from_float<floatX>(grad(to_float(x[i]), i));
  }
}

void check_rows(int V, int ldv, const char* who) {
  if (ldv % 8 != 0 || ldv < V)
    throw std::invalid_argument(std::string(who) + ": row stride " + std::to_string(ldv) +
                                " must be a multiple of 8 and at least V = " + std::to_string(V));
}

}  // namespace

template <typename floatX>
void crossentropy_forward(float* losses, const floatX* logits, const int32_t* targets, int N, int V, int ldv,
                          cudaStream_t stream) {
  check_rows(V, ldv, "crossentropy_forward");
  if (N == 0) return;
  // The kernel's forward-only instantiation never writes the logits.
  classifier_kernel<floatX, false>
      <<<unsigned(N), kThreads, 0, stream>>>(const_cast<floatX*>(logits), losses, targets, V, ldv, 0.0f);
  launch_check();
}

template <typename floatX>
void fused_classifier(floatX* logits, float* losses, const int32_t* targets, int N, int V, int ldv, float dloss,
                      cudaStream_t stream) {
  check_rows(V, ldv, "fused_classifier");
  if (N == 0) return;
  classifier_kernel<floatX, true><<<unsigned(N), kThreads, 0, stream>>>(logits, losses, targets, V, ldv, dloss);
  launch_check();
}

#define DTB_INSTANTIATE(floatX)                                                                                   \
  template void crossentropy_forward<floatX>(float*, const floatX*, const int32_t*, int, int, int, cudaStream_t); \
  template void fused_classifier<floatX>(floatX*, float*, const int32_t*, int, int, int, float, cudaStream_t);
DTB_INSTANTIATE(float)
DTB_INSTANTIATE(bf16)
#undef DTB_INSTANTIATE

}  // namespace dtb::cuda
