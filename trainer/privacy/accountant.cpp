#include "privacy/accountant.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace dtb::privacy {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// log(exp(x) + exp(y)) and log(exp(x) - exp(y)) without overflow (-inf is log 0).
double log_add(double x, double y) {
  const double a = std::min(x, y), b = std::max(x, y);
  return a == -kInf ? b : std::log1p(std::exp(a - b)) + b;
}
double log_sub(double x, double y) {
  if (y == -kInf) return x;
  if (x <= y) return -kInf;
  return std::log(std::expm1(x - y)) + y;
}

// log(erfc(x)), accurate where erfc underflows: for large x the asymptotic series
// erfc(x) = exp(-x^2) / (x sqrt(pi)) (1 - 1/(2x^2) + 3/(4x^4) - 15/(8x^6) + ...).
double log_erfc(double x) {
  if (x < 20) return std::log(std::erfc(x));
  const double r = 1 / (x * x);
  return -x * x - std::log(x) - 0.5 * std::log(M_PI) + std::log1p(r * (-0.5 + r * (0.75 - r * 1.875)));
}

double log_binom(double n, double k) { return std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1); }

// log A_alpha for integer alpha: the binomial expansion (Mironov et al. 2019, section 3.3).
double log_a_int(double q, double sigma, int alpha) {
  double log_a = -kInf;
  for (int i = 0; i <= alpha; ++i) {
    const double log_coef = log_binom(alpha, i) + i * std::log(q) + (alpha - i) * std::log1p(-q);
    log_a = log_add(log_a, log_coef + double(i) * (i - 1) / (2 * sigma * sigma));
  }
  return log_a;
}

// log A_alpha for fractional alpha: the two integrals split at z0, summed term by term
// until both terms fall below e^-30 (as TF Privacy and Opacus do).
double log_a_frac(double q, double sigma, double alpha) {
  double log_a0 = -kInf, log_a1 = -kInf;
  const double z0 = sigma * sigma * std::log(1 / q - 1) + 0.5;
  for (int i = 0;; ++i) {
    // binom(alpha, i) for real alpha: its sign alternates once i > alpha.
    double coef = 1;
    for (int k = 0; k < i; ++k) coef *= (alpha - k) / (k + 1);
    const double log_coef = std::log(std::abs(coef)), j = alpha - i;
    const double log_t0 = log_coef + i * std::log(q) + j * std::log1p(-q);
    const double log_t1 = log_coef + j * std::log(q) + i * std::log1p(-q);
    const double log_e0 = std::log(0.5) + log_erfc((i - z0) / (M_SQRT2 * sigma));
    const double log_e1 = std::log(0.5) + log_erfc((z0 - j) / (M_SQRT2 * sigma));
    const double log_s0 = log_t0 + (double(i) * i - i) / (2 * sigma * sigma) + log_e0;
    const double log_s1 = log_t1 + (j * j - j) / (2 * sigma * sigma) + log_e1;
    if (coef > 0) {
      log_a0 = log_add(log_a0, log_s0);
      log_a1 = log_add(log_a1, log_s1);
    } else {
      log_a0 = log_sub(log_a0, log_s0);
      log_a1 = log_sub(log_a1, log_s1);
    }
    if (std::max(log_s0, log_s1) < -30) break;
  }
  return log_add(log_a0, log_a1);
}

}  // namespace

std::vector<double> default_orders() {
  std::vector<double> out;
  for (int x = 1; x < 100; ++x) out.push_back(1 + x / 10.0);
  for (int a = 12; a < 64; ++a) out.push_back(a);
  return out;
}

double rdp_sampled_gaussian(double q, double sigma, double alpha, double steps) {
  if (q == 0) return 0;
  if (sigma == 0) return kInf;
  if (q == 1) return steps * alpha / (2 * sigma * sigma);  // no subsampling: the Gaussian mechanism
  const double log_a = alpha == std::floor(alpha) ? log_a_int(q, sigma, int(alpha)) : log_a_frac(q, sigma, alpha);
  return steps * log_a / (alpha - 1);
}

Epsilon epsilon_from_rdp(const std::vector<double>& orders, const std::vector<double>& rdp, double delta) {
  Epsilon best{kInf, std::nan("")};
  for (size_t i = 0; i < orders.size(); ++i) {
    const double a = orders[i];
    // Balle et al. 2020, Theorem 21: tighter than Mironov's rdp - log(delta) / (a - 1).
    const double eps = rdp[i] - (std::log(delta) + std::log(a)) / (a - 1) + std::log((a - 1) / a);
    if (std::isfinite(eps) && eps < best.epsilon) best = {eps, a};
  }
  if (best.epsilon < 0) best.epsilon = 0;
  return best;
}

Epsilon dp_sgd_epsilon(double q, double sigma, double steps, double delta, const std::vector<double>& orders) {
  std::vector<double> rdp;
  for (double a : orders) rdp.push_back(rdp_sampled_gaussian(q, sigma, a, steps));
  return epsilon_from_rdp(orders, rdp, delta);
}

}  // namespace dtb::privacy
