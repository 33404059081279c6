// CPU kernels (see kernels.hpp for the conventions). Hand-written loops are shaped so that
// GCC vectorises them without -ffast-math: reductions run in kLanes independent partial
// sums combined in a fixed order (deterministic, and the partial sums fill a SIMD
// register), and elementwise loops have a contiguous innermost index.
#include "cpu/kernels.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

namespace dtb {
namespace {

constexpr int kLanes = 8;              // partial sums per reduction: one AVX register of floats
constexpr int kColumnBlock = 64;       // columns per task in the column-parallel reductions
constexpr double kMinGemmFlops = 4e6;  // per thread: below, waking a thread costs more
constexpr int kGemmAlign = 16;         // gemm blocks start on whole SIMD tiles of the BLAS kernel

// Sum of term(i) for i in [0, n) in kLanes interleaved partial sums.
template <typename Real, typename F>
inline Real lane_sum(int n, F term) {
  Real acc[kLanes] = {};
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += term(i + j);
  Real s = 0;
  for (; i < n; ++i) s += term(i);
  for (int j = 0; j < kLanes; ++j) s += acc[j];
  return s;
}

template <typename Real>
inline Real lane_max(const Real* x, int n) {
  Real acc[kLanes];
  std::fill(acc, acc + kLanes, -std::numeric_limits<Real>::infinity());
  int i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] = std::max(acc[j], x[i + j]);
  Real m = -std::numeric_limits<Real>::infinity();
  for (; i < n; ++i) m = std::max(m, x[i]);
  for (int j = 0; j < kLanes; ++j) m = std::max(m, acc[j]);
  return m;
}

template <typename Real>
inline Real dot(const Real* a, const Real* b, int n) {
  return lane_sum<Real>(n, [&](int i) { return a[i] * b[i]; });
}

// y += alpha * x
template <typename Real>
inline void axpy(Real* y, Real alpha, const Real* x, int n) {
  for (int i = 0; i < n; ++i) y[i] += alpha * x[i];
}

// Calls body(c0, c1) on blocks of columns in parallel. Used for parameter gradients that
// sum over all rows: each column is summed by one thread in row order, so the result does
// not depend on the number of threads.
template <typename F>
void for_column_blocks(int C, F body) {
  const int blocks = (C + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static)
  for (int blk = 0; blk < blocks; ++blk)
    body(blk * kColumnBlock, std::min(C, (blk + 1) * kColumnBlock));
}

void blas_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, float alpha,
               const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
void blas_call(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k, double alpha,
               const double* a, int lda, const double* b, int ldb, double beta, double* c,
               int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace

// ------------------------------------------------------------------------------ encoder

template <typename Real>
void encoder_forward(Real* out, const int32_t* inp, const Real* wte, const Real* wpe, int B, int T, int C,
                     VocabSlice vocab) {
#pragma omp parallel for schedule(static)
  for (int bt = 0; bt < B * T; ++bt) {
    Real* o = out + size_t(bt) * C;  // (C)
    const Real* te = vocab.holds(inp[bt]) ? wte + size_t(inp[bt] - vocab.lo) * C : nullptr;
    const Real* pe = wpe ? wpe + size_t(bt % T) * C : nullptr;
    for (int i = 0; i < C; ++i) o[i] = (te ? te[i] : Real(0)) + (pe ? pe[i] : Real(0));
  }
}

template <typename Real>
void encoder_backward(Real* dwte, Real* dwpe, const Real* dout, const int32_t* inp, int B, int T, int C,
                      VocabSlice vocab) {
  // Several positions may share a token, so split by columns, not by rows.
  for_column_blocks(C, [&](int c0, int c1) {
    for (int bt = 0; bt < B * T; ++bt) {
      const Real* d = dout + size_t(bt) * C;
      if (vocab.holds(inp[bt])) {
        Real* dte = dwte + size_t(inp[bt] - vocab.lo) * C;
        for (int i = c0; i < c1; ++i) dte[i] += d[i];
      }
      if (dwpe) {
        Real* dpe = dwpe + size_t(bt % T) * C;
        for (int i = c0; i < c1; ++i) dpe[i] += d[i];
      }
    }
  });
}

// ---------------------------------------------------------------------------- layernorm

template <typename Real>
void layernorm_forward(Real* out, Real* mean, Real* rstd, const Real* inp, const Real* weight,
                       const Real* bias, int N, int C) {
  const Real eps = Real(1e-5);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < N; ++r) {
    const Real* x = inp + size_t(r) * C;  // (C)
    const Real m = lane_sum<Real>(C, [&](int i) { return x[i]; }) / C;
    const Real var = lane_sum<Real>(C, [&](int i) { return (x[i] - m) * (x[i] - m); }) / C;
    const Real s = Real(1) / std::sqrt(var + eps);
    Real* o = out + size_t(r) * C;  // (C)
    for (int i = 0; i < C; ++i) o[i] = (x[i] - m) * s * weight[i] + bias[i];
    mean[r] = m;
    rstd[r] = s;
  }
}

template <typename Real>
void layernorm_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp,
                        const Real* weight, const Real* mean, const Real* rstd, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < N; ++r) {
    const Real* x = inp + size_t(r) * C;   // (C)
    const Real* d = dout + size_t(r) * C;  // (C)
    const Real m = mean[r], s = rstd[r];
    const Real dnorm_mean = lane_sum<Real>(C, [&](int i) { return weight[i] * d[i]; }) / C;
    const Real dnorm_norm_mean =
        lane_sum<Real>(C, [&](int i) { return weight[i] * d[i] * (x[i] - m) * s; }) / C;
    Real* dx = dinp + size_t(r) * C;  // (C)
    for (int i = 0; i < C; ++i)
      dx[i] += (weight[i] * d[i] - dnorm_mean - (x[i] - m) * s * dnorm_norm_mean) * s;
  }
  for_column_blocks(C, [&](int c0, int c1) {
    for (int r = 0; r < N; ++r) {
      const Real* x = inp + size_t(r) * C;
      const Real* d = dout + size_t(r) * C;
      const Real m = mean[r], s = rstd[r];
      for (int i = c0; i < c1; ++i) {
        dweight[i] += (x[i] - m) * s * d[i];
        dbias[i] += d[i];
      }
    }
  });
}

