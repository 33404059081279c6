#pragma once
// A device profile (configs/devices/*.yaml): peak FLOP/s per precision, memory, memory
// bandwidth and the fraction of peak a transformer step achieves. The simulator divides
// FLOPs by peak x efficiency; the trainer's virtual clock can use the same model when it
// emulates GPUs. Checked as it enters (dtb::Config): unknown keys, values out of range and
// unknown device names throw UsageError with one line.
#include <array>
#include <string>

namespace dtb::sim {

enum class Precision { kFp32, kTf32, kBf16, kFp16 };
constexpr std::array<const char*, 4> kPrecisionNames = {"fp32", "tf32", "bf16", "fp16"};
Precision parse_precision(const std::string& name);  // one of kPrecisionNames
// Bytes of one stored value: 4 for fp32 and tf32 (tf32 is a matmul mode on fp32 data), else 2.
int precision_bytes(Precision p);

struct Device {
  std::string name, source, path;
  std::array<double, 4> peak_flops{};  // FLOP/s per Precision, dense; 0 = not supported
  double memory_bytes = 0;
  double memory_bandwidth = 0;         // bytes/s; 0 = unknown (optimizer time not modelled)
  double efficiency = 1;               // achievable fraction of peak for a training step

  // Peak for P; throws UsageError naming the device and the precisions it has.
  double peak(Precision p) const;
};

// NAME_OR_PATH: a shipped device ("h100": configs/devices/h100.yaml) or a .yaml path.
Device load_device(const std::string& name_or_path);

// The shipped device names, for help and errors ("a100, cpu-this-machine, h100, ...").
std::string shipped_devices();

}  // namespace dtb::sim
