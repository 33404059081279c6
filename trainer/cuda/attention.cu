// Causal multi-head attention the way llm.c's CUDA trainer does it without cuDNN:
// q, k, v permuted to (B, NH, T, hs), the two products as strided-batched cuBLAS gemms over
// the B*NH heads, and the softmax one warp per row with the scale and the causal mask fused.
// The (B, NH, T, T) probabilities are kept for the backward, as in cpu/. The gemms'
// row-major to column-major rewriting is in gemm_plans.cpp (tested on the CPU).
#include <stdexcept>
#include <string>

#include "cuda/check.hpp"
#include "cuda/common.cuh"
#include "cuda/gemm_plans.hpp"
#include "cuda/kernels.hpp"

namespace dtb::cuda {
namespace {

constexpr int kThreads = 256;

template <typename floatX>
constexpr cudaDataType_t data_type() {
  if constexpr (sizeof(floatX) == 4)
    return CUDA_R_32F;
  else
    return CUDA_R_16BF;
}

// qkv (B, T, 3, NH, hs) -> q, k, v (B, NH, T, hs) each; one thread per element of q.
template <typename floatX>
__global__ void permute_kernel(floatX* q, floatX* k, floatX* v, const floatX* qkv, int B, int T, int NH, int hs) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(B) * NH * T * hs) return;
  const int d = int(i % hs), t = int(i / hs % T), h = int(i / (size_t(hs) * T) % NH);
  const int b = int(i / (size_t(hs) * T * NH));
  const int C = NH * hs;
  const size_t src = (size_t(b) * T + t) * 3 * C + size_t(h) * hs + d;
  q[i] = __ldcs(&qkv[src]);
  k[i] = __ldcs(&qkv[src + C]);
  v[i] = __ldcs(&qkv[src + 2 * C]);
}

// The inverse for the gradients: dq, dk, dv (B, NH, T, hs) -> dqkv (B, T, 3C), assigned.
// One thread per element of dqkv, so the writes are coalesced.
template <typename floatX>
__global__ void permute_backward_kernel(floatX* dqkv, const floatX* dq, const floatX* dk, const floatX* dv, int B,
                                        int T, int NH, int hs) {
  const int C = NH * hs;
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(B) * T * 3 * C) return;
  const int c3 = int(i % (3 * C)), bt = int(i / (3 * C));
  const int which = c3 / C, h = c3 % C / hs, d = c3 % hs;
  const int b = bt / T, t = bt % T;
  const size_t src = ((size_t(b) * NH + h) * T + t) * hs + d;
  dqkv[i] = which == 0 ? dq[src] : which == 1 ? dk[src] : dv[src];
}

// (B, T, C) <-> (B, NH, T, hs), one thread per element, indexed along (B, T, C).
// kToHeads: dst (B, NH, T, hs) = src (B, T, C) (dout to dy); else the inverse (y to out).
template <typename floatX, bool kToHeads>
__global__ void reshape_heads_kernel(floatX* dst, const floatX* src, int B, int T, int NH, int hs) {
  const int C = NH * hs;
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;  // index along (B, T, C)
  if (i >= size_t(B) * T * C) return;
  const int c = int(i % C), bt = int(i / C);
  const int h = c / hs, d = c % hs, b = bt / T, t = bt % T;
  const size_t j = ((size_t(b) * NH + h) * T + t) * hs + d;  // index along (B, NH, T, hs)
  if constexpr (kToHeads)
    dst[j] = src[i];
  else
    dst[i] = src[j];
}

// In place on one row of att per warp: scores (unscaled q.k) -> probabilities; the row's
// causal part t2 <= t is softmax(scale * score), the rest 0. Online max and sum in one
// read, the normalized values in a second.
template <typename floatX>
__global__ void softmax_forward_kernel(floatX* att, float scale, int rows, int T) {
  const int row = blockIdx.x * (blockDim.x / kWarpSize) + threadIdx.x / kWarpSize;
  if (row >= rows) return;
  const int lane = threadIdx.x % kWarpSize;
  const int t = row % T;
  floatX* x = att + size_t(row) * T;  // (T)
  float maxv = -INFINITY, sum = 0.0f;
  for (int t2 = lane; t2 <= t; t2 += kWarpSize) {
    const float s = to_float(x[t2]) * scale;
    if (s > maxv) {
      sum = sum * expf(maxv - s) + 1.0f;
      maxv = s;
    } else {
      sum += expf(s - maxv);
    }
  }
  const float row_max = warp_max(maxv);
  sum = lane <= t ? sum * expf(maxv - row_max) : 0.0f;  // lanes past t saw nothing
  const float inv = 1.0f / warp_sum(sum);
  for (int t2 = lane; t2 < T; t2 += kWarpSize) {
    const float p = t2 <= t ? expf(to_float(x[t2]) * scale - row_max) * inv : 0.0f;
    x[t2] = from_float<floatX>(p);
  }
}