// ------------------------------------------------------------------------------- matmul

std::array<GemmShape, 3> matmul_gemms(int N, int C, int OC, bool has_bias) {
  return {{
      {false, true, N, OC, C, has_bias},  // out = inp @ W^T (+ out, pre-filled with bias)
      {false, false, N, C, OC, true},     // dinp += dout @ W
      {true, false, OC, C, N, true},      // dW += dout^T @ inp
  }};
}

namespace {
// Rows [lo, hi) of c, or columns when by_columns, as one BLAS call on contiguous row-major
// operands: a is (m, k), or (k, m) when transposed; b is (k, n), or (n, k).
template <typename Real>
void gemm_part(const GemmShape& s, const Real* a, const Real* b, Real* c, bool by_columns, int lo,
               int hi) {
  const int lda = s.trans_a ? s.m : s.k, ldb = s.trans_b ? s.k : s.n;
  const auto ta = s.trans_a ? CblasTrans : CblasNoTrans;
  const auto tb = s.trans_b ? CblasTrans : CblasNoTrans;
  const Real beta = s.accumulate ? Real(1) : Real(0);
  if (by_columns)
    blas_call(ta, tb, s.m, hi - lo, s.k, Real(1), a, lda,
              b + (s.trans_b ? size_t(lo) * s.k : size_t(lo)), ldb, beta, c + lo, s.n);
  else
    blas_call(ta, tb, hi - lo, s.n, s.k, Real(1), a + (s.trans_a ? size_t(lo) : size_t(lo) * s.k),
              lda, b, ldb, beta, c + size_t(lo) * s.n, s.n);
}
}  // namespace

