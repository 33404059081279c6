// Element-wise layers: GELU, the residual add, and type conversion. One thread per 128-bit
// pack; the math in float.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cuda/check.hpp"
#include "cuda/common.cuh"
#include "cuda/kernels.hpp"

namespace dtb::cuda {
namespace {

constexpr int kThreads = 512;
constexpr float kGeluScale = 0.79788456080286535588f;  // sqrt(2/pi)
constexpr float kGeluCube = 0.044715f;

// 0.5 * (1 + tanh(u)) = sigmoid(2u), as cpu/ computes it.
__device__ __forceinline__ float gelu_sigmoid(float x) {
  const float u = kGeluScale * (x + kGeluCube * x * x * x);
  return 1.0f / (1.0f + expf(-2.0f * u));
}

template <typename floatX>
__global__ void gelu_forward_kernel(floatX* out, const floatX* inp, size_t packs) {
  using P = Pack<floatX>;
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= packs) return;
  const P x = P::load_cs(inp + i * P::size);
  P o;
  for (int k = 0; k < P::size; ++k) {
    const float xi = to_float(x[k]);
    o[k] = from_float<floatX>(xi * gelu_sigmoid(xi));
  }
  o.store(out + i * P::size);
}

template <typename floatX>
__global__ void gelu_backward_kernel(floatX* dinp, const floatX* inp, const floatX* dout, size_t packs) {
  using P = Pack<floatX>;
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= packs) return;
  const P x = P::load_cs(inp + i * P::size), d = P::load_cs(dout + i * P::size);
  P o;
  for (int k = 0; k < P::size; ++k) {
    const float xi = to_float(x[k]), s = gelu_sigmoid(xi);
    const float du = kGeluScale * (1.0f + 3.0f * kGeluCube * xi * xi);
    o[k] = from_float<floatX>((s + 2.0f * xi * s * (1.0f - s) * du) * to_float(d[k]));
  }
  o.store(dinp + i * P::size);
}

template <typename floatX>
__global__ void residual_forward_kernel(floatX* out, const floatX* a, const floatX* b, size_t packs) {
  using P = Pack<floatX>;
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= packs) return;
  const P x = P::load_cs(a + i * P::size), y = P::load_cs(b + i * P::size);
  P o;
  for (int k = 0; k < P::size; ++k) o[k] = from_float<floatX>(to_float(x[k]) + to_float(y[k]));
  o.store(out + i * P::size);
}

template <typename floatX>
__global__ void residual_backward_kernel(floatX* d1, floatX* d2, const floatX* dout, size_t packs) {
  using P = Pack<floatX>;
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= packs) return;
  const P d = P::load_cs(dout + i * P::size);
  P a = P::load(d1 + i * P::size), b = P::load(d2 + i * P::size);
  for (int k = 0; k < P::size; ++k) {
    a[k] = from_float<floatX>(to_float(a[k]) + to_float(d[k]));
    b[k] = from_float<floatX>(to_float(b[k]) + to_float(d[k]));
  }
  a.store(d1 + i * P::size);
  b.store(d2 + i * P::size);
}

template <typename To, typename From>
__global__ void convert_kernel(To* out, const From* in, size_t n) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    out[i] = from_float<To>(to_float(in[i]));
}

size_t packs_of(size_t n, int pack, const char* who) {
  if (n % 8 != 0)
    throw std::invalid_argument(std::string(who) + ": n = " + std::to_string(n) + " must be a multiple of 8");
  return n / size_t(pack);
}

}  // namespace

template <typename floatX>
void gelu_forward(floatX* out, const floatX* inp, size_t n, cudaStream_t stream) {
  const size_t packs = packs_of(n, Pack<floatX>::size, "gelu_forward");
  if (packs == 0) return;
  gelu_forward_kernel<<<ceil_div(packs, kThreads), kThreads, 0, stream>>>(out, inp, packs);
  launch_check();
}

template <typename floatX>
void gelu_backward(floatX* dinp, const floatX* inp, const floatX* dout, size_t n, cudaStream_t stream) {
  const size_t packs = packs_of(n, Pack<floatX>::size, "gelu_backward");
  if (packs == 0) return;
  gelu_backward_kernel<<<ceil_div(packs, kThreads), kThreads, 0, stream>>>(dinp, inp, dout, packs);
  launch_check();
}

template <typename floatX>
void residual_forward(floatX* out, const floatX* inp1, const floatX* inp2, size_t n, cudaStream_t stream) {
  const size_t packs = packs_of(n, Pack<floatX>::size, "residual_forward");
  if (packs == 0) return;
  residual_forward_kernel<<<ceil_div(packs, kThreads), kThreads, 0, stream>>>(out, inp1, inp2, packs);
  launch_check();
}

template <typename floatX>
void residual_backward(floatX* dinp1, floatX* dinp2, const floatX* dout, size_t n, cudaStream_t stream) {
  const size_t packs = packs_of(n, Pack<floatX>::size, "residual_backward");
  if (packs == 0) return;
  residual_backward_kernel<<<ceil_div(packs, kThreads), kThreads, 0, stream>>>(dinp1, dinp2, dout, packs);
  launch_check();
}

template <typename To, typename From>
void convert(To* out, const From* in, size_t n, cudaStream_t stream) {
  if (n == 0) return;
  if constexpr (std::is_same_v<To, From>) {
    cuda_check(cudaMemcpyAsync(out, in, n * sizeof(To), cudaMemcpyDeviceToDevice, stream));
  } else {
    const unsigned blocks = std::min(ceil_div(n, kThreads), 65535u);
    convert_kernel<<<blocks, kThreads, 0, stream>>>(out, in, n);
    launch_check();
  }
}

#define DTB_INSTANTIATE(floatX)                                                                        \
  template void gelu_forward<floatX>(floatX*, const floatX*, size_t, cudaStream_t);                    \
  template void gelu_backward<floatX>(floatX*, const floatX*, const floatX*, size_t, cudaStream_t);    \
  template void residual_forward<floatX>(floatX*, const floatX*, const floatX*, size_t, cudaStream_t); \
  template void residual_backward<floatX>(floatX*, floatX*, const floatX*, size_t, cudaStream_t);
DTB_INSTANTIATE(float)
DTB_INSTANTIATE(bf16)
#undef DTB_INSTANTIATE
template void convert<float, float>(float*, const float*, size_t, cudaStream_t);
template void convert<bf16, float>(bf16*, const float*, size_t, cudaStream_t);
template void convert<float, bf16>(float*, const bf16*, size_t, cudaStream_t);
template void convert<bf16, bf16>(bf16*, const bf16*, size_t, cudaStream_t);

}  // namespace dtb::cuda
