// dtb-cuda-bench: training steps of GPT-2 (124M by default, T = 1024) on one GPU, the
// tokens/s and the MFU: 6N + 6LCT FLOPs per token against the dense peak of the device
// (configs/devices, matched from the CUDA device name, or --peak-tflops). Random tokens:
// the speed does not depend on the data. Log lines as the trainer's (STYLE.md):
//   step 12/30 | loss 10.98 | norm 1.23 | lr 3.0e-04 | 41.2 ms | 40.3% MFU | 397311 tok/s
#include <chrono>
#include <cstdio>
#include <cxxopts.hpp>
#include <exception>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "cli/cli_common.hpp"
#include "cuda/availability.hpp"
#include "cuda/context.hpp"
#include "cuda/model.hpp"
#include "data/splitmix64.hpp"
#include "optim/adamw.hpp"
#include "sim/device.hpp"
#include "usage_error.hpp"

namespace {

using dtb::cuda::Model;
using dtb::cuda::Precision;

struct Options {
  dtb::GPTConfig model;
  int batch, seq_len, steps, warmup, device;
  Precision precision;
  double peak_tflops;  // 0: from the device profile
  std::string profile;
  uint64_t seed;
};

Options parse(int argc, char** argv) {
  cxxopts::Options o("dtb-cuda-bench", "GPT-2 training steps on one GPU: tokens/s and MFU.");
  o.add_options()("b,batch", "sequences per step B", cxxopts::value<int>()->default_value("16"))(
      "t,seq", "sequence length T", cxxopts::value<int>()->default_value("1024"))(
      "steps", "timed steps", cxxopts::value<int>()->default_value("30"))("warmup", "untimed steps first",
                                                                          cxxopts::value<int>()->default_value("3"))(
      "precision", "bf16 (mixed) or fp32", cxxopts::value<std::string>()->default_value("bf16"))(
      "layers", "n_layer", cxxopts::value<int>()->default_value("12"))(
      "heads", "n_head", cxxopts::value<int>()->default_value("12"))("embd", "n_embd",
                                                                     cxxopts::value<int>()->default_value("768"))(
      "vocab", "vocab_size", cxxopts::value<int>()->default_value("50257"))("device", "CUDA device index",
                                                                            cxxopts::value<int>()->default_value("0"))(
      "profile", "device profile (configs/devices name or .yaml; default: from the device name)",
      cxxopts::value<std::string>()->default_value(""))("peak-tflops",
                                                        "dense peak for the MFU, TFLOP/s (overrides the profile)",
                                                        cxxopts::value<double>()->default_value("0"))(
      "seed", "token seed", cxxopts::value<uint64_t>()->default_value("1337"))("h,help", "print this help");
  const cxxopts::ParseResult r = dtb::parse_or_usage(o, argc, argv);
  if (r.count("help")) {
    std::cout << o.help();
    std::exit(0);
  }
  Options x;
  x.batch = r["batch"].as<int>();
  x.seq_len = r["seq"].as<int>();
  x.steps = r["steps"].as<int>();
  x.warmup = r["warmup"].as<int>();
  x.device = r["device"].as<int>();
  x.model = {r["vocab"].as<int>(), x.seq_len, r["layers"].as<int>(), r["heads"].as<int>(), r["embd"].as<int>()};
  x.peak_tflops = r["peak-tflops"].as<double>();
  x.profile = r["profile"].as<std::string>();
  x.seed = r["seed"].as<uint64_t>();
  try {
    x.precision = dtb::cuda::parse_precision(r["precision"].as<std::string>());
  } catch (const std::invalid_argument& e) {
    throw dtb::UsageError(std::string("dtb-cuda-bench: --precision: ") + e.what());
  }
  if (x.batch < 1 || x.seq_len < 1 || x.steps < 1 || x.warmup < 0)
    throw dtb::UsageError("dtb-cuda-bench: --batch, --seq and --steps must be >= 1, --warmup >= 0");
  return x;
}

// The profile for a CUDA device name, where one ships: H100 SXM, H200, A100, V100.
std::string profile_for(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H200")) return "h200";
  if (has("H100") && !has("PCIe") && !has("NVL")) return "h100";
  if (has("A100")) return "a100";
  if (has("V100")) return "v100";
  return "";
}

struct Peak {
  double flops = 0;  // 0: unknown (MFU prints n/a)
  std::string source;
};

Peak find_peak(const Options& o, const std::string& device_name) {
  if (o.peak_tflops > 0) return {o.peak_tflops * 1e12, "--peak-tflops"};
  const std::string name = o.profile.empty() ? profile_for(device_name) : o.profile;
  if (name.empty()) return {0, "no profile for '" + device_name + "' (give --peak-tflops)"};
  const dtb::sim::Device d = dtb::sim::load_device(name);
  const auto p = o.precision == Precision::kBf16 ? dtb::sim::Precision::kBf16 : dtb::sim::Precision::kFp32;
  const double flops = d.peak_flops[size_t(p)];
  return {flops, d.path + " (" + d.name + ")"};
}

std::string mfu_text(double achieved_flops, double peak) {
  if (peak <= 0) return "n/a";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100.0 * achieved_flops / peak);
  return buf;
}

