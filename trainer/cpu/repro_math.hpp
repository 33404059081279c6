#pragma once
// exp, log, cos(pi x) and integer powers from + - * / alone: the transcendental functions of
// the reproducible kernels (cpu/kernel_set.hpp). glibc's are not reproducible across CPUs:
// expf, exp, log, cos and pow each have an FMA variant that glibc picks at load time, and
// they agree with the plain one to about an ulp, not to the bit. Here every result is a
// fixed sequence of IEEE-754 double operations (compiled with -ffp-contract=off, the
// includer's duty), so it has the same bits on any x86-64 CPU and for any -march. Float
// arguments are computed in double and rounded once at the end, so the float functions are
// as accurate as glibc's (within an ulp) while the double ones are within a few ulps.
//
// Functions are static: every translation unit gets its own copy compiled with its own flags
// (a test builds the reproducible kernels twice, with and without AVX, into one binary; an
// inline function with external linkage would be merged into one of the two by the linker).
#include <bit>
#include <cstdint>
#include <limits>

namespace dtb::repro_math {

// 2^k for k in [-1022, 1023], from its bits (any other k gives some number, no UB).
static inline double pow2i(int k) { return std::bit_cast<double>((uint64_t(int64_t(k)) + 1023) << 52); }

// e^x in double: x = k ln2 + r with |r| <= ln2 / 2 (ln2 in two parts, Cody and Waite, so that
// k * kLn2Hi is exact), e^r by its Taylor polynomial to r^13 (the next term is below 2^-56
// relative), then e^r 2^k as two exact scalings and one rounding. Branch-free, so that GCC
// can vectorise a loop over it (lane by lane the same operations): k comes from the bits
// of x log2(e) + 1.5 2^52 (the 1.5 2^52 trick rounds to the nearest integer, ties to even,
// and leaves it in the low bits), and a NaN passes through the polynomial as NaN.
static inline double exp(double x) {
  x = x > 1000.0 ? 1000.0 : x;  // beyond, e^x is inf or 0 all the same; keeps k in range
  x = x < -1000.0 ? -1000.0 : x;
  constexpr double kLog2e = 1.4426950408889634074, kShift = 0x1.8p52;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // 0x3fe62e42fee00000: low 21 bits zero
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  const double shifted = x * kLog2e + kShift;
  const double kd = shifted - kShift;
  const int k = int(int32_t(uint32_t(std::bit_cast<uint64_t>(shifted))));
  const double r = (x - kd * kLn2Hi) - kd * kLn2Lo;
  constexpr double kInvFact[14] = {1.0,        1.0,         1.0 / 2,      1.0 / 6,       1.0 / 24,
                                   1.0 / 120,  1.0 / 720,   1.0 / 5040,   1.0 / 40320,   1.0 / 362880,
                                   1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800};
  double p = kInvFact[13];
  for (int i = 12; i >= 0; --i) p = p * r + kInvFact[i];
  const int k1 = k / 2;
  return p * pow2i(k1) * pow2i(k - k1);  // the first product is exact: |k1| <= 722
}
static inline float exp(float x) { return float(exp(double(x))); }

// ln x in double: x = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s) with
// s = (m - 1) / (m + 1), |s| < 0.172, by its series to s^23 (next term below 2^-60).
static inline double log(double x) {
  if (x != x) return x;
  if (x < 0) return std::numeric_limits<double>::quiet_NaN();
  if (x == 0) return -std::numeric_limits<double>::infinity();
  if (x == std::numeric_limits<double>::infinity()) return x;
  int e = 0;
  if (x < 0x1p-1022) {  // subnormal: make it normal first (exact)
    x *= 0x1p54;
    e = -54;
  }
  const uint64_t bits = std::bit_cast<uint64_t>(x);
  e += int((bits >> 52) & 0x7ff) - 1023;
  double m = std::bit_cast<double>((bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);  // [1, 2)
  if (m > 1.4142135623730950488) {
    m *= 0.5;  // exact
    e += 1;
  }
  const double s = (m - 1.0) / (m + 1.0);  // m - 1 is exact (Sterbenz)
  const double s2 = s * s;
  double p = 1.0 / 23;
  for (int n = 21; n >= 1; n -= 2) p = p * s2 + 1.0 / n;
  const double ln_m = 2.0 * s * p;
  constexpr double kLn2Hi = 6.93147180369123816490e-01, kLn2Lo = 1.90821492927058770002e-10;
  const double ed = double(e);
  return ed * kLn2Hi + (ed * kLn2Lo + ln_m);
}
static inline float log(float x) { return float(log(double(x))); }

// cos(pi t) for t in [0, 1] (the learning-rate schedule's cosine): sin(pi (1/2 - t)) by its
// Taylor series to u^25 on |u| <= pi/2 (next term below 2^-70).
static inline double cos_pi(double t) {
  constexpr double kPi = 3.14159265358979323846;
  const double u = kPi * (0.5 - t);
  const double u2 = u * u;
  // sin u = u (1 - u^2/3! + u^4/5! - ...): Horner from the u^24 term down, each coefficient
  // (-1)^n / (2n+1)! built from the previous by one division (exact integers up to 25 * 24).
  double coef[13];
  coef[0] = 1.0;
  for (int n = 1; n < 13; ++n) coef[n] = -coef[n - 1] / double((2 * n) * (2 * n + 1));
  double p = coef[12];
  for (int n = 11; n >= 0; --n) p = p * u2 + coef[n];
  return u * p;
}

// b^n for n >= 0 by binary powering: a fixed sequence of multiplications for each n.
static inline double powi(double b, int64_t n) {
  double result = 1.0, square = b;
  for (; n > 0; n >>= 1) {
    if (n & 1) result *= square;
    square *= square;
  }
  return result;
}

}  // namespace dtb::repro_math
