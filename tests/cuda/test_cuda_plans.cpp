// The host side of the CUDA backend, on the CPU (no GPU needed; built with -DDTB_CUDA=ON):
// every cuBLAS product plan (trainer/cuda/gemm_plans.hpp) run through a literal
// column-major gemm with cuBLAS's semantics must give cpu/kernels.hpp's linear layer and,
// with the permutes and the softmax written out here, its attention, forward and backward;
// and the embedding backward's token buckets must be a partition of the positions.
#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "cpu/kernels.hpp"
#include "cuda/gemm_plans.hpp"
#include "cuda/kernels.hpp"

namespace {

using dtb::cuda::GemmPlan;

// cuBLAS's gemm, literally: D_b = op(A_b) @ op(B_b) + beta D_b, column-major, for each batch
// member b; op(X)(i, j) = X[i + j*ld], or X[j + i*ld] when transposed.
void reference_gemm(const GemmPlan& p, const double* a, const double* b, double* d) {
  for (int s = 0; s < p.batch; ++s) {
    const double* A = a + s * p.stride_a;
    const double* B = b + s * p.stride_b;
    double* D = d + s * p.stride_d;
    for (int j = 0; j < p.n; ++j)
      for (int i = 0; i < p.m; ++i) {
        double sum = 0;
        for (int l = 0; l < p.k; ++l) {
          const double x = p.trans_a ? A[l + size_t(i) * p.lda] : A[i + size_t(l) * p.lda];
          const double y = p.trans_b ? B[j + size_t(l) * p.ldb] : B[l + size_t(j) * p.ldb];
          sum += x * y;
        }
        double& out = D[i + size_t(j) * p.ldd];
        out = sum + (p.beta != 0.0f ? double(p.beta) * out : 0.0);
      }
  }
}

std::vector<double> normal(std::mt19937_64& gen, size_t n) {
  std::normal_distribution<double> dist;
  std::vector<double> v(n);
  for (double& x : v) x = dist(gen);
  return v;
}

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::isnan(a[i]) ? INFINITY : std::abs(a[i] - b[i]));
  return m;
}

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kTol = 1e-12;

}  // namespace

TEST_CASE("linear layer plans give cpu/'s matmul, padded rows included") {
  std::mt19937_64 gen(7);
  struct Shape {
    int N, C, OC, ld;
  };
  for (const Shape sh : {Shape{7, 8, 5, 8}, Shape{33, 16, 24, 24}, Shape{5, 24, 13, 64}}) {
    const auto [N, C, OC, ld] = sh;
    INFO("N=" << N << " C=" << C << " OC=" << OC << " ld=" << ld);
    const auto inp = normal(gen, size_t(N) * C), w = normal(gen, size_t(OC) * C), dout = normal(gen, size_t(N) * OC);
    std::vector<double> want(size_t(N) * OC);
    dtb::matmul_forward(want.data(), inp.data(), w.data(), static_cast<const double*>(nullptr), N, C, OC);
    std::vector<double> out(size_t(N) * ld, kNaN);
    reference_gemm(dtb::cuda::linear_forward_plan(N, C, OC, ld), w.data(), inp.data(), out.data());
    std::vector<double> got;
    for (int r = 0; r < N; ++r) got.insert(got.end(), out.begin() + r * ld, out.begin() + r * ld + OC);
    CHECK(max_diff(got, want) < kTol);

    std::vector<double> dout_padded(size_t(N) * ld, kNaN);  // a plan that reads the padding shows NaN
    for (int r = 0; r < N; ++r) std::copy_n(dout.begin() + r * OC, OC, dout_padded.begin() + r * ld);
    std::vector<double> dinp_want(size_t(N) * C, 0.0), dw_want = normal(gen, size_t(OC) * C);
    std::vector<double> dinp(size_t(N) * C, kNaN), dw = dw_want;  // dinp assigned, dw accumulated
    dtb::matmul_backward(dinp_want.data(), dw_want.data(), static_cast<double*>(nullptr), dout.data(), inp.data(),
                         w.data(), N, C, OC);
    const GemmPlan dinp_plan = dtb::cuda::linear_dinp_plan(N, C, OC, ld);
    CHECK(dinp_plan.beta == 0.0f);
    reference_gemm(dinp_plan, w.data(), dout_padded.data(), dinp.data());
    reference_gemm(dtb::cuda::linear_dweight_plan(N, C, OC, ld), inp.data(), dout_padded.data(), dw.data());
    CHECK(max_diff(dinp, dinp_want) < kTol);
    CHECK(max_diff(dw, dw_want) < kTol);
  }
}

