#include "privacy/privacy_config.hpp"

#include <cmath>

namespace dtb::privacy {

std::vector<KeySpec> key_specs() {
  using K = KeyType;
  return {
      {"privacy.dp_sgd", K::kChoice, "off", 0, 0, {"on", "off"},
       "DP-SGD: each sample's gradient clipped to privacy.clip_norm, Gaussian noise added to the sum, epsilon "
       "reported (needs one sample per micro-batch and data.sampler = epoch)"},
      {"privacy.clip_norm", K::kFloat, "1", 0, 1e9, {}, "DP-SGD: per-sample gradient L2 clip norm C", true},
      {"privacy.noise_multiplier", K::kFloat, "1", 0, 1e6, {},
       "DP-SGD: sigma; the summed gradient gets N(0, sigma^2 C^2) noise once per step"},
      {"privacy.delta", K::kFloat, "1e-05", 0, 0.999999, {}, "DP-SGD: the delta epsilon is reported for",
       true},
      {"privacy.secure_agg", K::kChoice, "off", 0, 0, {"on", "off"},
       "secure aggregation of the DP gradient sum: pairwise X25519 keys, ChaCha20 masks in Z_2^32"},
      {"privacy.scale_bits", K::kInt, "24", 1, 30, {},
       "secure aggregation: fractional bits of the fixed point (resolution 2^-bits, range +-2^(31-bits) for the sum)"},
  };
}

PrivacySettings privacy_settings(const Config& c) {
  PrivacySettings p;
  p.dp_sgd = c.get_string("privacy.dp_sgd") == "on";
  p.clip_norm = c.get_float("privacy.clip_norm");
  p.noise_multiplier = c.get_float("privacy.noise_multiplier");
  p.delta = c.get_float("privacy.delta");
  p.secure_agg = c.get_string("privacy.secure_agg") == "on";
  p.scale_bits = int(c.get_int("privacy.scale_bits"));
  const int dp = int(c.get_int("parallel.dp")), pp = int(c.get_int("parallel.pp"));
  const int64_t batch = c.get_int("train.batch_size"), micro = c.get_int("parallel.microbatches");
  if (p.any() && c.get_string("strategy.name") != "ddp")
    c.fail_constraint(p.dp_sgd ? "privacy.dp_sgd" : "privacy.secure_agg",
                      "needs strategy.name = ddp (a gradient summed over the DP ranks every step)");
  if (p.any() && c.get_string("device.backend") != "cpu")
    c.fail_constraint(p.dp_sgd ? "privacy.dp_sgd" : "privacy.secure_agg", "needs device.backend = cpu");
  if (p.dp_sgd) {
    // A micro-batch of one sequence: its backward is that sample's gradient, from the
    // model's own kernels (privacy/dp_sgd.hpp).
    if (batch != int64_t(dp) * micro)
      c.fail_constraint("parallel.microbatches", "privacy.dp_sgd clips every sample's gradient and runs one sample per "
                                                 "micro-batch: must be train.batch_size / parallel.dp = " +
                                                     std::to_string(batch / dp));
    // The accountant's q = B / N needs a fixed set of N samples; random windows have none.
    if (c.get_string("data.sampler") != "epoch")
      c.fail_constraint("data.sampler", "privacy.dp_sgd needs epoch (a fixed set of samples, so q = B / N is defined)");
    if (pp > 1 && c.get_bool("model.tie_embeddings"))
      c.fail_constraint("model.tie_embeddings", "privacy.dp_sgd with parallel.pp > 1 needs false (a sample's tied "
                                                "embedding gradient is split between the first and the last stage)");
    if (c.get_string("parallel.pp_compress") != "none")
      c.fail_constraint("parallel.pp_compress", "must be none with privacy.dp_sgd (each step runs every micro-batch twice)");
  }
  if (p.secure_agg) {
    if (c.get_string("net.codec") != "none")
      c.fail_constraint("net.codec", "must be none with privacy.secure_agg (masked integers cannot be compressed)");
    if (c.get_bool("parallel.zero1"))
      c.fail_constraint("parallel.zero1", "must be false with privacy.secure_agg (the masked sum is allreduced whole)");
    if (c.get_string("net.algo") == "gossip")
      c.fail_constraint("net.algo", "gossip gives an estimate of the sum; privacy.secure_agg needs an exact one");
    if (dp > 256)
      c.fail_constraint("privacy.secure_agg", "supports parallel.dp <= 256 (16-bit limbs summed exactly in float)");
  }
  return p;
}

}  // namespace dtb::privacy
