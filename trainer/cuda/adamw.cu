// AdamW on fp32 master weights and moments, and the global gradient norm's sum of squares.
#include <algorithm>

#include "cuda/check.hpp"
#include "cuda/common.cuh"
#include "cuda/kernels.hpp"

namespace dtb::cuda {
namespace {

constexpr int kThreads = 512;

// The update of optim/adamw.cpp, element for element. When copy is set it also receives
// the new weight rounded to bf16 (the compute copy of mixed precision).
__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, bf16* copy, size_t n, AdamWStep s) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float g = grads[i] * s.grad_scale;
  const float mi = s.beta1 * m[i] + (1.0f - s.beta1) * g;
  const float vi = s.beta2 * v[i] + (1.0f - s.beta2) * g * g;
  m[i] = mi;
  v[i] = vi;
  const float update = (mi * s.m_corr) / (sqrtf(vi * s.v_corr) + s.eps);
  const float p = params[i] - (s.lr * update + s.decay * params[i]);
  params[i] = p;
  if (copy) copy[i] = __float2bfloat16_rn(p);
}

// Block b sums g[i]^2 over i = b*blockDim + thread, stepping by the whole grid: the same
// partition whatever the GPU, since the grid is kNormBlocks blocks always.
__global__ void squares_kernel(float* partials, const float* g, size_t n) {
  __shared__ float shared[kThreads / kWarpSize];
  float s = 0.0f;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    s += g[i] * g[i];
  s = block_reduce<false>(s, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// One thread adds the partials in order, in double.
__global__ void squares_total_kernel(double* out, const float* partials, int count) {
  double total = 0.0;
  for (int i = 0; i < count; ++i) total += double(partials[i]);
  *out = total;
}

}  // namespace

void adamw_update(float* params, const float* grads, float* m, float* v, bf16* params_copy, size_t n,
                  const AdamWStep& step, cudaStream_t stream) {
  if (n == 0) return;
  adamw_kernel<<<ceil_div(n, kThreads), kThreads, 0, stream>>>(params, grads, m, v, params_copy, n, step);
  launch_check();
}

void sum_of_squares(double* out, const float* g, size_t n, float* partials, cudaStream_t stream) {
  squares_kernel<<<kNormBlocks, kThreads, 0, stream>>>(partials, g, n);
  launch_check();
  squares_total_kernel<<<1, 1, 0, stream>>>(out, partials, kNormBlocks);
  launch_check();
}

}  // namespace dtb::cuda