template <typename Real>
void blas_gemm(const GemmShape& s, const Real* a, const Real* b, Real* c) {
  gemm_part(s, a, b, c, true, 0, s.n);
}

template <typename Real>
void gemm(const GemmShape& s, const Real* a, const Real* b, Real* c) {
  // BLAS runs single-threaded inside the OpenMP team (OpenBLAS's advice for threaded
  // callers): OpenBLAS's own thread pool and OpenMP's would busy-wait against each other on
  // the same cores (measured: the 124M training step took twice as long). Checked on every
  // call because the benchmark's reference gives BLAS its threads back.
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
  // Each thread computes a block of whole rows or whole columns of c (whichever dimension
  // is longer), so every element is one thread's full-length sum: deterministic.
  const bool by_columns = s.n >= s.m;
  const int len = by_columns ? s.n : s.m;
  const int teams = std::clamp(int(std::min<double>(s.flops() / kMinGemmFlops, len / kGemmAlign)),
                               1, omp_get_max_threads());
  if (teams == 1) return gemm_part(s, a, b, c, by_columns, 0, len);
#pragma omp parallel num_threads(teams)
  {
    const int nt = omp_get_num_threads(), id = omp_get_thread_num();
    const int per = ((len + nt - 1) / nt + kGemmAlign - 1) / kGemmAlign * kGemmAlign;
    const int lo = std::min(len, id * per), hi = std::min(len, lo + per);
    if (lo < hi) gemm_part(s, a, b, c, by_columns, lo, hi);
  }
}

template <typename Real>
void matmul_forward(Real* out, const Real* inp, const Real* weight, const Real* bias, int N, int C,
                    int OC) {
  if (bias) {
    // Pre-fill with the bias so that the gemm adds it in its own pass over out.
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; ++r) std::memcpy(out + size_t(r) * OC, bias, sizeof(Real) * OC);
  }
  gemm(matmul_gemms(N, C, OC, bias != nullptr)[0], inp, weight, out);
}

template <typename Real>
void matmul_backward(Real* dinp, Real* dweight, Real* dbias, const Real* dout, const Real* inp,
                     const Real* weight, int N, int C, int OC) {
  const auto shapes = matmul_gemms(N, C, OC, dbias != nullptr);
  gemm(shapes[1], dout, weight, dinp);
  gemm(shapes[2], dout, inp, dweight);
  if (!dbias) return;
  for_column_blocks(OC, [&](int c0, int c1) {
    for (int r = 0; r < N; ++r) {
      const Real* d = dout + size_t(r) * OC;
      for (int o = c0; o < c1; ++o) dbias[o] += d[o];
    }
  });
}

// ---------------------------------------------------------------------------- attention

template <typename Real>
void attention_forward(Real* out, Real* att, const Real* qkv, int B, int T, int C, int NH) {
  const int hs = C / NH;
  const Real scale = Real(1) / std::sqrt(Real(hs));
  const size_t C3 = size_t(3) * C;
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int t = 0; t < T; ++t) {
        const Real* q = qkv + (size_t(b) * T + t) * C3 + h * hs;  // (hs)
        Real* row = att + ((size_t(b) * NH + h) * T + t) * T;     // (T)
        for (int t2 = 0; t2 <= t; ++t2) {
          const Real* k = qkv + (size_t(b) * T + t2) * C3 + C + h * hs;  // (hs)
          row[t2] = dot(q, k, hs) * scale;
        }
        const Real maxv = lane_max(row, t + 1);
        Real sum = 0;
        for (int t2 = 0; t2 <= t; ++t2) {
          row[t2] = std::exp(row[t2] - maxv);
          sum += row[t2];
        }
        const Real inv = Real(1) / sum;
        for (int t2 = 0; t2 <= t; ++t2) row[t2] *= inv;
        for (int t2 = t + 1; t2 < T; ++t2) row[t2] = 0;

        Real* o = out + (size_t(b) * T + t) * C + h * hs;  // (hs)
        std::fill(o, o + hs, Real(0));
        for (int t2 = 0; t2 <= t; ++t2)
          axpy(o, row[t2], qkv + (size_t(b) * T + t2) * C3 + 2 * C + h * hs, hs);
      }
}

