// LayerNorm forward (plain and fused with the residual add) and backward, and the
// deterministic column sums that the LayerNorm and bias gradients share.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "cuda/check.hpp"
#include "cuda/column_sums.cuh"
#include "cuda/common.cuh"
#include "cuda/kernels.hpp"

namespace dtb::cuda {
namespace {

constexpr float kEps = 1e-5f;
constexpr int kRowsPerBlock = 8;  // one warp per row
constexpr int kThreads = kRowsPerBlock * kWarpSize;

// Mean and 1/std of one row, two passes as cpu/ (the second pass reads L1). All lanes
// return the same values.
template <typename floatX>
__device__ void row_stats(const floatX* x, int C, float* mean, float* rstd) {
  using P = Pack<floatX>;
  const int lane = threadIdx.x % kWarpSize;
  float sum = 0.0f;
  for (int c = lane * P::size; c < C; c += kWarpSize * P::size) {
    const P p = P::load(x + c);
    for (int k = 0; k < P::size; ++k) sum += to_float(p[k]);
  }
  const float m = warp_sum(sum) / float(C);
  float var = 0.0f;
  for (int c = lane * P::size; c < C; c += kWarpSize * P::size) {
    const P p = P::load(x + c);
    for (int k = 0; k < P::size; ++k) {
      const float d = to_float(p[k]) - m;
      var += d * d;
    }
  }
  *mean = m;
  *rstd = 1.0f / sqrtf(warp_sum(var) / float(C) + kEps);
}

template <typename floatX>
__device__ void normalize_row(floatX* out, const floatX* x, const floatX* weight, const floatX* bias, int C, float m,
                              float s) {
  using P = Pack<floatX>;
  const int lane = threadIdx.x % kWarpSize;
  for (int c = lane * P::size; c < C; c += kWarpSize * P::size) {
    const P xp = P::load(x + c), w = P::load(weight + c), b = P::load(bias + c);
    P o;
    for (int k = 0; k < P::size; ++k)
      o[k] = from_float<floatX>((to_float(xp[k]) - m) * s * to_float(w[k]) + to_float(b[k]));
    o.store_cs(out + c);
  }
}

template <typename floatX>
__global__ void layernorm_forward_kernel(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* weight,
                                         const floatX* bias, int N, int C) {
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= N) return;
  const floatX* x = inp + size_t(row) * C;  // (C)
  float m, s;
  row_stats(x, C, &m, &s);
  normalize_row(out + size_t(row) * C, x, weight, bias, C, m, s);
  if (threadIdx.x % kWarpSize == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

// The residual is rounded to floatX before the statistics, so forward and backward see the
// same stored values.
template <typename floatX>
__global__ void residual_layernorm_forward_kernel(floatX* residual, floatX* out, float* mean, float* rstd,
                                                  const floatX* inp1, const floatX* inp2, const floatX* weight,
                                                  const floatX* bias, int N, int C) {
  using P = Pack<floatX>;
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= N) return;
  const int lane = threadIdx.x % kWarpSize;
  const size_t off = size_t(row) * C;
  for (int c = lane * P::size; c < C; c += kWarpSize * P::size) {
    const P a = P::load_cs(inp1 + off + c), b = P::load_cs(inp2 + off + c);
    P r;
    for (int k = 0; k < P::size; ++k) r[k] = from_float<floatX>(to_float(a[k]) + to_float(b[k]));
    r.store(residual + off + c);
  }
  // Each lane reads back only the packs it wrote itself: no synchronization needed.
  float m, s;
  row_stats(residual + off, C, &m, &s);
  normalize_row(out + off, residual + off, weight, bias, C, m, s);
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

// dinp += (w*d - mean(w*d) - xhat * mean(w*d*xhat)) * rstd, one warp per row.
template <typename floatX>
__global__ void layernorm_backward_dinp_kernel(floatX* dinp, const floatX* dout, const floatX* inp,
                                               const floatX* weight, const float* mean, const float* rstd, int N,
                                               int C) {
  using P = Pack<floatX>;
  const int row = blockIdx.x * kRowsPerBlock + threadIdx.x / kWarpSize;
  if (row >= N) return;
  const int lane = threadIdx.x % kWarpSize;
  const size_t off = size_t(row) * C;
  const float m = mean[row], s = rstd[row];
  float dnorm = 0.0f, dnorm_xhat = 0.0f;
  for (int c = lane * P::size; c < C; c += kWarpSize * P::size) {
    const P d = P::load(dout + off + c), x = P::load(inp + off + c), w = P::load(weight + c);
    for (int k = 0; k < P::size; ++k) {
      const float wd = to_float(w[k]) * to_float(d[k]);
      dnorm += wd;
      dnorm_xhat += wd * (to_float(x[k]) - m) * s;
    }
  }
  dnorm = warp_sum(dnorm) / float(C);
  dnorm_xhat = warp_sum(dnorm_xhat) / float(C);
  for (int c = lane * P::size; c < C; c += kWarpSize * P::size) {
    const P d = P::load(dout + off + c), x = P::load(inp + off + c), w = P::load(weight + c);
    P g = P::load(dinp + off + c);
    for (int k = 0; k < P::size; ++k) {
      const float xhat = (to_float(x[k]) - m) * s;
      const float dx = (to_float(w[k]) * to_float(d[k]) - dnorm - xhat * dnorm_xhat) * s;
      g[k] = from_float<floatX>(to_float(g[k]) + dx);
    }
    g.store(dinp + off + c);
  }
}

void check_rows(int C, const char* who) {
  if (C % 8 != 0)
    throw std::invalid_argument(std::string(who) + ": C = " + std::to_string(C) + " must be a multiple of 8");
}

}  // namespace

size_t column_scratch_floats(int N, int C) { return 2 * size_t(column_chunks(N)) * size_t(C); }

template <typename floatX>
void layernorm_forward(floatX* out, float* mean, float* rstd, const floatX* inp, const floatX* weight,
                       const floatX* bias, int N, int C, cudaStream_t stream) {
  check_rows(C, "layernorm_forward");
  if (N == 0) return;
  layernorm_forward_kernel<<<ceil_div(N, kRowsPerBlock), kThreads, 0, stream>>>(out, mean, rstd, inp, weight, bias, N,
                                                                                C);
  launch_check();
}

template <typename floatX>
void residual_layernorm_forward(floatX* residual, floatX* out, float* mean, float* rstd, const floatX* inp1,
                                const floatX* inp2, const floatX* weight, const floatX* bias, int N, int C,
                                cudaStream_t stream) {
  check_rows(C, "residual_layernorm_forward");
  if (N == 0) return;
  residual_layernorm_forward_kernel<<<ceil_div(N, kRowsPerBlock), kThreads, 0, stream>>>(
      residual, out, mean, rstd, inp1, inp2, weight, bias, N, C);
  launch_check();
}

template <typename floatX>
void layernorm_backward(floatX* dinp, float* dweight, float* dbias, const floatX* dout, const floatX* inp,
                        const floatX* weight, const float* mean, const float* rstd, int N, int C, float* scratch,
                        cudaStream_t stream) {
  check_rows(C, "layernorm_backward");
  if (N == 0) return;
  layernorm_backward_dinp_kernel<<<ceil_div(N, kRowsPerBlock), kThreads, 0, stream>>>(dinp, dout, inp, weight, mean,
                                                                                      rstd, N, C);
  launch_check();
  column_sums(dweight, dbias, dout, inp, mean, rstd, N, C, scratch, stream);
}

#define DTB_INSTANTIATE(floatX)                                                                                      \
  template void layernorm_forward<floatX>(floatX*, float*, float*, const floatX*, const floatX*, const floatX*, int, \
                                          int, cudaStream_t);                                                        \
  template void residual_layernorm_forward<floatX>(floatX*, floatX*, float*, float*, const floatX*, const floatX*,   \
                                                   const floatX*, const floatX*, int, int, cudaStream_t);            \
  template void layernorm_backward<floatX>(floatX*, float*, float*, const floatX*, const floatX*, const floatX*,     \
                                           const float*, const float*, int, int, float*, cudaStream_t);
DTB_INSTANTIATE(float)
DTB_INSTANTIATE(bf16)
#undef DTB_INSTANTIATE

}  // namespace dtb::cuda
