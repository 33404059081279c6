#pragma once
// Error checks for CUDA, cuBLAS and cuBLASLt calls: a failed call throws CudaError naming
// the call's file and line and the library's own message. Functions, not macros, so no
// control flow hides behind them:  cuda_check(cudaMalloc(&p, n));
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <source_location>
#include <stdexcept>
#include <string>

namespace dtb::cuda {

struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::string where(const std::source_location& at) {
  return std::string(at.file_name()) + ":" + std::to_string(at.line());
}

inline void cuda_check(cudaError_t status, std::source_location at = std::source_location::current()) {
  if (status != cudaSuccess)
    throw CudaError(where(at) + ": CUDA error " + cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
}

inline void cublas_check(cublasStatus_t status, std::source_location at = std::source_location::current()) {
  if (status != CUBLAS_STATUS_SUCCESS)
    throw CudaError(where(at) + ": cuBLAS error " + cublasGetStatusName(status) + ": " + cublasGetStatusString(status));
}

// After a kernel launch: a bad configuration shows here, a fault at the next sync.
inline void launch_check(std::source_location at = std::source_location::current()) {
  cuda_check(cudaGetLastError(), at);
}

}  // namespace dtb::cuda
