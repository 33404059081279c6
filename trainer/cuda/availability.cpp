#include "cuda/availability.hpp"

#include <algorithm>

#include "cuda/model.hpp"  // kEmbdMultiple (the header needs no CUDA)

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

KeySpec precision_key_spec() {
  return {"device.precision",
          KeyType::kChoice,
          "fp32",
          0,
          0,
          {"fp32", "bf16"},
          "arithmetic of device.backend = cuda: fp32 (no TF32; the CPU's numbers) or bf16 (mixed, llm.c)"};
}

namespace {

bool has_key(const Config& config, const std::string& key) {
  const auto& schema = config.schema();
  return std::any_of(schema.begin(), schema.end(), [&](const KeySpec& s) { return s.key == key; });
}

std::string value_or(const Config& config, const std::string& key, const std::string& fallback) {
  return has_key(config, key) ? config.get_string(key) : fallback;
}

}  // namespace

void check_backend(const Config& config) {
  const bool on_gpu = value_or(config, "device.backend", "cpu") == "cuda";
  if (!on_gpu && value_or(config, "device.precision", "fp32") != "fp32")
    config.fail_constraint("device.precision", "the CPU backend computes in fp32; bf16 needs device.backend = cuda");
  if (!on_gpu) return;
  if (has_key(config, "model.n_embd") && config.get_int("model.n_embd") % cuda::kEmbdMultiple != 0)
    config.fail_constraint("model.n_embd", "must be a multiple of " + std::to_string(cuda::kEmbdMultiple) +
                                               " with device.backend = cuda (the GPU kernels move rows in "
                                               "128-bit packs)");
  if (has_key(config, "model.tie_embeddings") && !config.get_bool("model.tie_embeddings"))
    config.fail_constraint("model.tie_embeddings", "must be true with device.backend = cuda (the GPU model ties its "
                                                   "LM head to wte; untied runs on the CPU)");
  const std::string why = cuda::unavailable_reason();
  if (!why.empty()) config.fail_constraint("device.backend", why);
}

}  // namespace dtb