// attention_forward's arithmetic for one query row t = pos[r] at a time, its keys and
// values read from a cache instead of the batch (generation, model/stage.hpp's forward_cached).
template <typename Real>
void attention_forward_cached(Real* out, const Real* q, int q_stride, const Real* keys, const Real* values,
                              const int32_t* seq, const int32_t* pos, int N, int n_ctx, int C, int NH) {
  const int hs = C / NH;
  const Real scale = Real(1) / std::sqrt(Real(hs));
#pragma omp parallel
  {
    std::vector<Real> row(static_cast<size_t>(n_ctx));  // one query's scores, then its probabilities
#pragma omp for collapse(2) schedule(static)
    for (int r = 0; r < N; ++r)
      for (int h = 0; h < NH; ++h) {
        const int t = pos[r];
        const Real* qr = q + size_t(r) * q_stride + h * hs;                     // (hs)
        const Real* k = keys + size_t(seq[r]) * n_ctx * C + h * hs;             // (n_ctx, C) of the sequence
        const Real* v = values + size_t(seq[r]) * n_ctx * C + h * hs;
        for (int t2 = 0; t2 <= t; ++t2) row[size_t(t2)] = dot(qr, k + size_t(t2) * C, hs) * scale;
        const Real maxv = lane_max(row.data(), t + 1);
        Real sum = 0;
        for (int t2 = 0; t2 <= t; ++t2) {
          row[size_t(t2)] = std::exp(row[size_t(t2)] - maxv);
          sum += row[size_t(t2)];
        }
        const Real inv = Real(1) / sum;
        for (int t2 = 0; t2 <= t; ++t2) row[size_t(t2)] *= inv;
        Real* o = out + size_t(r) * C + h * hs;  // (hs)
        std::fill(o, o + hs, Real(0));
        for (int t2 = 0; t2 <= t; ++t2) axpy(o, row[size_t(t2)], v + size_t(t2) * C, hs);
      }
  }
}

template <typename Real>
void attention_backward(Real* dqkv, const Real* dout, const Real* qkv, const Real* att, int B,
                        int T, int C, int NH) {
  const int hs = C / NH;
  const Real scale = Real(1) / std::sqrt(Real(hs));
  const size_t C3 = size_t(3) * C;
  // One (b, h) per task: keys and values of a head receive gradient from all its queries.
#pragma omp parallel
  {
    std::vector<Real> datt(T);  // (T) gradient of one row of att, then of the scores
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < NH; ++h)
        for (int t = 0; t < T; ++t) {
          const Real* row = att + ((size_t(b) * NH + h) * T + t) * T;  // (T)
          const Real* d = dout + (size_t(b) * T + t) * C + h * hs;     // (hs)
          const size_t qoff = (size_t(b) * T + t) * C3 + h * hs;
          for (int t2 = 0; t2 <= t; ++t2) {
            const size_t voff = (size_t(b) * T + t2) * C3 + 2 * C + h * hs;
            datt[t2] = dot(d, qkv + voff, hs);
            axpy(dqkv + voff, row[t2], d, hs);
          }
          // Softmax backward: dscore = att * (datt - sum(att * datt)).
          const Real s = dot(row, datt.data(), t + 1);
          for (int t2 = 0; t2 <= t; ++t2) {
            const Real dscore = row[t2] * (datt[t2] - s) * scale;
            const size_t koff = (size_t(b) * T + t2) * C3 + C + h * hs;
            axpy(dqkv + qoff, dscore, qkv + koff, hs);
            axpy(dqkv + koff, dscore, qkv + qoff, hs);
          }
        }
  }
}

