// Token and position embeddings, forward and backward.
#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>

#include "cuda/check.hpp"
#include "cuda/common.cuh"
#include "cuda/kernels.hpp"

namespace dtb::cuda {
namespace {

constexpr int kThreads = 256;

// One thread per pack of C: out[bt] = wte[inp[bt]] + wpe[t].
template <typename floatX>
__global__ void encoder_forward_kernel(floatX* out, const int32_t* inp, const floatX* wte, const floatX* wpe, int BT,
                                       int T, int C) {
  using P = Pack<floatX>;
  const size_t packs_per_row = C / P::size;
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(BT) * packs_per_row) return;
  const int bt = int(i / packs_per_row);
  const int c = int(i % packs_per_row) * P::size;
  const P te = P::load(wte + size_t(inp[bt]) * C + c);
  const P pe = P::load(wpe + size_t(bt % T) * C + c);
  P o;
  for (int k = 0; k < P::size; ++k) o[k] = from_float<floatX>(to_float(te[k]) + to_float(pe[k]));
  o.store(out + size_t(bt) * C + c);
}

// Block (u, column tile): dwte[tokens[u]] += the rows of dout at that token's positions,
// summed in position order. Threads run along C: coalesced rows.
template <typename floatX>
__global__ void wte_backward_kernel(float* dwte, const floatX* dout, const int32_t* starts, const int32_t* tokens,
                                    const int32_t* positions, int C) {
  const int u = blockIdx.x;
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float sum = 0.0f;
  for (int j = starts[u]; j < starts[u + 1]; ++j) sum += to_float(dout[size_t(positions[j]) * C + c]);
  dwte[size_t(tokens[u]) * C + c] += sum;
}

// Block (t, column tile): dwpe[t] += sum over b of dout[b, t].
template <typename floatX>
__global__ void wpe_backward_kernel(float* dwpe, const floatX* dout, int B, int T, int C) {
  const int t = blockIdx.x;
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float sum = 0.0f;
  for (int b = 0; b < B; ++b) sum += to_float(dout[(size_t(b) * T + t) * C + c]);
  dwpe[size_t(t) * C + c] += sum;
}

void check_width(int C, const char* who) {
  if (C % 8 != 0)
    throw std::invalid_argument(std::string(who) + ": C = " + std::to_string(C) + " must be a multiple of 8");
}

}  // namespace

template <typename floatX>
void encoder_forward(floatX* out, const int32_t* inp, const floatX* wte, const floatX* wpe, int B, int T, int C,
                     cudaStream_t stream) {
  check_width(C, "encoder_forward");
  const size_t packs = size_t(B) * T * C / Pack<floatX>::size;
  if (packs == 0) return;
  encoder_forward_kernel<<<ceil_div(packs, kThreads), kThreads, 0, stream>>>(out, inp, wte, wpe, B * T, T, C);
  launch_check();
}

EncoderBuckets encoder_buckets(const int32_t* inp, int BT) {
  // Positions sorted by token, ties by position: a stable sort of 0..BT-1.
  std::vector<int32_t> order(static_cast<size_t>(BT));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return inp[a] < inp[b]; });
  std::vector<int32_t> starts, tokens;
  for (int j = 0; j < BT; ++j)
    if (j == 0 || inp[order[j]] != inp[order[j - 1]]) {
      starts.push_back(j);
      tokens.push_back(inp[order[j]]);
    }
  starts.push_back(BT);
  EncoderBuckets out;
  out.unique = int(tokens.size());
  out.positions = BT;
  out.data.reserve(starts.size() + tokens.size() + order.size());
  out.data.insert(out.data.end(), starts.begin(), starts.end());
  out.data.insert(out.data.end(), tokens.begin(), tokens.end());
  out.data.insert(out.data.end(), order.begin(), order.end());
  return out;
}

template <typename floatX>
void encoder_backward(float* dwte, float* dwpe, const floatX* dout, const int32_t* buckets, int unique, int B, int T,
                      int C, cudaStream_t stream) {
  if (B * T == 0 || C == 0) return;
  const int threads = std::min(kThreads, (C + 31) / 32 * 32);
  const unsigned tiles = ceil_div(size_t(C), size_t(threads));
  if (unique > 0) {
    const int32_t* starts = buckets;
    const int32_t* tokens = starts + unique + 1;
    const int32_t* positions = tokens + unique;
    wte_backward_kernel<<<dim3(unsigned(unique), tiles), threads, 0, stream>>>(dwte, dout, starts, tokens, positions,
                                                                               C);
    launch_check();
  }
  wpe_backward_kernel<<<dim3(unsigned(T), tiles), threads, 0, stream>>>(dwpe, dout, B, T, C);
  launch_check();
}

#define DTB_INSTANTIATE(floatX)                                                                               \
  template void encoder_forward<floatX>(floatX*, const int32_t*, const floatX*, const floatX*, int, int, int, \
                                        cudaStream_t);                                                        \
  template void encoder_backward<floatX>(float*, float*, const floatX*, const int32_t*, int, int, int, int,   \
                                         cudaStream_t);
DTB_INSTANTIATE(float)
DTB_INSTANTIATE(bf16)
#undef DTB_INSTANTIATE

}  // namespace dtb::cuda
