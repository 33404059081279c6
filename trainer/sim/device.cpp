#include "sim/device.hpp"

#include <algorithm>

#include "config.hpp"
#include "sim/paths.hpp"

namespace dtb::sim {
namespace {

// The keys of a device file. Peaks are dense (no 2:4 sparsity); 0 = not supported.
std::vector<KeySpec> device_schema() {
  using K = KeyType;
  std::vector<KeySpec> keys = {
      {"name", K::kString, "", 1, 0, {}, "what the device is"},
      {"source", K::kString, "", 1, 0, {}, "where the figures come from"},
      {"memory_gib", K::kFloat, "1", 0, 1e6, {}, "device memory, GiB", true},
      {"memory_bandwidth_gbs", K::kFloat, "0", 0, 1e6, {}, "memory bandwidth, GB/s (0 = unknown)"},
      {"efficiency", K::kFloat, "1", 0, 1, {}, "achievable fraction of peak for a training step", true},
  };
  for (const char* p : kPrecisionNames)
    keys.push_back({std::string("peak_tflops.") + p, K::kFloat, "0", 0, 1e6, {},
                    std::string("dense ") + p + " peak, TFLOP/s (0 = not supported)"});
  return keys;
}

}  // namespace

Precision parse_precision(const std::string& name) {
  for (size_t i = 0; i < kPrecisionNames.size(); ++i)
    if (name == kPrecisionNames[i]) return Precision(i);
  throw UsageError("precision '" + name + "': allowed: fp32, tf32, bf16, fp16");
}

int precision_bytes(Precision p) { return p == Precision::kFp32 || p == Precision::kTf32 ? 4 : 2; }

double Device::peak(Precision p) const {
  const double flops = peak_flops[size_t(p)];
  if (flops > 0) return flops;
  std::string have;
  for (size_t i = 0; i < kPrecisionNames.size(); ++i)
    if (peak_flops[i] > 0) have += (have.empty() ? "" : ", ") + std::string(kPrecisionNames[i]);
  throw UsageError("key 'precision.compute': device '" + name + "' (" + path + ") has no " +
                   kPrecisionNames[size_t(p)] + " peak; it has: " + have);
}

Device load_device(const std::string& name_or_path) {
  const std::string path = find_named(name_or_path, "configs/devices", "device.profile", "device");
  Config c(device_schema());
  c.merge_file(path);
  Device d;
  d.path = path;
  d.name = c.get_string("name").empty() ? name_or_path : c.get_string("name");
  d.source = c.get_string("source");
  for (size_t i = 0; i < kPrecisionNames.size(); ++i)
    d.peak_flops[i] = c.get_float(std::string("peak_tflops.") + kPrecisionNames[i]) * 1e12;
  d.memory_bytes = c.get_float("memory_gib") * double(1ull << 30);
  d.memory_bandwidth = c.get_float("memory_bandwidth_gbs") * 1e9;
  d.efficiency = c.get_float("efficiency");
  if (std::all_of(d.peak_flops.begin(), d.peak_flops.end(), [](double f) { return f == 0; }))
    throw UsageError(path + ": key 'peak_tflops': give the peak of at least one precision");
  return d;
}

std::string shipped_devices() { return yaml_stems("configs/devices"); }

}  // namespace dtb::sim