void random_tokens(std::vector<int32_t>& out, int vocab, uint64_t seed, uint64_t step) {
  dtb::SplitMix64 rng(seed ^ (0x9e3779b97f4a7c15ULL * (step + 1)));
  for (int32_t& t : out) t = int32_t(rng.next() % uint64_t(vocab));
}

int run(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (const std::string why = dtb::cuda::unavailable_reason(); !why.empty())
    throw dtb::UsageError("dtb-cuda-bench: " + why);
  Model model(o.model, o.batch, o.seq_len, o.precision, o.device);
  const std::string device_name = model.context().device_name();
  const Peak peak = find_peak(o, device_name);
  const double tokens = double(o.batch) * o.seq_len;
  std::printf("# device %d: %s, sm_%d, %d SMs; peak %s: %s\n", o.device, device_name.c_str(),
              model.context().compute_capability(), model.context().sm_count(), dtb::cuda::precision_name(o.precision),
              peak.flops > 0 ? (std::to_string(peak.flops / 1e12) + " TFLOP/s from " + peak.source).c_str()
                             : peak.source.c_str());
  std::printf("# model: %zu parameters, L=%d C=%d NH=%d V=%d, B=%d T=%d, %s, %.3g FLOP/token, %.2f GiB on the GPU\n",
              model.num_params(), o.model.n_layer, o.model.n_embd, o.model.n_head, o.model.vocab_size, o.batch,
              o.seq_len, dtb::cuda::precision_name(o.precision), model.flops_per_token(),
              double(model.device_bytes()) / double(1ull << 30));

  dtb::GPT<float> init(o.model, 1, 1);  // GPT-2's initialisation, drawn on the host
  init.init_weights(o.seed);
  model.set_params(init.params());

  dtb::OptimSettings optim{3e-4, 1.0, 0.9, 0.95, 1e-8, 0.1, 1.0, 0};
  std::vector<int32_t> inputs(size_t(o.batch) * o.seq_len), targets(inputs.size());
  double timed_ms = 0;
  for (int step = 0; step < o.warmup + o.steps; ++step) {
    random_tokens(inputs, o.model.vocab_size, o.seed, 2 * uint64_t(step));
    random_tokens(targets, o.model.vocab_size, o.seed, 2 * uint64_t(step) + 1);
    const auto start = std::chrono::steady_clock::now();
    const float loss = model.forward(inputs.data(), targets.data());
    model.zero_grad();
    model.backward();
    const double norm = model.grad_norm();
    const double lr = dtb::learning_rate(optim, step, o.warmup + o.steps);
    model.adamw_update({lr, optim.beta1, optim.beta2, optim.eps, optim.weight_decay, step + 1,
                        dtb::clip_scale(norm, optim.grad_clip)});
    model.context().synchronize();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    const double flops = model.flops_per_token() * tokens / (ms / 1e3);
    std::printf("step %4d/%d | loss %.4f | norm %.4f | lr %.1e | %.1f ms | %s MFU | %.0f tok/s%s\n", step + 1,
                o.warmup + o.steps, loss, norm, lr, ms, mfu_text(flops, peak.flops).c_str(), tokens / (ms / 1e3),
                step < o.warmup ? " (warm-up)" : "");
    if (step >= o.warmup) timed_ms += ms;
  }
  const double ms = timed_ms / o.steps;
  const double flops = model.flops_per_token() * tokens / (ms / 1e3);
  std::printf("summary: %d timed steps | %.2f ms/step | %.0f tok/s | %s MFU | %.1f TFLOP/s achieved\n", o.steps, ms,
              tokens / (ms / 1e3), mfu_text(flops, peak.flops).c_str(), flops / 1e12);
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return dtb::run_command(run, argc, argv); }
