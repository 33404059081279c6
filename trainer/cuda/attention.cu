// Causal multi-head attention the way llm.c's CUDA trainer does it without cuDNN:
// q, k, v permuted to (B, NH, T, hs), the two products as strided-batched cuBLAS gemms over
// the B*NH heads, and the softmax one warp per row with the scale and the causal mask fused.
// The (B, NH, T, T) probabilities are kept for the backward, as in cpu/. The gemms'
// row-major to column-major rewriting is in gemm_plans.cpp (tested on the CPU).
#include <stdexcept>
#include <string>
#include <type_traits>

#include "cuda/check.hpp"
#include "cuda/common.cuh"
#include "cuda/gemm_plans.hpp"
#include "cuda/kernels.hpp"

namespace dtb::cuda {
namespace {

constexpr int kThreads = 256;

// W tensors (B, NH, T, hs): q, k, v or their gradients (W = 3), or one (W = 1).
template <typename T>
struct Heads {
  T* part[3];
};

// Rows (B, T, W*C) <-> W tensors (B, NH, T, hs), assigned; one thread per element along the
// rows. Both layouts keep a head's hs values contiguous, so reads and writes coalesce in
// runs of hs either way. kToHeads: heads = rows (qkv -> q, k, v; dout -> dy), else
// rows = heads (y -> out; dq, dk, dv -> dqkv).
template <typename floatX, bool kToHeads>
__global__ void heads_kernel(Heads<std::conditional_t<kToHeads, floatX, const floatX>> heads,
                             std::conditional_t<kToHeads, const floatX, floatX>* rows, int W, int B, int T, int NH,
                             int hs) {
  const int C = NH * hs;
  const size_t WC = size_t(W) * C, i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;  // along (B, T, W*C)
  if (i >= size_t(B) * T * WC) return;
  const int wc = int(i % WC), bt = int(i / WC);
  const int which = wc / C, h = wc % C / hs, d = wc % hs, b = bt / T, t = bt % T;
  const size_t j = ((size_t(b) * NH + h) * T + t) * hs + d;  // along (B, NH, T, hs)
  if constexpr (kToHeads)
    heads.part[which][j] = __ldcs(&rows[i]);  // rows are read once
  else
    rows[i] = heads.part[which][j];
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

// The sizes both passes use, from (B, T, C, NH), checked once.
struct Dims {
  int B, T, NH, hs;
  int rows;         // B * NH * T softmax rows
  size_t btc;       // B * T * C: one head tensor
  float scale;      // 1 / sqrt(hs)
  int row_blocks;   // blocks of kThreads for one warp per softmax row
};

Dims dims_of(int B, int T, int C, int NH, const char* who) {
  if (NH < 1 || C % NH != 0)
    throw std::invalid_argument(std::string(who) + ": NH = " + std::to_string(NH) +
                                " must divide C = " + std::to_string(C));
  const int hs = C / NH, rows = B * NH * T;
  return {B, T, NH, hs, rows, size_t(B) * T * C, 1.0f / sqrtf(float(hs)), int(ceil_div(rows, kThreads / kWarpSize))};
}

// W head tensors from rows (B, T, W*C), or rows from them.
template <typename floatX>
void split_heads(Heads<floatX> heads, const floatX* rows, int W, const Dims& d, cudaStream_t s) {
  heads_kernel<floatX, true><<<ceil_div(W * d.btc, kThreads), kThreads, 0, s>>>(heads, rows, W, d.B, d.T, d.NH, d.hs);
  launch_check();
}
template <typename floatX>
void merge_heads(floatX* rows, Heads<const floatX> heads, int W, const Dims& d, cudaStream_t s) {
  heads_kernel<floatX, false><<<ceil_div(W * d.btc, kThreads), kThreads, 0, s>>>(heads, rows, W, d.B, d.T, d.NH, d.hs);
  launch_check();
}

}  // namespace

size_t attention_scratch_elems(int B, int T, int C, int NH) {
  // q, k, v, dy, dq, dk, dv: (B, NH, T, hs) each; datt: (B, NH, T, T).
  return 7 * size_t(B) * T * C + size_t(B) * NH * T * T;
}

template <typename floatX>
void attention_forward(Context& ctx, floatX* out, floatX* att, const floatX* qkv, int B, int T, int C, int NH,
                       floatX* scratch) {
  const Dims d = dims_of(B, T, C, NH, "attention_forward");
  if (d.btc == 0) return;
  const AttentionPlans plan = attention_plans(B, T, C, NH);
  const cudaStream_t s = ctx.stream();
  floatX *q = scratch, *k = q + d.btc, *v = k + d.btc, *y = v + d.btc;  // (B, NH, T, hs) each
  split_heads<floatX>({q, k, v}, qkv, 3, d, s);
  batched_gemm(ctx, plan.scores, k, q, att);
  softmax_forward_kernel<<<d.row_blocks, kThreads, 0, s>>>(att, d.scale, d.rows, T);
  launch_check();
  batched_gemm(ctx, plan.values, v, att, y);
  merge_heads<floatX>(out, {y}, 1, d, s);
}

template <typename floatX>
void attention_backward(Context& ctx, floatX* dqkv, const floatX* dout, const floatX* qkv, const floatX* att, int B,
                        int T, int C, int NH, floatX* scratch) {
  const Dims d = dims_of(B, T, C, NH, "attention_backward");
  if (d.btc == 0) return;
  const AttentionPlans plan = attention_plans(B, T, C, NH);
  const cudaStream_t s = ctx.stream();
  floatX *q = scratch, *k = q + d.btc, *v = k + d.btc, *dy = v + d.btc;  // (B, NH, T, hs) each
  floatX *dq = dy + d.btc, *dk = dq + d.btc, *dv = dk + d.btc;           // (B, NH, T, hs) each
  floatX* datt = dv + d.btc;                                             // (B, NH, T, T)
  split_heads<floatX>({q, k, v}, qkv, 3, d, s);
  split_heads<floatX>({dy}, dout, 1, d, s);
  batched_gemm(ctx, plan.datt, v, dy, datt);
  batched_gemm(ctx, plan.dv, dy, att, dv);
  softmax_backward_kernel<<<d.row_blocks, kThreads, 0, s>>>(datt, att, d.scale, d.rows, T);  // -> dscore
  launch_check();
  batched_gemm(ctx, plan.dq, k, datt, dq);
  batched_gemm(ctx, plan.dk, q, datt, dk);
  merge_heads<floatX>(dqkv, {dq, dk, dv}, 3, d, s);
}

#define DTB_INSTANTIATE(floatX)                                                                                      \
  template void attention_forward<floatX>(Context&, floatX*, floatX*, const floatX*, int, int, int, int, floatX*);   \
  template void attention_backward<floatX>(Context&, floatX*, const floatX*, const floatX*, const floatX*, int, int, \
                                           int, int, floatX*);
DTB_INSTANTIATE(float)
DTB_INSTANTIATE(bf16)
#undef DTB_INSTANTIATE

}  // namespace dtb::cuda
