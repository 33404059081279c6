#include "cuda/availability.hpp"

#include <algorithm>

#ifdef DTB_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

namespace dtb {

namespace cuda {

bool built_with_cuda() {
#ifdef DTB_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

namespace {
// The device count, or the runtime's reason for none.
int query_devices(std::string* why) {
#ifdef DTB_HAVE_CUDA
  int count = 0;
  const cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    *why = std::string("no CUDA device (cudaGetDeviceCount: ") + cudaGetErrorString(status) + ")";
    cudaGetLastError();  // clear the sticky error state for later callers
    return 0;
  }
  if (count == 0) *why = "no CUDA device (cudaGetDeviceCount found 0)";
  return count;
#else
  *why = "this dtbench was built without CUDA (configure with -DDTB_CUDA=ON, e.g. cmake --preset cuda)";
  return 0;
#endif
}
}  // namespace

int device_count() {
  std::string why;
  return query_devices(&why);
}

std::string unavailable_reason() {
  std::string why;
  return query_devices(&why) > 0 ? std::string() : why;
}

}  // namespace cuda

KeySpec backend_key_spec() {
  return {"device.backend",
          KeyType::kChoice,
          "cpu",
          0,
          0,
          {"cpu", "cuda"},
          "compute backend: cpu, or cuda (a -DDTB_CUDA=ON build and an NVIDIA GPU)"};
}

void check_backend(const Config& config) {
  const auto& schema = config.schema();
  const bool has_key =
      std::any_of(schema.begin(), schema.end(), [](const KeySpec& s) { return s.key == "device.backend"; });
  if (!has_key || config.get_string("device.backend") != "cuda") return;
  const std::string why = cuda::unavailable_reason();
  if (!why.empty()) config.fail_constraint("device.backend", why);
}

}  // namespace dtb
