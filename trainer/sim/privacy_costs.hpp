#pragma once
// What privacy adds to one simulated step at paper scale (issue 16), beside dtbench sim's
// step (simulator.hpp). Two kinds of rows, never mixed:
//
// - modelled from dtbench's own mechanisms (privacy/), term by term from the simulated
//   step: DP-SGD as the trainer runs it (a second forward and backward per micro-batch of
//   one sample; its DP buckets leave after the backward, so the DP time the backward hid
//   is exposed), and secure aggregation (every DP value as two 16-bit limbs: the DP bytes
//   and, at their bandwidth, the DP time twice over; ChaCha20 masks for each of the other
//   DP ranks at the keystream rate measured here; the key exchange once per run).
// - FROM THE LITERATURE, NOT MEASURED: homomorphic encryption, MPC and zero-knowledge
//   proofs, which have no Debian-packaged library fit for a trainer; each figure is a
//   paper's, scaled to the simulated model by the rule its row states.
#include <iosfwd>
#include <string>
#include <vector>

#include "sim/sim_config.hpp"
#include "sim/simulator.hpp"

namespace dtb::sim {

struct PrivacyCost {
  std::string technique;
  double step_s = 0;        // the step with it (seconds)
  double dp_bytes = 0;      // DP bytes sent per rank per step with it
  std::string how;          // the rule, in one line
  std::string source;       // the paper or measurement each figure comes from
  bool literature = false;  // true: taken from the literature, not measured by dtbench
};

// ChaCha20 keystream, bytes per second of one core: libsodium's crypto_stream_chacha20 over
// 64 MiB, best of 5, thread CPU time, on this project's 2-core AMD EPYC build machine
// (2.37 GB/s, 2026-12-06, quiet machine; `dtbench bench masks` measures it again).
constexpr double kChaCha20BytesPerS = 2.37e9;

std::vector<PrivacyCost> privacy_costs(const SimSettings& s, const SimResult& base);
void print_privacy_costs(std::ostream& out, const SimResult& base, const std::vector<PrivacyCost>& rows);

}  // namespace dtb::sim