namespace {

// The attention of attention.cu with its kernels written out on the CPU: (B, T, 3C) ->
// heads (B, NH, T, hs), the plans, the causal softmax, and back.
struct HeadAttention {
  int B, T, C, NH, hs;
  size_t head_index(int b, int h, int t, int d) const { return ((size_t(b) * NH + h) * T + t) * hs + d; }
  size_t row_index(int b, int t, int c) const { return (size_t(b) * T + t) * C + c; }
  // (B, T, C) at column offset OFF of rows WIDTH long -> (B, NH, T, hs).
  std::vector<double> to_heads(const std::vector<double>& x, int width, int off) const {
    std::vector<double> out(size_t(B) * T * C);
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < NH; ++h)
        for (int t = 0; t < T; ++t)
          for (int d = 0; d < hs; ++d) out[head_index(b, h, t, d)] = x[(size_t(b) * T + t) * width + off + h * hs + d];
    return out;
  }
  std::vector<double> from_heads(const std::vector<double>& y) const {
    std::vector<double> out(size_t(B) * T * C);
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < NH; ++h)
        for (int t = 0; t < T; ++t)
          for (int d = 0; d < hs; ++d) out[row_index(b, t, h * hs + d)] = y[head_index(b, h, t, d)];
    return out;
  }
};

}  // namespace

TEST_CASE("attention plans give cpu/'s attention, forward and backward") {
  std::mt19937_64 gen(11);
  for (const auto [B, T, C, NH] : {std::array{2, 5, 8, 2}, std::array{1, 9, 12, 3}, std::array{2, 1, 8, 4}}) {
    INFO("B=" << B << " T=" << T << " C=" << C << " NH=" << NH);
    const HeadAttention h{B, T, C, NH, C / NH};
    const size_t btc = size_t(B) * T * C, att_n = size_t(B) * NH * T * T;
    const double scale = 1.0 / std::sqrt(double(h.hs));
    const auto qkv = normal(gen, 3 * btc), dout = normal(gen, btc);
    std::vector<double> out_want(btc), att_want(att_n), dqkv_want(3 * btc, 0.0);
    dtb::attention_forward(out_want.data(), att_want.data(), qkv.data(), B, T, C, NH);
    dtb::attention_backward(dqkv_want.data(), dout.data(), qkv.data(), att_want.data(), B, T, C, NH);

    const dtb::cuda::AttentionPlans plan = dtb::cuda::attention_plans(B, T, C, NH);
    const auto q = h.to_heads(qkv, 3 * C, 0), k = h.to_heads(qkv, 3 * C, C), v = h.to_heads(qkv, 3 * C, 2 * C);
    std::vector<double> att(att_n, kNaN), y(btc, kNaN);
    reference_gemm(plan.scores, k.data(), q.data(), att.data());
    for (size_t row = 0; row < size_t(B) * NH * T; ++row) {  // softmax_forward_kernel
      const int t = int(row % T);
      double* x = att.data() + row * T;
      double m = -INFINITY, sum = 0;
      for (int t2 = 0; t2 <= t; ++t2) m = std::max(m, x[t2] * scale);
      for (int t2 = 0; t2 <= t; ++t2) sum += std::exp(x[t2] * scale - m);
      for (int t2 = 0; t2 < T; ++t2) x[t2] = t2 <= t ? std::exp(x[t2] * scale - m) / sum : 0.0;
    }
    reference_gemm(plan.values, v.data(), att.data(), y.data());
    CHECK(max_diff(att, att_want) < kTol);
    CHECK(max_diff(h.from_heads(y), out_want) < kTol);

    const auto dy = h.to_heads(dout, C, 0);
    std::vector<double> datt(att_n, kNaN), dq(btc, kNaN), dk(btc, kNaN), dv(btc, kNaN);
    reference_gemm(plan.datt, v.data(), dy.data(), datt.data());
    reference_gemm(plan.dv, dy.data(), att.data(), dv.data());
    for (size_t row = 0; row < size_t(B) * NH * T; ++row) {  // softmax_backward_kernel
      const int t = int(row % T);
      double* g = datt.data() + row * T;
      const double* p = att.data() + row * T;
      double dot = 0;
      for (int t2 = 0; t2 <= t; ++t2) dot += p[t2] * g[t2];
      for (int t2 = 0; t2 < T; ++t2) g[t2] = t2 <= t ? p[t2] * (g[t2] - dot) * scale : 0.0;
    }
    reference_gemm(plan.dq, k.data(), datt.data(), dq.data());
    reference_gemm(plan.dk, q.data(), datt.data(), dk.data());
    std::vector<double> dqkv(3 * btc);
    const auto dq_rows = h.from_heads(dq), dk_rows = h.from_heads(dk), dv_rows = h.from_heads(dv);
    for (size_t bt = 0; bt < size_t(B) * T; ++bt)  // permute_backward_kernel
      for (int c = 0; c < C; ++c) {
        dqkv[bt * 3 * C + c] = dq_rows[bt * C + c];
        dqkv[bt * 3 * C + C + c] = dk_rows[bt * C + c];
        dqkv[bt * 3 * C + 2 * C + c] = dv_rows[bt * C + c];
      }
    CHECK(max_diff(dqkv, dqkv_want) < kTol);
  }
}

