// The reproducible CPU kernel set (cpu/kernel_set.hpp, train.kernels = reproducible): the
// kernel bodies (cpu/kernel_bodies.inc) over a gemm whose every sum has one fixed order and
// over exp and log built from + - * / (cpu/repro_math.hpp). Built with -ffp-contract=off
// (trainer/CMakeLists.txt): no multiply-add is fused on one CPU and left apart on another.
//
// DTB_REPRO_NS names the namespace (dtb::repro in the library). tests/test_repro.cpp builds
// this file a second time with -march=x86-64 (SSE2 only) under another name and checks that
// both copies give the same bits.
#ifndef DTB_REPRO_NS
#define DTB_REPRO_NS repro
#endif

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "cpu/kernel_set.hpp"
#include "cpu/repro_math.hpp"

namespace dtb::DTB_REPRO_NS {
namespace {

template <typename Real>
inline Real kexp(Real x) { return repro_math::exp(x); }
template <typename Real>
inline Real klog(Real x) { return repro_math::log(x); }

// The gemm's tiles: an inner loop computes kMR rows by kNR columns of c at once, each row's
// kNR accumulators one GCC vector (one AVX-512 register, two AVX ones, four SSE ones: the
// compiler splits it, lane by lane, the same IEEE operations). Work items are a panel of
// kNR columns by kRowBlock rows; threads take whole items. These constants decide only
// which outputs are computed together, never the order of any sum.
constexpr int kMR = 6, kNR = 16, kRowBlock = 240;
constexpr double kMinParallelFlops = 4e6;  // below, waking the threads costs more

template <typename Real>
struct Lanes;
template <>
struct Lanes<float> {
  typedef float V __attribute__((vector_size(kNR * sizeof(float))));
};
template <>
struct Lanes<double> {
  typedef double V __attribute__((vector_size(kNR * sizeof(double))));
};

// op(a)(i, p) and op(b)(p, j) of a row-major gemm (GemmShape, cpu/kernels.hpp).
template <typename Real>
inline Real a_at(const GemmShape& s, const Real* a, int i, int p) {
  return s.trans_a ? a[size_t(p) * s.m + i] : a[size_t(i) * s.k + p];
}
template <typename Real>
inline Real b_at(const GemmShape& s, const Real* b, int p, int j) {
  return s.trans_b ? b[size_t(j) * s.k + p] : b[size_t(p) * s.n + j];
}

// acc(r, j) = sum over p = 0, 1, ..., k-1 of ap(p, r) bp(p, j), one accumulator per output,
// added to in increasing p (a product, rounded, then a sum, rounded): the order every
// output of the gemm is summed in.
template <typename Real>
inline void tile_kernel(const Real* ap, const Real* bp, int k, Real (&out)[kMR][kNR]) {
  using V = typename Lanes<Real>::V;
  V acc[kMR];
  for (int r = 0; r < kMR; ++r) acc[r] = V{};
  for (int p = 0; p < k; ++p) {
    const Real* aq = ap + size_t(p) * kMR;  // (kMR)
    V bq;                                   // (kNR)
    std::memcpy(&bq, bp + size_t(p) * kNR, sizeof bq);
    for (int r = 0; r < kMR; ++r) acc[r] += aq[r] * bq;
  }
  std::memcpy(out, acc, sizeof out);
}

// Columns [j0, j0 + kNR) and rows [i0, i1) of c: packs the panel of op(b) and each tile of
// op(a) (zero-padded past the edges: padded outputs are computed and dropped), then writes
// c = acc, or c + acc when accumulating.
template <typename Real>
void gemm_item(const GemmShape& s, const Real* a, const Real* b, Real* c, int j0, int i0, int i1,
               std::vector<Real>& ap, std::vector<Real>& bp) {
  const int nj = std::min(kNR, s.n - j0);
  for (int p = 0; p < s.k; ++p)
    for (int j = 0; j < kNR; ++j) bp[size_t(p) * kNR + j] = j < nj ? b_at(s, b, p, j0 + j) : Real(0);
  Real acc[kMR][kNR];
  for (int i = i0; i < i1; i += kMR) {
    const int ni = std::min(kMR, i1 - i);
    for (int p = 0; p < s.k; ++p)
      for (int r = 0; r < kMR; ++r) ap[size_t(p) * kMR + r] = r < ni ? a_at(s, a, i + r, p) : Real(0);
    tile_kernel(ap.data(), bp.data(), s.k, acc);
    for (int r = 0; r < ni; ++r) {
      Real* row = c + size_t(i + r) * s.n + j0;
      for (int j = 0; j < nj; ++j) row[j] = s.accumulate ? row[j] + acc[r][j] : acc[r][j];
    }
  }
}

}  // namespace

// Every c(i, j) is (c(i, j) +) ((a(i,0) b(0,j) + a(i,1) b(1,j)) + ...) + a(i,k-1) b(k-1,j):
// one product and one addition per p, in increasing p, the products rounded on their own.
// The same on any thread count (an item is one thread's) and any vector width (lanes are
// different outputs).
template <typename Real>
void gemm(const GemmShape& s, const Real* a, const Real* b, Real* c) {
  const int panels = (s.n + kNR - 1) / kNR, row_blocks = (s.m + kRowBlock - 1) / kRowBlock;
  const int items = panels * row_blocks;
#pragma omp parallel if (s.flops() > kMinParallelFlops && items > 1)
  {
    std::vector<Real> ap(size_t(s.k) * kMR), bp(size_t(s.k) * kNR);
#pragma omp for schedule(static)
    for (int item = 0; item < items; ++item) {
      const int jp = item / row_blocks, rb = item % row_blocks;
      gemm_item(s, a, b, c, jp * kNR, rb * kRowBlock, std::min(s.m, (rb + 1) * kRowBlock), ap, bp);
    }
  }
}

namespace {
template <typename Real>
inline void kgemm(const GemmShape& s, const Real* a, const Real* b, Real* c) {
  DTB_REPRO_NS::gemm(s, a, b, c);  // qualified: argument lookup would also find dtb::gemm
}
}  // namespace

#include "cpu/kernel_bodies.inc"

template <typename Real>
const CpuKernels<Real>& kernels() {
  static const CpuKernels<Real> set = DTB_CPU_KERNELS(Real, KernelMode::kReproducible);
  return set;
}
template const CpuKernels<float>& kernels<float>();
template const CpuKernels<double>& kernels<double>();

const char* isa() {
#if defined(__AVX512F__)
  return "avx512";
#elif defined(__AVX2__)
  return "avx2";
#elif defined(__AVX__)
  return "avx";
#else
  return "sse2";
#endif
}

}  // namespace dtb::DTB_REPRO_NS
