// The CUDA model (trainer/cuda/model.hpp) against the CPU model (GPT<float> + AdamW) from
// the same parameters and tokens: one whole training step (loss, every gradient tensor,
// the grad norm, parameters and Adam moments after the update), then five steps of
// losses within 1e-4 relative, in fp32; the same in bf16 mixed precision with the looser
// tolerances of bf16 activations. Then the stage itself (model/stage.hpp) over the CUDA
// kernel set against the CPU set where cuda::Model does not go: the pipeline's buffer
// order, an untied LM head, two micro-batch slots and a loss scale.
// Exits 77 (ctest: skipped) where no GPU can run it.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include <cuda_runtime_api.h>

#include "cuda/check.hpp"
#include "cuda/context.hpp"
#include "cuda/gpu_test.hpp"
#include "cuda/kernel_set.hpp"
#include "cuda/model.hpp"
#include "model/stage.hpp"
#include "model/gpt2.hpp"
#include "optim/adamw.hpp"

namespace {

using namespace dtb::cuda;
using namespace dtb::cuda::test;

// Whole-model tolerances (normalized error per tensor): fp32 chains ~20 kernels, each
// within 1e-6; bf16 rounds every activation to 8 bits of mantissa.
constexpr double kStepFp32 = 1e-5, kStepBf16 = 5e-2;
constexpr double kLossesFp32 = 1e-4;  // relative, per step, five steps
constexpr double kLossesBf16 = 2e-2;

const dtb::GPTConfig kConfig{251, 64, 2, 4, 64};  // V odd: the padded logits path
constexpr int kB = 4, kT = 64;
const dtb::OptimSettings kOptim{1e-3, 0.1, 0.9, 0.95, 1e-8, 0.1, 1.0, 0};

double relative(double got, double want) { return std::abs(got - want) / std::max(std::abs(want), 1e-30); }

std::vector<double> slice(const std::vector<float>& v, const dtb::ParamTensorInfo& t) {
  return {v.begin() + long(t.offset), v.begin() + long(t.offset + t.size)};
}

struct CpuTrainer {
  dtb::GPT<float> model{kConfig, kB, kT};
  std::vector<float> m, v;
  std::vector<dtb::ParamSegment> segments;
  CpuTrainer(uint64_t seed) : m(model.num_params(), 0.0f), v(model.num_params(), 0.0f) {
    model.init_weights(seed);
    for (const auto& t : dtb::param_layout(kConfig)) segments.push_back({t.offset, t.size, t.decay});
  }
  // One step; returns the loss, leaves the gradients; NORM receives the grad norm.
  float step(const std::vector<int32_t>& in, const std::vector<int32_t>& tgt, int64_t t, double* norm) {
    const float loss = model.forward(in.data(), tgt.data());
    model.zero_grad();
    model.backward();
    *norm = std::sqrt(dtb::sum_of_squares(model.grads(), model.num_params()));
    dtb::adamw_update(model.params(), model.grads(), m.data(), v.data(), segments, kOptim, kOptim.lr, t,
                      dtb::clip_scale(*norm, kOptim.grad_clip));
    return loss;
  }
};

float gpu_step(Model& g, const std::vector<int32_t>& in, const std::vector<int32_t>& tgt, int64_t t, double* norm,
               std::vector<float>* grads) {
  const float loss = g.forward(in.data(), tgt.data());
  g.zero_grad();
  g.backward();
  *norm = g.grad_norm();
  if (grads) g.get_grads(grads->data());
  g.adamw_update({kOptim.lr, kOptim.beta1, kOptim.beta2, kOptim.eps, kOptim.weight_decay, t,
                  dtb::clip_scale(*norm, kOptim.grad_clip)});
  return loss;
}

void one_step(Precision p, Random& rng, uint64_t seed, Checker& check) {
  const bool fp32 = p == Precision::kFp32;
  const double tol = fp32 ? kStepFp32 : kStepBf16;
  const std::string type = precision_name(p);
  CpuTrainer cpu(seed);
  Model gpu(kConfig, kB, kT, p);
  const size_t n = gpu.num_params();
  gpu.set_params(cpu.model.params());
  std::vector<float> back(n);
  gpu.get_params(back.data());
  if (!std::equal(back.begin(), back.end(), cpu.model.params())) check.fail("set_params/get_params round trip " + type);

  const auto in = rng.tokens(size_t(kB) * kT, kConfig.vocab_size), tgt = rng.tokens(in.size(), kConfig.vocab_size);
  // Logits of a forward without targets.
  if (fp32) {
    cpu.model.forward(in.data(), nullptr);
    gpu.forward(in.data(), nullptr);
    std::vector<float> logits(size_t(kB) * kT * kConfig.vocab_size);
    gpu.get_logits(logits.data());
    const float* want = cpu.model.logits();
    check.check("model logits fp32", {logits.begin(), logits.end()}, {want, want + logits.size()}, tol);
  }
  double cpu_norm = 0, gpu_norm = 0;
  std::vector<float> grads(n);
  const float cpu_loss = cpu.step(in, tgt, 1, &cpu_norm);
  const float gpu_loss = gpu_step(gpu, in, tgt, 1, &gpu_norm, &grads);
  check.check("model step loss " + type, {gpu_loss}, {cpu_loss}, fp32 ? kStepFp32 : kLossesBf16);
  check.check("model step grad norm " + type, {gpu_norm}, {cpu_norm}, tol);
  const std::vector<float> cpu_grads(cpu.model.grads(), cpu.model.grads() + n);
  std::vector<float> params(n), m(n), v(n);
  gpu.get_params(params.data());
  gpu.get_adam_state(m.data(), v.data());
  const std::vector<float> cpu_params(cpu.model.params(), cpu.model.params() + n);
  for (const auto& t : dtb::param_layout(kConfig)) {
    const std::string name = std::string(t.name) + " " + type;
    check.check("model step grad " + name, slice(grads, t), slice(cpu_grads, t), tol);
    check.check("model step param " + name, slice(params, t), slice(cpu_params, t), tol);
    check.check("model step adam m " + name, slice(m, t), slice(cpu.m, t), tol);
    check.check("model step adam v " + name, slice(v, t), slice(cpu.v, t), 2 * tol);
  }
}

void five_steps(Precision p, Random& rng, uint64_t seed, Checker& check) {
  const bool fp32 = p == Precision::kFp32;
  CpuTrainer cpu(seed);
  Model gpu(kConfig, kB, kT, p);
  gpu.set_params(cpu.model.params());
  double worst = 0;
  for (int64_t t = 1; t <= 5; ++t) {
    const auto in = rng.tokens(size_t(kB) * kT, kConfig.vocab_size), tgt = rng.tokens(in.size(), kConfig.vocab_size);
    double cpu_norm = 0, gpu_norm = 0;
    const float cpu_loss = cpu.step(in, tgt, t, &cpu_norm);
    const float gpu_loss = gpu_step(gpu, in, tgt, t, &gpu_norm, nullptr);
    std::printf("     step %lld: loss cpu %.6f gpu %.6f (rel %.2e) | norm cpu %.6f gpu %.6f\n",
                static_cast<long long>(t), cpu_loss, gpu_loss, relative(gpu_loss, cpu_loss), cpu_norm, gpu_norm);
    worst = std::max(worst, relative(gpu_loss, cpu_loss));
  }
  const double tol = fp32 ? kLossesFp32 : kLossesBf16;
  const bool ok = worst <= tol;
  std::printf("%s five steps of losses %s: worst relative difference %.3e (tol %.0e)\n", ok ? "OK  " : "FAIL",
              precision_name(p), worst, tol);
  if (!ok) check.fail(std::string("five steps of losses ") + precision_name(p));
}

// Two micro-batches, each LOSS_SCALE x its loss, through a layer-major untied stage on the
// CPU set and on the GPU's: the losses and the accumulated gradients (fp32).
void stage_over_the_gpu_set(Random& rng, uint64_t seed, Checker& check) {
  dtb::GPTConfig c = kConfig;
  c.tie_embeddings = false;
  const dtb::StageShard whole = dtb::whole_model(c);
  Context ctx;
  KernelSet gpu_set(ctx, false);
  dtb::TransformerStage<float> cpu(c, whole, kB, kT, 2), gpu(c, whole, kB, kT, 2, dtb::StageLayout::kLayerMajor, gpu_set);
  cpu.init_weights(seed);
  gpu.init_weights(seed);
  cpu.zero_grad();
  gpu.zero_grad();
  auto& none = dtb::no_tensor_parallelism();
  std::vector<std::vector<int32_t>> in, tgt;
  for (int slot = 0; slot < 2; ++slot) {
    in.push_back(rng.tokens(size_t(kB) * kT, c.vocab_size));
    tgt.push_back(rng.tokens(size_t(kB) * kT, c.vocab_size));
    const float want = cpu.forward(slot, in.back().data(), tgt.back().data(), none);
    const float got = gpu.forward(slot, in.back().data(), tgt.back().data(), none);
    check.check("stage loss, slot " + std::to_string(slot), {got}, {want}, kStepFp32);
  }
  for (int slot = 1; slot >= 0; --slot) {
    cpu.backward(slot, 0.5f, none);
    gpu.backward(slot, 0.5f, none);
  }
  std::vector<float> grads(gpu.num_params());
  cuda_check(cudaMemcpy(grads.data(), gpu.grads(), grads.size() * sizeof(float), cudaMemcpyDeviceToHost));
  // Per tensor of param_layout (its runs gathered from the layer-major buffer).
  const auto layout = dtb::param_layout(c);
  std::vector<std::vector<double>> got(layout.size()), want(layout.size());
  for (const dtb::ShardRun& r : gpu.runs()) {
    got[size_t(r.tensor)].insert(got[size_t(r.tensor)].end(), grads.begin() + long(r.local),
                                 grads.begin() + long(r.local + r.len));
    want[size_t(r.tensor)].insert(want[size_t(r.tensor)].end(), cpu.grads() + r.local, cpu.grads() + r.local + r.len);
  }
  for (size_t t = 0; t < layout.size(); ++t)
    check.check(std::string("stage grad ") + layout[t].name + " (layer-major, untied)", got[t], want[t], kStepFp32);
}

void misuse(Checker& check) {
  Model gpu(kConfig, kB, kT, Precision::kFp32);
  bool threw = false;
  try {
    gpu.backward();
  } catch (const std::logic_error&) {
    threw = true;
  }
  if (!threw) check.fail("backward() without a forward() with targets must throw");
  threw = false;
  try {
    Model bad(dtb::GPTConfig{251, 64, 2, 4, 60}, kB, kT, Precision::kFp32);  // C % 8 != 0
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  if (!threw) check.fail("n_embd = 60 must be refused (not a multiple of 8)");
}

}  // namespace

int main() {
  if (skip_without_gpu("test_cuda_model")) return kSkip;
  try {
    const uint64_t seed = test_seed();
    std::printf("test_cuda_model: seed %llu (DTB_TEST_SEED=%llu repeats this run)\n",
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
    dtb::set_num_threads(0);
    Random rng(seed);
    Checker check;
    for (Precision p : {Precision::kFp32, Precision::kBf16}) {
      one_step(p, rng, seed, check);
      five_steps(p, rng, seed, check);
    }
    stage_over_the_gpu_set(rng, seed, check);
    misuse(check);
    return check.finish("test_cuda_model");
  } catch (const std::exception& e) {
    std::printf("FAIL test_cuda_model: %s\n", e.what());
    return 1;
  }
}
