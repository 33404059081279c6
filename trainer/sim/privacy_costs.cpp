#include "sim/privacy_costs.hpp"

#include <algorithm>
#include <ostream>

#include "sim/format.hpp"

namespace dtb::sim {
namespace {

// Literature figures (each row names its source; none is measured here).
// BatchCrypt (Zhang et al., USENIX ATC 2020), section 2: additively homomorphic encryption
// of every gradient (Paillier, as the FATE framework does it) "inflat[es] the data transfer
// amount by two orders of magnitude"; BatchCrypt's batched encoding cuts that traffic by
// 66x-101x.
constexpr double kPaillierInflation = 100;
constexpr double kBatchCryptReduction = 66;  // the paper's least reduction: the costlier end
// PUMA (Dong et al., 2023, arXiv 2307.12533): LLaMA-7B under 3-party MPC generates one
// token in about 5 minutes: 2 x 7e9 FLOPs in 300 s, 4.7e7 FLOP/s for the whole MPC deployment.
constexpr double kPumaFlopsPerS = 2 * 7e9 / 300;
// zkLLM (Sun, Li, Zhang, ACM CCS 2024): a proof of the whole inference of a 13B-parameter
// LLM in under 15 minutes on one GPU, proof under 200 kB.
constexpr double kZkLlmSecondsPerPass13B = 15 * 60;
constexpr double kZkLlmProofBytes = 200e3;

}  // namespace

std::vector<PrivacyCost> privacy_costs(const SimSettings& s, const SimResult& base) {
  const StepTimes& t = base.time;
  const double dp_bytes = base.dp_bytes.total();
  const double hidden_dp = std::max(0.0, t.dp_total - t.dp_exposed);
  const int P = s.grid.dp;
  std::vector<PrivacyCost> rows;
  rows.push_back({"none", t.step, dp_bytes, "the simulated step", "dtbench sim", false});
  // DP-SGD: pass 1 is the step's forward and backward again; the DP sync waits for the noise.
  rows.push_back({"DP-SGD (dtbench: two passes)", t.step + t.compute_fwd + t.compute_bwd + hidden_dp, dp_bytes,
                  "+ forward + backward once more, + the DP time the backward hid (buckets leave after the noise)",
                  "privacy/ (parallel_trainer_privacy.cpp)", false});
  // Secure aggregation: 8 wire bytes per value (two 16-bit limbs, each in a float) where the
  // gradient sends precision.grads' bytes; at their bandwidth the DP time grows alike; masks
  // (P - 1) x 4 bytes of keystream per gradient value on each rank's compute stream.
  const double values = base.params / (s.grid.tp * s.grid.pp);  // one rank's gradient values
  const double mask_s = P > 1 ? (P - 1) * values * 4 / kChaCha20BytesPerS : 0;
  const double wire = 8.0 / precision_bytes(s.grad_precision);
  rows.push_back({"secure aggregation (dtbench)", t.step + (P > 1 ? (wire - 1) * t.dp_total + mask_s : 0),
                  P > 1 ? wire * dp_bytes : 0,
                  "DP bytes and time x 8 B / gradient bytes (two 16-bit limbs per value), + (P_dp - 1) x 4 B x values "
                  "of ChaCha20",
                  "privacy/secure_agg.hpp; ChaCha20 rate measured (privacy_costs.hpp)", false});
  // HE: the DP bytes and, bandwidth-bound, the DP time scaled by the inflation.
  rows.push_back({"HE, Paillier per value (FATE)", t.step + (kPaillierInflation - 1) * t.dp_total,
                  kPaillierInflation * dp_bytes, "DP bytes and DP time x 100; encryption time not counted (a lower bound)",
                  "BatchCrypt, USENIX ATC 2020, sec. 2: 'two orders of magnitude'", true});
  const double batch = kPaillierInflation / kBatchCryptReduction;
  rows.push_back({"HE, BatchCrypt", t.step + (batch - 1) * t.dp_total, batch * dp_bytes,
                  "DP bytes and time x 100 / 66; encryption time not counted (a lower bound)",
                  "BatchCrypt, USENIX ATC 2020: 66x-101x less traffic than Paillier", true});
  // MPC: the step's FLOPs (6N per token, forward and backward) at PUMA's secure rate, one
  // MPC deployment per rank (an assumption: training under MPC at inference's rate).
  const double flops = base.flops_per_token * base.tokens_per_step;
  rows.push_back({"MPC, 3 parties (PUMA's rate)", flops / (kPumaFlopsPerS * base.world), dp_bytes,
                  "step FLOPs / (world x 4.7e7 FLOP/s), PUMA's LLaMA-7B token (14 GFLOP in ~300 s)",
                  "PUMA, arXiv 2307.12533, 2023: LLaMA-7B, ~5 min per token", true});
  // ZK: proving the step's passes at zkLLM's rate for a 13B forward, scaled by parameters
  // and by 3 (forward + backward), one prover per rank; proof bytes once per step.
  const double passes = base.tokens_per_step / s.seq_len;  // sequences
  const double prove_s = kZkLlmSecondsPerPass13B * (base.params / 13e9) * 3 * passes / base.world;
  rows.push_back({"ZK proof of the step (zkLLM's rate)", t.step + prove_s, dp_bytes + kZkLlmProofBytes,
                  "+ 15 min x N / 13B x 3 x sequences / world; + one 200 kB proof",
                  "zkLLM, ACM CCS 2024: 13B inference proved in < 15 min, proof < 200 kB", true});
  return rows;
}

void print_privacy_costs(std::ostream& out, const SimResult& base, const std::vector<PrivacyCost>& rows) {
  out << "# privacy at this scale (issue 16): the step with each technique; rows marked [literature] are "
         "taken from the literature, not measured\n";
  out << "# technique | step | x the step | DP bytes/rank/step | rule | source\n";
  for (const PrivacyCost& r : rows)
    out << (r.literature ? "[literature] " : "") << r.technique << " | " << format_seconds(r.step_s) << " | "
        << format_fixed(r.step_s / base.time.step, 2) << "x | " << format_bytes(r.dp_bytes) << " | " << r.how << " | "
        << r.source << "\n";
}

}  // namespace dtb::sim