TEST_CASE("embedding backward buckets partition the positions by token, in order") {
  std::mt19937_64 gen(3);
  for (const int BT : {1, 2, 64, 1000}) {
    std::uniform_int_distribution<int32_t> tok(0, 40);
    std::vector<int32_t> inp(static_cast<size_t>(BT));
    for (int32_t& t : inp) t = tok(gen);
    const dtb::cuda::EncoderBuckets b = dtb::cuda::encoder_buckets(inp.data(), BT);
    const int U = b.unique;
    REQUIRE(b.positions == BT);
    REQUIRE(b.data.size() == size_t(U + 1 + U + BT));
    const int32_t* starts = b.data.data();
    const int32_t* tokens = starts + U + 1;
    const int32_t* positions = tokens + U;
    CHECK(starts[0] == 0);
    CHECK(starts[U] == BT);
    std::vector<int> seen(size_t(BT), 0);
    for (int u = 0; u < U; ++u) {
      CHECK(starts[u] < starts[u + 1]);
      if (u > 0) CHECK(tokens[u - 1] < tokens[u]);
      for (int j = starts[u]; j < starts[u + 1]; ++j) {
        CHECK(inp[size_t(positions[j])] == tokens[u]);
        if (j > starts[u]) CHECK(positions[j - 1] < positions[j]);
        ++seen[size_t(positions[j])];
      }
    }
    CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
  }
}

TEST_CASE("scratch sizes cover what the kernels carve") {
  // layernorm_backward and the bias gradient: two sets of per-chunk column partials.
  for (const int N : {1, 63, 64, 65, 16384, 1 << 20})
    CHECK(dtb::cuda::column_scratch_floats(N, 768) >= 2 * size_t(768));
  // attention: q, k, v, dy, dq, dk, dv and the (B, NH, T, T) scores.
  CHECK(dtb::cuda::attention_scratch_elems(2, 5, 8, 2) == 7 * 2 * 5 * 8 + 2 * 2 * 5 * 5);
}
