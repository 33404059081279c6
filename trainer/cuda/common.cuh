#pragma once
// Device-side building blocks shared by the kernels (CUDA sources only): 128-bit packs,
// conversions between the storage types and float, warp and block reductions.
// Every kernel computes in float whatever the storage type.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <library_types.h>

#include <cstddef>
#include <cstdint>

namespace dtb::cuda {

using bf16 = __nv_bfloat16;

// Sixteen bytes of T, moved by one 128-bit load or store (llm.c's Packed128): 4 floats or
// 8 bf16. Rows whose length is a multiple of 8 elements and that start 16-byte aligned can
// be walked pack by pack.
template <typename T>
struct alignas(16) Pack {
  static constexpr int size = int(16 / sizeof(T));
  T v[size];

  __device__ static Pack load(const T* p) { return *reinterpret_cast<const Pack*>(p); }
  // Streaming load: data read once, not worth keeping in cache.
  __device__ static Pack load_cs(const T* p) {
    Pack out;
    *reinterpret_cast<int4*>(out.v) = __ldcs(reinterpret_cast<const int4*>(p));
    return out;
  }
  __device__ void store(T* p) const { *reinterpret_cast<Pack*>(p) = *this; }
  __device__ void store_cs(T* p) const { __stcs(reinterpret_cast<int4*>(p), *reinterpret_cast<const int4*>(v)); }
  __device__ T& operator[](int i) { return v[i]; }
  __device__ const T& operator[](int i) const { return v[i]; }
};

// The cuBLAS / cuBLASLt type tag of a storage type.
template <typename floatX>
constexpr cudaDataType_t data_type() {
  if constexpr (sizeof(floatX) == 4)
    return CUDA_R_32F;
  else
    return CUDA_R_16BF;
}

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(bf16 x) { return __bfloat162float(x); }

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ bf16 from_float<bf16>(float x) {
  return __float2bfloat16_rn(x);
}

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarpSize = 32;

__device__ __forceinline__ float warp_sum(float x) {
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(kFullMask, x, offset);
  return x;
}
__device__ __forceinline__ float warp_max(float x) {
  for (int offset = 16; offset > 0; offset >>= 1) x = fmaxf(x, __shfl_xor_sync(kFullMask, x, offset));
  return x;
}

// Sum (or max) over the whole block; every thread gets the result. SHARED holds one float
// per warp. Ends with a barrier, so SHARED may be reused right after.
template <bool kMax>
__device__ float block_reduce(float x, float* shared) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  const int warps = (blockDim.x + kWarpSize - 1) / kWarpSize;
  x = kMax ? warp_max(x) : warp_sum(x);
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  float r = lane < warps ? shared[lane] : (kMax ? -INFINITY : 0.0f);
  r = kMax ? warp_max(r) : warp_sum(r);
  __syncthreads();
  return r;
}

inline unsigned ceil_div(size_t a, size_t b) { return unsigned((a + b - 1) / b); }

}  // namespace dtb::cuda
