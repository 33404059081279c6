// cuda/kernels.hpp behind model/kernel_set.hpp (see kernel_set.hpp).
#include "cuda/kernel_set.hpp"

#include <cuda_runtime_api.h>

#include <stdexcept>
#include <string>
#include <type_traits>

#include "cuda/check.hpp"

namespace dtb::cuda {
namespace {

// An activation slot of the stage as the compute type (bf16 lives in the slot's first half).
template <typename floatX>
floatX* act(float* p) {
  return reinterpret_cast<floatX*>(p);
}
template <typename floatX>
const floatX* act(const float* p) {
  return reinterpret_cast<const floatX*>(p);
}

[[noreturn]] void no_tensor_parallelism(const char* what) {
  throw std::logic_error(std::string("cuda kernel set: ") + what + " is for TP > 1, which the GPU stage refuses");
}

}  // namespace

KernelSet::KernelSet(Context& ctx, bool bf16) : ctx_(ctx), bf16_(bf16) {}

KernelSet::~KernelSet() {
  for (const auto& [p, bytes] : allocated_) cudaFree(const_cast<float*>(p));
}

template <typename F>
void KernelSet::dispatch(F&& f) const {
  if (bf16_)
    f(bf16{});
  else
    f(float{});
}

size_t KernelSet::device_bytes() const {
  size_t total = copy_.size() * sizeof(bf16) + col_scratch_.size() * sizeof(float) +
                 losses_scratch_.size() * sizeof(float) + attn_scratch_.size() * sizeof(double);
  for (const auto& t : tokens_) total += t.size() * sizeof(int32_t);
  for (const auto& [p, bytes] : allocated_) total += bytes;
  return total;
}

float* KernelSet::allocate(size_t n, Memory) {
  float* p = nullptr;
  cuda_check(cudaMalloc(reinterpret_cast<void**>(&p), n * sizeof(float)));
  allocated_[p] = n * sizeof(float);
  cuda_check(cudaMemsetAsync(p, 0, n * sizeof(float), ctx_.stream()));
  return p;
}

void KernelSet::release(float* p) {
  allocated_.erase(p);
  cudaFree(p);
}

void KernelSet::zero(float* p, size_t n) { cuda_check(cudaMemsetAsync(p, 0, n * sizeof(float), ctx_.stream())); }

void KernelSet::upload(float* dst, const float* host, size_t n) {
  cuda_check(cudaMemcpyAsync(dst, host, n * sizeof(float), cudaMemcpyHostToDevice, ctx_.stream()));
  ctx_.synchronize();
}

void KernelSet::weights_changed(const float* params, size_t n) {
  params_ = params, params_n_ = n;
  if (!bf16_) return;
  if (copy_.size() != n) copy_ = DeviceBuffer<bf16>(n);
  convert(copy_.get(), params, n, ctx_.stream());
}

template <typename floatX>
const floatX* KernelSet::weight(const float* p) const {
  if constexpr (std::is_same_v<floatX, float>) {
    return p;
  } else {
    if (!p) return nullptr;
    if (p < params_ || p >= params_ + params_n_)
      throw std::logic_error("cuda kernel set: a weight outside the parameters given to weights_changed");
    return copy_.get() + (p - params_);
  }
}

int32_t* KernelSet::tokens_on_device(const int32_t* host, size_t n, int region) {
  DeviceBuffer<int32_t>& buf = tokens_[region];
  if (buf.size() < n) buf = DeviceBuffer<int32_t>(n);
  cuda_check(cudaMemcpyAsync(buf.get(), host, n * sizeof(int32_t), cudaMemcpyHostToDevice, ctx_.stream()));
  return buf.get();
}

float* KernelSet::column_scratch(int N, int C) {
  const size_t need = column_scratch_floats(N, C);
  if (col_scratch_.size() < need) {
    ctx_.synchronize();  // kernels in flight may still use the old one
    col_scratch_ = DeviceBuffer<float>(need);
  }
  return col_scratch_.get();
}

template <typename floatX>
floatX* KernelSet::attention_scratch(int B, int T, int C, int NH) {
  const size_t need = (attention_scratch_elems(B, T, C, NH) * sizeof(floatX) + sizeof(double) - 1) / sizeof(double);
  if (attn_scratch_.size() < need) {
    ctx_.synchronize();
    attn_scratch_ = DeviceBuffer<double>(need);
  }
  return reinterpret_cast<floatX*>(attn_scratch_.get());
}

// ---------------------------------------------------------------------------------- layers

void KernelSet::encoder_forward(float* out, const int32_t* inp, const float* wte, const float* wpe, int B, int T,
                                int C, VocabSlice) {
  const int32_t* tokens = tokens_on_device(inp, size_t(B) * size_t(T), 0);
  dispatch([&](auto x) {
    using X = decltype(x);
    cuda::encoder_forward(act<X>(out), tokens, weight<X>(wte), weight<X>(wpe), B, T, C, ctx_.stream());
  });
}

// The rows of each token summed in a fixed order: buckets sorted on the host (llm.c's way).
// A copy from pageable host memory returns once the bytes are staged, so BUCKETS may go.
void KernelSet::encoder_backward(float* dwte, float* dwpe, const float* dout, const int32_t* inp, int B, int T, int C,
                                 VocabSlice) {
  const EncoderBuckets buckets = encoder_buckets(inp, B * T);
  const int32_t* dev = tokens_on_device(buckets.data.data(), buckets.data.size(), 2);
  dispatch([&](auto x) {
    using X = decltype(x);
    cuda::encoder_backward(dwte, dwpe, act<X>(dout), dev, buckets.unique, B, T, C, ctx_.stream());
  });
}

void KernelSet::layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* w,
                                  const float* b, int N, int C) {
  dispatch([&](auto x) {
    using X = decltype(x);
    cuda::layernorm_forward(act<X>(out), mean, rstd, act<X>(inp), weight<X>(w), weight<X>(b), N, C, ctx_.stream());
  });
}