// --------------------------------------------------------------------- gelu, residual

namespace {
template <typename Real>
constexpr Real kGeluScale = Real(0.79788456080286535588);  // sqrt(2/pi)
template <typename Real>
constexpr Real kGeluCube = Real(0.044715);
}  // namespace

// 0.5 * (1 + tanh(u)) = sigmoid(2u): one exp instead of tanh (which glibc runs several
// times slower), and no cancellation near u = 0.
template <typename Real>
inline Real gelu_sigmoid(Real x) {
  const Real u = kGeluScale<Real> * (x + kGeluCube<Real> * x * x * x);
  return Real(1) / (Real(1) + std::exp(Real(-2) * u));
}

template <typename Real>
void gelu_forward(Real* out, const Real* inp, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) out[i] = inp[i] * gelu_sigmoid(inp[i]);
}

template <typename Real>
void gelu_backward(Real* dinp, const Real* inp, const Real* dout, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) {
    const Real x = inp[i], s = gelu_sigmoid(x);
    const Real du = kGeluScale<Real> * (Real(1) + Real(3) * kGeluCube<Real> * x * x);
    dinp[i] += (s + Real(2) * x * s * (Real(1) - s) * du) * dout[i];
  }
}

template <typename Real>
void residual_forward(Real* out, const Real* inp1, const Real* inp2, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) out[i] = inp1[i] + inp2[i];
}

template <typename Real>
void residual_backward(Real* dinp1, Real* dinp2, const Real* dout, size_t n) {
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) {
    dinp1[i] += dout[i];
    dinp2[i] += dout[i];
  }
}

// ------------------------------------------------------------------------ cross-entropy

template <typename Real>
Real crossentropy_forward(Real* losses, Real* probs, const Real* logits, const int32_t* targets,
                          int N, int V) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < N; ++r) {
    const Real* l = logits + size_t(r) * V;  // (V)
    Real* p = probs + size_t(r) * V;         // (V)
    const Real m = lane_max(l, V);
    for (int i = 0; i < V; ++i) p[i] = std::exp(l[i] - m);
    const Real sum = lane_sum<Real>(V, [&](int i) { return p[i]; });
    const Real inv = Real(1) / sum;
    for (int i = 0; i < V; ++i) p[i] *= inv;
    // From the log-sum-exp, not log(p[target]): stays finite when p underflows.
    losses[r] = m + std::log(sum) - l[targets[r]];
  }
  Real total = 0;  // in row order, outside the parallel loop: deterministic
  for (int r = 0; r < N; ++r) total += losses[r];
  return total / N;
}

template <typename Real>
void crossentropy_backward(Real* dlogits, const Real* probs, const int32_t* targets, int N, int V,
                           VocabSlice vocab) {
  const Real inv_n = Real(1) / N;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < N; ++r) {
    const Real* p = probs + size_t(r) * V;  // (V)
    Real* dl = dlogits + size_t(r) * V;     // (V)
    for (int i = 0; i < V; ++i) dl[i] = p[i] * inv_n;
    if (vocab.holds(targets[r])) dl[targets[r] - vocab.lo] -= inv_n;
  }
}

template <typename Real>
void crossentropy_partial(Real* stats, const Real* logits, const int32_t* targets, int N, VocabSlice vocab) {
  const int V = vocab.hi - vocab.lo;
#pragma omp parallel for schedule(static)
  for (int r = 0; r < N; ++r) {
    const Real* l = logits + size_t(r) * V;  // (V)
    const Real m = lane_max(l, V);
    Real* st = stats + size_t(r) * 3;
    st[0] = m;
    st[1] = lane_sum<Real>(V, [&](int i) { return std::exp(l[i] - m); });
    st[2] = vocab.holds(targets[r]) ? l[targets[r] - vocab.lo] : Real(0);
  }
}