// In place on one row of datt per warp: dscore = att * (datt - sum(att * datt)) * scale on
// the causal part, 0 above it.
template <typename floatX>
__global__ void softmax_backward_kernel(floatX* datt, const floatX* att, float scale, int rows, int T) {
  const int row = blockIdx.x * (blockDim.x / kWarpSize) + threadIdx.x / kWarpSize;
  if (row >= rows) return;
  const int lane = threadIdx.x % kWarpSize;
  const int t = row % T;
  floatX* g = datt + size_t(row) * T;       // (T)
  const floatX* p = att + size_t(row) * T;  // (T)
  float dot = 0.0f;
  for (int t2 = lane; t2 <= t; t2 += kWarpSize) dot += to_float(p[t2]) * to_float(g[t2]);
  dot = warp_sum(dot);
  for (int t2 = lane; t2 < T; t2 += kWarpSize) {
    const float d = t2 <= t ? to_float(p[t2]) * (to_float(g[t2]) - dot) * scale : 0.0f;
    g[t2] = from_float<floatX>(d);
  }
}

// A batched plan (gemm_plans.hpp) on cuBLAS.
template <typename floatX>
void batched_gemm(Context& ctx, const GemmPlan& p, const floatX* a, const floatX* b, floatX* d) {
  const float alpha = 1.0f;
  constexpr cudaDataType_t t = data_type<floatX>();
  cublas_check(cublasGemmStridedBatchedEx(ctx.blas(), p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                          p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, p.m, p.n, p.k, &alpha, a, t, p.lda,
                                          p.stride_a, b, t, p.ldb, p.stride_b, &p.beta, d, t, p.ldd, p.stride_d,
                                          p.batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

void check_shape(int C, int NH, const char* who) {
  if (NH < 1 || C % NH != 0)
    throw std::invalid_argument(std::string(who) + ": NH = " + std::to_string(NH) +
                                " must divide C = " + std::to_string(C));
}

}  // namespace

size_t attention_scratch_elems(int B, int T, int C, int NH) {
  // q, k, v, dy, dq, dk, dv: (B, NH, T, hs) each; datt: (B, NH, T, T).
  return 7 * size_t(B) * T * C + size_t(B) * NH * T * T;
}

template <typename floatX>
void attention_forward(Context& ctx, floatX* out, floatX* att, const floatX* qkv, int B, int T, int C, int NH,
                       floatX* scratch) {
  check_shape(C, NH, "attention_forward");
  const size_t btc = size_t(B) * T * C;
  if (btc == 0) return;
  const int hs = C / NH, rows = B * NH * T, warps = kThreads / kWarpSize;
  const float scale = 1.0f / sqrtf(float(hs));
  const AttentionPlans plan = attention_plans(B, T, C, NH);
  const cudaStream_t s = ctx.stream();
  floatX *q = scratch, *k = q + btc, *v = k + btc, *y = v + btc;  // (B, NH, T, hs) each
  permute_kernel<<<ceil_div(btc, kThreads), kThreads, 0, s>>>(q, k, v, qkv, B, T, NH, hs);
  launch_check();
  batched_gemm(ctx, plan.scores, k, q, att);
  softmax_forward_kernel<<<ceil_div(rows, warps), kThreads, 0, s>>>(att, scale, rows, T);
  launch_check();
  batched_gemm(ctx, plan.values, v, att, y);
  reshape_heads_kernel<floatX, false><<<ceil_div(btc, kThreads), kThreads, 0, s>>>(out, y, B, T, NH, hs);
  launch_check();
}

template <typename floatX>
void attention_backward(Context& ctx, floatX* dqkv, const floatX* dout, const floatX* qkv, const floatX* att, int B,
                        int T, int C, int NH, floatX* scratch) {
  check_shape(C, NH, "attention_backward");
  const size_t btc = size_t(B) * T * C;
  if (btc == 0) return;
  const int hs = C / NH, rows = B * NH * T, warps = kThreads / kWarpSize;
  const float scale = 1.0f / sqrtf(float(hs));
  const AttentionPlans plan = attention_plans(B, T, C, NH);
  const cudaStream_t s = ctx.stream();
  floatX *q = scratch, *k = q + btc, *v = k + btc, *dy = v + btc;  // (B, NH, T, hs) each
  floatX *dq = dy + btc, *dk = dq + btc, *dv = dk + btc;           // (B, NH, T, hs) each
  floatX* datt = dv + btc;                                         // (B, NH, T, T)
  permute_kernel<<<ceil_div(btc, kThreads), kThreads, 0, s>>>(q, k, v, qkv, B, T, NH, hs);
  launch_check();
  reshape_heads_kernel<floatX, true><<<ceil_div(btc, kThreads), kThreads, 0, s>>>(dy, dout, B, T, NH, hs);
  launch_check();
  batched_gemm(ctx, plan.datt, v, dy, datt);
  batched_gemm(ctx, plan.dv, dy, att, dv);
  softmax_backward_kernel<<<ceil_div(rows, warps), kThreads, 0, s>>>(datt, att, scale, rows, T);  // -> dscore
  launch_check();
  batched_gemm(ctx, plan.dq, k, datt, dq);
  batched_gemm(ctx, plan.dk, q, datt, dk);
  permute_backward_kernel<<<ceil_div(3 * btc, kThreads), kThreads, 0, s>>>(dqkv, dq, dk, dv, B, T, NH, hs);
  launch_check();
}

#define DTB_INSTANTIATE(floatX)                                                                                      \
  template void attention_forward<floatX>(Context&, floatX*, floatX*, const floatX*, int, int, int, int, floatX*);   \
  template void attention_backward<floatX>(Context&, floatX*, const floatX*, const floatX*, const floatX*, int, int, \
                                           int, int, floatX*);
DTB_INSTANTIATE(float)
DTB_INSTANTIATE(bf16)
#undef DTB_INSTANTIATE

}  // namespace dtb::cuda
