#include "cuda/context.hpp"

#include <cuda_bf16.h>

#include <cstdint>
#include <utility>

#include "cuda/check.hpp"
#include "cuda/matmul_plans.hpp"

namespace dtb::cuda {

namespace {
// cuBLASLt's workspace: Hopper's kernels want 32 MiB (llm.c uses the same), older GPUs 4.
size_t workspace_for(int cc) { return cc >= 90 ? size_t(32) << 20 : size_t(4) << 20; }
}  // namespace

Context::Context(int device) : device_(device), plans_(std::make_unique<LtPlanCache>()) {
  cuda_check(cudaSetDevice(device));
  cudaDeviceProp props{};
  cuda_check(cudaGetDeviceProperties(&props, device));
  name_ = props.name;
  sm_count_ = props.multiProcessorCount;
  cc_ = props.major * 10 + props.minor;
  cuda_check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  cublas_check(cublasCreate(&blas_));
  cublas_check(cublasSetStream(blas_, stream_));
  // Plain fp32 stays fp32: no TF32 unless a gemm asks for it.
  cublas_check(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
  cublas_check(cublasLtCreate(&lt_));
  workspace_bytes_ = workspace_for(cc_);
  cuda_check(cudaMalloc(&workspace_, workspace_bytes_));
  cublas_check(cublasSetWorkspace(blas_, workspace_, workspace_bytes_));
}

Context::~Context() {
  // Destructors must not throw: errors here are ignored (the process is going away or
  // the device is already broken).
  cudaStreamSynchronize(stream_);
  plans_.reset();
  cublasLtDestroy(lt_);
  cublasDestroy(blas_);
  cudaFree(workspace_);
  cudaStreamDestroy(stream_);
}

void Context::synchronize() const { cuda_check(cudaStreamSynchronize(stream_)); }

template <typename T>
DeviceBuffer<T>::DeviceBuffer(size_t count) : count_(count) {
  if (count > 0) cuda_check(cudaMalloc(reinterpret_cast<void**>(&ptr_), count * sizeof(T)));
}

template <typename T>
DeviceBuffer<T>::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

template <typename T>
DeviceBuffer<T>::DeviceBuffer(DeviceBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), count_(std::exchange(other.count_, 0)) {}

template <typename T>
DeviceBuffer<T>& DeviceBuffer<T>::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = std::exchange(other.ptr_, nullptr);
    count_ = std::exchange(other.count_, 0);
  }
  return *this;
}

template class DeviceBuffer<float>;
template class DeviceBuffer<double>;
template class DeviceBuffer<__nv_bfloat16>;
template class DeviceBuffer<int32_t>;

}  // namespace dtb::cuda
