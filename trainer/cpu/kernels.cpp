// The fast CPU kernel set (cpu/kernel_set.hpp): the kernel bodies (cpu/kernel_bodies.inc)
// over OpenBLAS and glibc's exp and log, built with the build's -march and the compiler's
// default FMA contraction. Bitwise the same for a given thread count on one CPU and build.
#include "cpu/kernels.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/kernel_set.hpp"

namespace dtb {
namespace {

constexpr double kMinGemmFlops = 4e6;  // per thread: below, waking a thread costs more
constexpr int kGemmAlign = 16;         // gemm blocks start on whole SIMD tiles of the BLAS kernel

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

namespace {
template <typename Real>
inline Real kexp(Real x) { return std::exp(x); }
template <typename Real>
inline Real klog(Real x) { return std::log(x); }
template <typename Real>
inline void kgemm(const GemmShape& s, const Real* a, const Real* b, Real* c) { gemm(s, a, b, c); }
}  // namespace

#include "cpu/kernel_bodies.inc"

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