template <typename Real>
Real crossentropy_combine(Real* losses, Real* lse, const Real* stats, int P, int N) {
  const size_t rank_stride = size_t(N) * 3;
  Real total = 0;
  for (int r = 0; r < N; ++r) {  // ranks in order: every rank computes the same numbers
    Real m = stats[size_t(r) * 3];
    for (int p = 1; p < P; ++p) m = std::max(m, stats[p * rank_stride + size_t(r) * 3]);
    Real sum = 0, target = 0;
    for (int p = 0; p < P; ++p) {
      const Real* st = stats + p * rank_stride + size_t(r) * 3;
      sum += st[1] * std::exp(st[0] - m);
      target += st[2];  // exactly one rank holds the target; the others give 0
    }
    lse[r] = m + std::log(sum);
    losses[r] = lse[r] - target;
    total += losses[r];
  }
  return total / N;
}

template <typename Real>
void softmax_from_lse(Real* probs, const Real* logits, const Real* lse, int N, int V) {
#pragma omp parallel for schedule(static)
  for (int r = 0; r < N; ++r)
    for (int i = 0; i < V; ++i) probs[size_t(r) * V + i] = std::exp(logits[size_t(r) * V + i] - lse[r]);
}

// ------------------------------------------------------------------------ instantiation

#define DTB_INSTANTIATE_KERNELS(Real)                                                              \
  template void encoder_forward<Real>(Real*, const int32_t*, const Real*, const Real*, int, int,   \
                                      int, VocabSlice);                                            \
  template void encoder_backward<Real>(Real*, Real*, const Real*, const int32_t*, int, int, int,   \
                                       VocabSlice);                                                \
  template void layernorm_forward<Real>(Real*, Real*, Real*, const Real*, const Real*,             \
                                        const Real*, int, int);                                    \
  template void layernorm_backward<Real>(Real*, Real*, Real*, const Real*, const Real*,            \
                                         const Real*, const Real*, const Real*, int, int);         \
  template void matmul_forward<Real>(Real*, const Real*, const Real*, const Real*, int, int, int); \
  template void matmul_backward<Real>(Real*, Real*, Real*, const Real*, const Real*, const Real*,  \
                                      int, int, int);                                              \
  template void gemm<Real>(const GemmShape&, const Real*, const Real*, Real*);                     \
  template void blas_gemm<Real>(const GemmShape&, const Real*, const Real*, Real*);                \
  template void attention_forward<Real>(Real*, Real*, const Real*, int, int, int, int);            \
  template void attention_forward_cached<Real>(Real*, const Real*, int, const Real*, const Real*,  \
                                             const int32_t*, const int32_t*, int, int, int, int);  \
  template void attention_backward<Real>(Real*, const Real*, const Real*, const Real*, int, int,   \
                                         int, int);                                                \
  template void gelu_forward<Real>(Real*, const Real*, size_t);                                    \
  template void gelu_backward<Real>(Real*, const Real*, const Real*, size_t);                      \
  template void residual_forward<Real>(Real*, const Real*, const Real*, size_t);                   \
  template void residual_backward<Real>(Real*, Real*, const Real*, size_t);                        \
  template Real crossentropy_forward<Real>(Real*, Real*, const Real*, const int32_t*, int, int);   \
  template void crossentropy_backward<Real>(Real*, const Real*, const int32_t*, int, int, VocabSlice); \
  template void crossentropy_partial<Real>(Real*, const Real*, const int32_t*, int, VocabSlice);   \
  template Real crossentropy_combine<Real>(Real*, Real*, const Real*, int, int);                   \
  template void softmax_from_lse<Real>(Real*, const Real*, const Real*, int, int);

DTB_INSTANTIATE_KERNELS(float)
DTB_INSTANTIATE_KERNELS(double)
#undef DTB_INSTANTIATE_KERNELS

}  // namespace dtb
