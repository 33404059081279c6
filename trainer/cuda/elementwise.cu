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

// The three maps below: out = op(inputs...) element by element, in float.
struct GeluForward {
  __device__ float operator()(float x) const { return x * gelu_sigmoid(x); }
};
struct GeluBackward {  // d/dx [x * sigmoid(2u(x))] times the incoming gradient
  __device__ float operator()(float x, float dout) const {
    const float s = gelu_sigmoid(x);
    const float du = kGeluScale * (1.0f + 3.0f * kGeluCube * x * x);
    return (s + 2.0f * x * s * (1.0f - s) * du) * dout;
  }
};
struct Add {
  __device__ float operator()(float a, float b) const { return a + b; }
};

// One kernel for every element-wise map: one thread per 128-bit pack of the output and of
// each input (all read once: streaming loads).
template <typename floatX, typename Op, typename... Inputs>
__global__ void map_kernel(floatX* out, size_t packs, Op op, const Inputs*... inputs) {
  static_assert((std::is_same_v<Inputs, floatX> && ...), "inputs are stored as the output is");
  using P = Pack<floatX>;
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= packs) return;
  const size_t at = i * P::size;
  P o;
  auto apply = [&](const auto&... x) {
    for (int k = 0; k < P::size; ++k) o[k] = from_float<floatX>(op(to_float(x[k])...));
  };
  apply(P::load_cs(inputs + at)...);
  o.store(out + at);
}

// Not a map: two outputs, each accumulated (+=), from one read of dout.
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

// N elements (a multiple of 8) through map_kernel; WHO names the layer in errors.
template <typename floatX, typename Op, typename... Inputs>
void launch_map(const char* who, floatX* out, size_t n, cudaStream_t stream, Op op, const Inputs*... inputs) {
  const size_t packs = packs_of(n, Pack<floatX>::size, who);
  if (packs == 0) return;
  map_kernel<<<ceil_div(packs, kThreads), kThreads, 0, stream>>>(out, packs, op, inputs...);
  launch_check();
}

}  // namespace

template <typename floatX>
void gelu_forward(floatX* out, const floatX* inp, size_t n, cudaStream_t stream) {
  launch_map("gelu_forward", out, n, stream, GeluForward{}, inp);
}

template <typename floatX>
void gelu_backward(floatX* dinp, const floatX* inp, const floatX* dout, size_t n, cudaStream_t stream) {
  launch_map("gelu_backward", dinp, n, stream, GeluBackward{}, inp, dout);
}

template <typename floatX>
void residual_forward(floatX* out, const floatX* inp1, const floatX* inp2, size_t n, cudaStream_t stream) {
  launch_map("residual_forward", out, n, stream, Add{}, inp1, inp2);
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
