#pragma once
// One GPU's working set for the kernels: the compute stream, the cuBLAS and cuBLASLt
// handles (bound to that stream) and the cuBLASLt workspace. Everything a layer function
// enqueues goes onto stream(), in order; nothing here synchronizes.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <string>

namespace dtb::cuda {

struct LtPlanCache;  // matmul.cu: cuBLASLt algorithms chosen per gemm shape

class Context {
 public:
  // Makes DEVICE current and creates the stream and handles. Throws CudaError when the
  // device cannot be used.
  explicit Context(int device = 0);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  int device() const { return device_; }
  const std::string& device_name() const { return name_; }
  int sm_count() const { return sm_count_; }
  int compute_capability() const { return cc_; }  // 90 for Hopper
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t blas() const { return blas_; }
  cublasLtHandle_t lt() const { return lt_; }
  void* workspace() const { return workspace_; }
  size_t workspace_bytes() const { return workspace_bytes_; }
  LtPlanCache& plans() { return *plans_; }
  void synchronize() const;

 private:
  int device_ = 0, sm_count_ = 0, cc_ = 0;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cublasLtHandle_t lt_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  std::unique_ptr<LtPlanCache> plans_;
};

// A device allocation of COUNT elements of T, freed with its owner.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t count);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return ptr_; }
  size_t size() const { return count_; }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
};

}  // namespace dtb::cuda
