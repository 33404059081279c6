#pragma once
// Column sums over N rows for the parameter gradients of LayerNorm (sum of dout * xhat and
// of dout) and of a bias (sum of dout), without atomics: each block sums a chunk of rows
// for a tile of 32 columns into a partial, then one thread per column adds the partials in
// chunk order. The chunking depends on N only, so the result is the same on every run and
// every GPU. Included by layernorm.cu and matmul.cu (CUDA sources only).
#include <algorithm>

#include "cuda/check.hpp"
#include "cuda/common.cuh"

namespace dtb::cuda {

constexpr int kColumnTile = 32;    // columns per block: one warp reads a row segment
constexpr int kColumnLanes = 8;    // warps per block, splitting the chunk's rows
constexpr int kRowsPerChunk = 64;  // at least, before the chunk count is capped

inline int column_chunks(int N) { return std::clamp((N + kRowsPerChunk - 1) / kRowsPerChunk, 1, 256); }

// kLayerNorm: partial[chunk] = sum of dout * xhat, partial[chunks + chunk] = sum of dout.
// Otherwise partial[chunk] = sum of dout (inp, mean, rstd unused).
template <typename floatX, bool kLayerNorm>
__global__ void column_partials_kernel(float* partial, const floatX* dout, int ld, const floatX* inp, const float* mean,
                                       const float* rstd, int N, int C, int rows_per_chunk) {
  __shared__ float s_a[kColumnLanes][kColumnTile];
  __shared__ float s_b[kColumnLanes][kColumnTile];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int c = blockIdx.x * kColumnTile + tx;
  const int r0 = blockIdx.y * rows_per_chunk, r1 = min(N, r0 + rows_per_chunk);
  float a = 0.0f, b = 0.0f;
  if (c < C)
    for (int r = r0 + ty; r < r1; r += kColumnLanes) {
      const float d = to_float(dout[size_t(r) * ld + c]);
      if constexpr (kLayerNorm) {
        a += (to_float(inp[size_t(r) * C + c]) - mean[r]) * rstd[r] * d;
        b += d;
      } else {
        a += d;
      }
    }
  s_a[ty][tx] = a;
  s_b[ty][tx] = b;
  __syncthreads();
  if (ty != 0 || c >= C) return;
  float sa = 0.0f, sb = 0.0f;
  for (int k = 0; k < kColumnLanes; ++k) {
    sa += s_a[k][tx];
    sb += s_b[k][tx];
  }
  partial[size_t(blockIdx.y) * C + c] = sa;
  if constexpr (kLayerNorm) partial[size_t(gridDim.y + blockIdx.y) * C + c] = sb;
}

// out_a[c] += sum over chunks of partial[chunk][c]; out_b likewise from the second half
// when not null.
__global__ inline void column_finalize_kernel(float* out_a, float* out_b, const float* partial, int chunks, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float a = 0.0f;
  for (int j = 0; j < chunks; ++j) a += partial[size_t(j) * C + c];
  out_a[c] += a;
  if (!out_b) return;
  float b = 0.0f;
  for (int j = 0; j < chunks; ++j) b += partial[size_t(chunks + j) * C + c];
  out_b[c] += b;
}

// LayerNorm (dweight, dbias both set, inp/mean/rstd given) or bias (dbias only: pass
// dweight = null). SCRATCH: column_scratch_floats(N, C).
template <typename floatX>
void column_sums(float* dweight, float* dbias, const floatX* dout, const floatX* inp, const float* mean,
                 const float* rstd, int N, int C, float* scratch, cudaStream_t stream, int ld = 0) {
  if (N == 0 || C == 0) return;
  const int chunks = column_chunks(N);
  const int rows_per_chunk = (N + chunks - 1) / chunks;
  const dim3 grid(ceil_div(C, kColumnTile), unsigned(chunks)), block(kColumnTile, kColumnLanes);
  const int row_stride = ld > 0 ? ld : C;
  if (dweight) {
    column_partials_kernel<floatX, true>
        <<<grid, block, 0, stream>>>(scratch, dout, row_stride, inp, mean, rstd, N, C, rows_per_chunk);
    launch_check();
    column_finalize_kernel<<<ceil_div(C, 256), 256, 0, stream>>>(dweight, dbias, scratch, chunks, C);
  } else {
    column_partials_kernel<floatX, false>
        <<<grid, block, 0, stream>>>(scratch, dout, row_stride, inp, mean, rstd, N, C, rows_per_chunk);
    launch_check();
    column_finalize_kernel<<<ceil_div(C, 256), 256, 0, stream>>>(dbias, nullptr, scratch, chunks, C);
  }
  launch_check();
}

}  // namespace dtb::cuda