void KernelSet::layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                   const float* w, const float* mean, const float* rstd, int N, int C) {
  float* scratch = column_scratch(N, C);
  dispatch([&](auto x) {
    using X = decltype(x);
    cuda::layernorm_backward(act<X>(dinp), dweight, dbias, act<X>(dout), act<X>(inp), weight<X>(w), mean, rstd, N, C,
                             scratch, ctx_.stream());
  });
}

void KernelSet::matmul_forward(float* out, const float* inp, const float* w, const float* bias, int N, int C, int OC,
                               int ldo) {
  dispatch([&](auto x) {
    using X = decltype(x);
    cuda::matmul_forward(ctx_, act<X>(out), act<X>(inp), weight<X>(w), weight<X>(bias), N, C, OC, ldo);
  });
}

void KernelSet::matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                                const float* w, int N, int C, int OC, int ld_dout) {
  float* scratch = dbias ? column_scratch(N, OC) : nullptr;
  dispatch([&](auto x) {
    using X = decltype(x);
    cuda::matmul_backward(ctx_, act<X>(dinp), dweight, dbias, act<X>(dout), act<X>(inp), weight<X>(w), N, C, OC,
                          scratch, ld_dout);
  });
}

void KernelSet::add_bias(float*, const float*, int, int) { no_tensor_parallelism("add_bias"); }

void KernelSet::attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH) {
  dispatch([&](auto x) {
    using X = decltype(x);
    cuda::attention_forward(ctx_, act<X>(out), act<X>(att), act<X>(qkv), B, T, C, NH,
                            attention_scratch<X>(B, T, C, NH));
  });
}

void KernelSet::attention_backward(float* dqkv, const float* dout, const float* qkv, const float* att, int B, int T,
                                   int C, int NH) {
  dispatch([&](auto x) {
    using X = decltype(x);
    cuda::attention_backward(ctx_, act<X>(dqkv), act<X>(dout), act<X>(qkv), act<X>(att), B, T, C, NH,
                             attention_scratch<X>(B, T, C, NH));
  });
}

void KernelSet::gelu_forward(float* out, const float* inp, size_t n) {
  dispatch([&](auto x) {
    using X = decltype(x);
    cuda::gelu_forward(act<X>(out), act<X>(inp), n, ctx_.stream());
  });
}

void KernelSet::gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
  dispatch([&](auto x) {
    using X = decltype(x);
    cuda::gelu_backward(act<X>(dinp), act<X>(inp), act<X>(dout), n, ctx_.stream());
  });
}

void KernelSet::residual_forward(float* out, const float* inp1, const float* inp2, size_t n) {
  dispatch([&](auto x) {
    using X = decltype(x);
    cuda::residual_forward(act<X>(out), act<X>(inp1), act<X>(inp2), n, ctx_.stream());
  });
}

// ------------------------------------------------------------------------------------ loss

// The losses per row on the device, their mean on the host (summed in row order, as cpu/).
float KernelSet::crossentropy_forward(float* losses, float*, const float* logits, const int32_t* targets, int N,
                                      int V, int ldv) {
  const int32_t* dev = tokens_on_device(targets, size_t(N), 1);
  dispatch([&](auto x) {
    using X = decltype(x);
    cuda::crossentropy_forward(losses, act<X>(logits), dev, N, V, ldv, ctx_.stream());
  });
  host_losses_.resize(size_t(N));
  cuda_check(cudaMemcpyAsync(host_losses_.data(), losses, size_t(N) * sizeof(float), cudaMemcpyDeviceToHost,
                             ctx_.stream()));
  ctx_.synchronize();
  float total = 0;
  for (float l : host_losses_) total += l;
  return total / float(N);
}

// The fused classifier over a copy of the logits: softmax, minus the target's one-hot,
// times SCALE / N, written over DLOGITS (the stage's probs buffer).
void KernelSet::crossentropy_backward(float* dlogits, const float*, const float* logits, const int32_t* targets,
                                      int N, int V, int ldv, VocabSlice, float scale) {
  const int32_t* dev = tokens_on_device(targets, size_t(N), 1);
  if (losses_scratch_.size() < size_t(N)) losses_scratch_ = DeviceBuffer<float>(size_t(N));
  dispatch([&](auto x) {
    using X = decltype(x);
    convert(act<X>(dlogits), act<X>(logits), size_t(N) * size_t(ldv), ctx_.stream());
    fused_classifier(act<X>(dlogits), losses_scratch_.get(), dev, N, V, ldv, scale / float(N), ctx_.stream());
  });
}

void KernelSet::crossentropy_partial(float*, const float*, const int32_t*, int, VocabSlice) {
  no_tensor_parallelism("crossentropy_partial");
}
float KernelSet::crossentropy_combine(float*, float*, const float*, int, int) {
  no_tensor_parallelism("crossentropy_combine");
}
void KernelSet::softmax_from_lse(float*, const float*, const float*, int, int) {
  no_tensor_parallelism("softmax_from_lse");
}

}  // namespace dtb::cuda
