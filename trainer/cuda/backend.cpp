// device.backend = cuda: a one-rank run's stage on one GPU through cuda::Model
// (-DDTB_CUDA=ON builds only). The weights are drawn on the host by GPT<float>::init_weights,
// exactly as on the CPU, and uploaded; checkpoints copy the fp32 master weights and moments
// back in param_layout() order, so GPU and CPU checkpoints are interchangeable.
#include <string>
#include <vector>

#include "cuda/context.hpp"
#include "cuda/model.hpp"
#include "train/backend.hpp"

namespace dtb {
namespace {

cuda::AdamWSettings adamw_settings(const OptimSettings& o, double lr, int64_t t, double grad_scale) {
  return {lr, o.beta1, o.beta2, o.eps, o.weight_decay, t, grad_scale};
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const TrainSettings& s)
      : optim_(s.optim),
        gpu_(s.model, s.batch_size, s.seq_len, cuda::parse_precision(s.precision)) {
    GPT<float> host(s.model, 1, 1);  // B = T = 1: the initial weights, no activations
    host.init_weights(s.seed);
    const std::vector<float> zeros(host.num_params(), 0.0f);
    set_state(host.params(), zeros.data(), zeros.data());
  }

  std::string describe() const override {
    cuda::Context& c = gpu_.context();
    return std::string("cuda ") + cuda::precision_name(gpu_.precision()) + ", " + c.device_name() + " (sm_" +
           std::to_string(c.compute_capability()) + ")";
  }
  float forward(const int32_t* inputs, const int32_t* targets) override { return gpu_.forward(inputs, targets); }
  double backward() override {
    gpu_.zero_grad();
    gpu_.backward();
    return gpu_.grad_norm();  // waits for the GPU
  }
  void update(double lr, int64_t t, double grad_scale) override {
    gpu_.adamw_update(adamw_settings(optim_, lr, t, grad_scale));
    gpu_.context().synchronize();  // adamw_update only enqueues; the step time must include it
  }
  void get_state(float* params, float* m, float* v) const override {
    gpu_.get_params(params);
    gpu_.get_adam_state(m, v);
  }
  void set_state(const float* params, const float* m, const float* v) override {
    gpu_.set_params(params);
    gpu_.set_adam_state(m, v);
  }

 private:
  OptimSettings optim_;
  // mutable: context() is not const (it hands out the stream); that changes no state.
  mutable cuda::Model gpu_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(const TrainSettings& s) { return std::make_unique<CudaBackend>(s); }

}  // namespace dtb
