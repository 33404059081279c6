#pragma once
// Can this build, on this machine, run the CUDA backend? Compiled into every build: the CPU
// build answers that it has no CUDA, so asking for device.backend = cuda always ends in one
// clear line and exit code 2 (UsageError), never in a link error or a crash. Needs no CUDA
// headers.
#include <string>

#include "config.hpp"

namespace dtb {

namespace cuda {

bool built_with_cuda();
// Usable CUDA devices (0 in a CPU build, or when the driver or the device is missing).
int device_count();
// "" when the CUDA backend can run here, else the reason in a few words, e.g.
// "no CUDA device (cudaGetDeviceCount: CUDA driver version is insufficient for CUDA runtime
// version)" or "this dtbench was built without CUDA (configure with -DDTB_CUDA=ON)".
std::string unavailable_reason();

}  // namespace cuda

// The config key that picks the backend: device.backend, cpu (default) or cuda.
KeySpec backend_key_spec();
// The CUDA backend's arithmetic: device.precision, fp32 (default: the CPU's numbers, within
// rounding) or bf16 (llm.c's mixed precision; cuda only).
KeySpec precision_key_spec();

// Throws UsageError naming the key, its origin and what is allowed when the config asks for
// something the backend cannot do: bf16 on the CPU, a width the GPU kernels cannot tile,
// or the CUDA backend where it cannot run (a CPU build; no usable GPU). The config's own
// mistakes come first, the machine's last, so they show on any machine. A config without
// the keys means cpu and fp32.
void check_backend(const Config& config);

}  // namespace dtb
