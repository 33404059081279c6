#pragma once
// The RDP accountant of DP-SGD: Renyi differential privacy of the sampled Gaussian
// mechanism (Mironov, Talwar, Zhang 2019, "Renyi Differential Privacy of the Sampled
// Gaussian Mechanism", section 3.3), composed over the steps and converted to
// (epsilon, delta) by Balle et al. 2020, Theorem 21. The same formulas and the same orders
// as Opacus' RDPAccountant (opacus/accountants/analysis/rdp.py, itself TF Privacy's
// rdp_accountant.py), so its epsilon is the figure Opacus users know.
//
// The analysis assumes Poisson sampling: each sample joins a step's batch independently
// with probability q. dtbench draws fixed-size batches from a shuffled epoch
// (data.sampler = epoch); the epsilon reported for it, with q = B / N, is the one Abadi et
// al. and TF Privacy's tutorials report for the same practice, not a proof for shuffling.
#include <vector>

namespace dtb::privacy {

// Opacus' DEFAULT_ALPHAS: 1.1, 1.2, ..., 10.9, then 12, 13, ..., 63.
std::vector<double> default_orders();

// RDP of STEPS compositions of the sampled Gaussian mechanism with sampling rate Q and
// noise multiplier SIGMA, at order ALPHA (> 1). Infinite for sigma = 0 (q > 0).
double rdp_sampled_gaussian(double q, double sigma, double alpha, double steps = 1);

struct Epsilon {
  double epsilon;  // +inf when no order gives a finite bound
  double order;    // the order that gave it
};
// The smallest epsilon over ORDERS for the RDP values RDP (one per order) at DELTA.
Epsilon epsilon_from_rdp(const std::vector<double>& orders, const std::vector<double>& rdp, double delta);

// DP-SGD after STEPS steps of sampling rate Q and noise multiplier SIGMA, over ORDERS.
Epsilon dp_sgd_epsilon(double q, double sigma, double steps, double delta,
                       const std::vector<double>& orders = default_orders());

}  // namespace dtb::privacy
