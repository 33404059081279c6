// GPT-2 on one GPU: the one orchestration (model/stage.hpp) over the CUDA kernel set
// (cuda/kernel_set.hpp), plus the AdamW moments, the gradient norm and host copies.
#include "cuda/model.hpp"

#include <cuda_bf16.h>
#include <cuda_runtime_api.h>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/check.hpp"
#include "cuda/context.hpp"
#include "cuda/kernel_set.hpp"
#include "cuda/kernels.hpp"
#include "model/stage.hpp"

namespace dtb::cuda {

const char* precision_name(Precision p) { return p == Precision::kBf16 ? "bf16" : "fp32"; }

Precision parse_precision(const std::string& name) {
  if (name == "bf16") return Precision::kBf16;
  if (name == "fp32") return Precision::kFp32;
  throw std::invalid_argument("precision '" + name + "': allowed: bf16, fp32");
}

namespace {

// Pinned host memory for the transfers that must be fast.
template <typename T>
class PinnedBuffer {
 public:
  explicit PinnedBuffer(size_t count) {
    if (count > 0) cuda_check(cudaMallocHost(reinterpret_cast<void**>(&ptr_), count * sizeof(T)));
  }
  ~PinnedBuffer() {
    if (ptr_) cudaFreeHost(ptr_);
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  T* get() const { return ptr_; }

 private:
  T* ptr_ = nullptr;
};

}  // namespace

// The model is the one orchestration (model/stage.hpp) holding every layer at TP = 1 in
// param_layout() order, over the CUDA kernel set: no forward or backward of its own. It
// adds what a one-GPU trainer needs around the stage: the AdamW moments, the norm, and
// host copies in and out.
struct Model::Impl {
  GPTConfig c;
  int B, T;
  Precision precision;
  Context ctx;
  KernelSet kernels;
  TransformerStage<float> stage;
  std::vector<ParamTensorInfo> layout;
  size_t n;  // parameters
  DeviceBuffer<float> adam_m, adam_v, norm_partials;
  DeviceBuffer<double> norm;
  PinnedBuffer<double> host_norm;
  // The stage keeps pointers to a forward's tokens until its backward: the model's copies.
  std::vector<int32_t> inputs, targets;
  bool has_targets = false;  // a forward with targets ran: backward may follow, the logits stay

