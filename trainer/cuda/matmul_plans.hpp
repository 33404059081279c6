#pragma once
// The cuBLASLt algorithm chosen for each gemm shape, asked of cuBLASLt's heuristic once and
// kept for the context's life (a training step issues the same few shapes every step).
#include <cublasLt.h>

#include <array>
#include <cstdint>
#include <map>

namespace dtb::cuda {

struct LtPlanCache {
  // Key: transposes, m, n, k, leading dimensions, data types, epilogue, pointer alignments.
  using Key = std::array<int64_t, 16>;
  std::map<Key, cublasLtMatmulAlgo_t> algos;
};

}  // namespace dtb::cuda