  Impl(const GPTConfig& config, int batch, int seq_len, Precision p, int device)
      : c(config),
        B(batch),
        T(seq_len),
        precision(p),
        ctx(device),
        kernels(ctx, p == Precision::kBf16),
        stage(config, whole_model(config), batch, seq_len, 1, StageLayout::kTensorMajor, kernels),
        layout(param_layout(config)),
        n(stage.num_params()),
        adam_m(n),
        adam_v(n),
        norm_partials(kNormBlocks),
        norm(1),
        host_norm(1) {
    cuda_check(cudaMemsetAsync(adam_m.get(), 0, n * sizeof(float), ctx.stream()));
    cuda_check(cudaMemsetAsync(adam_v.get(), 0, n * sizeof(float), ctx.stream()));
    ctx.synchronize();
  }
};

Model::Model(const GPTConfig& config, int B, int T, Precision precision, int device) {
  const GPTConfig& c = config;
  auto fail = [](const std::string& what) { throw std::invalid_argument("cuda::Model: " + what); };
  if (c.vocab_size < 1 || c.n_ctx < 1 || c.n_layer < 1 || c.n_head < 1 || c.n_embd < 1)
    fail("vocab_size, n_ctx, n_layer, n_head and n_embd must all be >= 1");
  if (c.n_embd % c.n_head != 0)
    fail("n_embd (" + std::to_string(c.n_embd) + ") must be divisible by n_head (" + std::to_string(c.n_head) + ")");
  if (!c.tie_embeddings) fail("untied embeddings (model.tie_embeddings = false) are CPU-only for now");
  if (c.n_embd % kEmbdMultiple != 0)
    fail("n_embd (" + std::to_string(c.n_embd) + ") must be a multiple of " + std::to_string(kEmbdMultiple) +
         " on the GPU");
  if (B < 1 || T < 1 || T > c.n_ctx)
    fail("batch " + std::to_string(B) + " x " + std::to_string(T) + " needs B >= 1 and 1 <= T <= n_ctx (" +
         std::to_string(c.n_ctx) + ")");
  impl_ = std::make_unique<Impl>(config, B, T, precision, device);
}

Model::~Model() = default;

void Model::set_params(const float* host) {
  Impl& m = *impl_;
  m.kernels.upload(m.stage.params(), host, m.n);
  m.kernels.weights_changed(m.stage.params(), m.n);  // bf16: the compute copy
  m.ctx.synchronize();
}

void Model::get_params(float* host) const {
  Impl& m = *impl_;
  cuda_check(cudaMemcpyAsync(host, m.stage.params(), m.n * sizeof(float), cudaMemcpyDeviceToHost, m.ctx.stream()));
  m.ctx.synchronize();
}

void Model::get_grads(float* host) const {
  Impl& m = *impl_;
  cuda_check(cudaMemcpyAsync(host, m.stage.grads(), m.n * sizeof(float), cudaMemcpyDeviceToHost, m.ctx.stream()));
  m.ctx.synchronize();
}

void Model::set_adam_state(const float* adam_m, const float* adam_v) {
  Impl& m = *impl_;
  cuda_check(cudaMemcpyAsync(m.adam_m.get(), adam_m, m.n * sizeof(float), cudaMemcpyHostToDevice, m.ctx.stream()));
  cuda_check(cudaMemcpyAsync(m.adam_v.get(), adam_v, m.n * sizeof(float), cudaMemcpyHostToDevice, m.ctx.stream()));
  m.ctx.synchronize();
}

void Model::get_adam_state(float* adam_m, float* adam_v) const {
  const Impl& m = *impl_;
  cuda_check(cudaMemcpyAsync(adam_m, m.adam_m.get(), m.n * sizeof(float), cudaMemcpyDeviceToHost, m.ctx.stream()));
  cuda_check(cudaMemcpyAsync(adam_v, m.adam_v.get(), m.n * sizeof(float), cudaMemcpyDeviceToHost, m.ctx.stream()));
  m.ctx.synchronize();
}

float Model::forward(const int32_t* inputs, const int32_t* targets) {
  Impl& m = *impl_;
  const size_t bt = size_t(m.B) * size_t(m.T);
  m.inputs.assign(inputs, inputs + bt);
  if (targets) m.targets.assign(targets, targets + bt);
  // The stage checks the token ids (std::out_of_range) and returns the mean loss.
  m.has_targets = false;
  const float loss = m.stage.forward(0, m.inputs.data(), targets ? m.targets.data() : nullptr, no_tensor_parallelism());
  m.has_targets = targets != nullptr;
  if (!targets) m.ctx.synchronize();
  return loss;
}

void Model::get_logits(float* host) const {
  Impl& m = *impl_;
  const int V = m.c.vocab_size, BT = m.B * m.T, ld = m.stage.logits_stride();
  const cudaStream_t s = m.ctx.stream();
  // Rows are ld apart on the device and V apart on the host.
  DeviceBuffer<float> converted;
  const float* rows = m.stage.logits(0);
  if (m.precision == Precision::kBf16) {  // bf16 values in the stage's float slots
    converted = DeviceBuffer<float>(size_t(BT) * ld);
    convert(converted.get(), reinterpret_cast<const bf16*>(rows), size_t(BT) * ld, s);
    rows = converted.get();
  }
  cuda_check(cudaMemcpy2DAsync(host, size_t(V) * sizeof(float), rows, size_t(ld) * sizeof(float),
                               size_t(V) * sizeof(float), size_t(BT), cudaMemcpyDeviceToHost, s));
  m.ctx.synchronize();
}

void Model::zero_grad() { impl_->stage.zero_grad(); }

void Model::backward() {
  Impl& m = *impl_;
  if (!m.has_targets)
    throw std::logic_error("cuda::Model::backward needs a forward() with targets before each backward");
  m.stage.backward(0, 1.0f, no_tensor_parallelism());
  m.has_targets = false;
}

double Model::grad_norm() {
  Impl& m = *impl_;
  sum_of_squares(m.norm.get(), m.stage.grads(), m.n, m.norm_partials.get(), m.ctx.stream());
  cuda_check(cudaMemcpyAsync(m.host_norm.get(), m.norm.get(), sizeof(double), cudaMemcpyDeviceToHost, m.ctx.stream()));
  m.ctx.synchronize();
  return std::sqrt(*m.host_norm.get());
}

void Model::adamw_update(const AdamWSettings& a) {
  Impl& m = *impl_;
  // The constants as optim/adamw.cpp computes them.
  AdamWStep step{};
  step.lr = float(a.lr);
  step.beta1 = float(a.beta1);
  step.beta2 = float(a.beta2);
  step.eps = float(a.eps);
  step.m_corr = float(1.0 / (1.0 - std::pow(a.beta1, double(a.t))));
  step.v_corr = float(1.0 / (1.0 - std::pow(a.beta2, double(a.t))));
  step.grad_scale = float(a.grad_scale);
  bf16* copy = m.kernels.weight_copy();  // bf16: AdamW refreshes the compute copy as it goes
  for (const ParamTensorInfo& t : m.layout) {
    step.decay = t.decay ? float(a.lr * a.weight_decay) : 0.0f;
    cuda::adamw_update(m.stage.params() + t.offset, m.stage.grads() + t.offset, m.adam_m.get() + t.offset,
                       m.adam_v.get() + t.offset, copy ? copy + t.offset : nullptr, t.size, step, m.ctx.stream());
  }
}

const GPTConfig& Model::config() const { return impl_->c; }
int Model::batch() const { return impl_->B; }
int Model::seq_len() const { return impl_->T; }
Precision Model::precision() const { return impl_->precision; }
size_t Model::num_params() const { return impl_->n; }
double Model::flops_per_token() const { return dtb::flops_per_token(impl_->c, impl_->T); }
size_t Model::device_bytes() const {
  const Impl& m = *impl_;
  return m.kernels.device_bytes() + (m.adam_m.size() + m.adam_v.size() + m.norm_partials.size()) * sizeof(float) +
         m.norm.size() * sizeof(double) + m.ctx.workspace_bytes();
}
Context& Model::context() { return impl_->ctx; }
float* Model::device_params() { return impl_->stage.params(); }
float* Model::device_grads() { return impl_->stage.grads(); }

}  // namespace dtb::cuda
