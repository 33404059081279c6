#include "verify/verify_config.hpp"

#include <algorithm>

namespace dtb::verify {

std::vector<KeySpec> key_specs() {
  using K = KeyType;
  return {
      {"verify.segment", K::kInt, "0", 0, 1e9, {},
       "commitments: hash the state every step, a Merkle leaf per step, a checkpoint every N steps (0 = off)"},
      {"verify.dir", K::kString, "", 1, 0, {},
       "folder of the segment checkpoints ('' = checkpoints/<model.name>-verify)"},
      {"verify.trace", K::kBool, "false", 0, 0, {},
       "also hash the tokens, each layer's forward output and backward gradient (the dispute's second phase; one rank)"},
      {"verify.cheat", K::kChoice, "none", 0, 0,
       {"none", "skip_step", "other_data", "low_precision", "perturb_param", "skip_layer", "corrupt_checkpoint"},
       "TEST AND EXPERIMENT KNOB: a dishonest worker's cheat at verify.cheat_step, for dtbench verify to catch"},
      {"verify.cheat_step", K::kInt, "0", 0, 1e9, {}, "test knob: the 0-based step verify.cheat alters"},
      {"verify.cheat_every", K::kInt, "0", 0, 1e9, {}, "test knob: repeat the cheat every N steps (0 = once)"},
      {"verify.cheat_layer", K::kInt, "0", 0, 1024, {}, "test knob: the block verify.cheat=skip_layer skips"},
  };
}

VerifySettings verify_settings(const Config& c) {
  VerifySettings v;
  v.segment = int(c.get_int("verify.segment"));
  v.dir = c.get_string("verify.dir");
  if (v.dir.empty()) v.dir = "checkpoints/" + c.get_string("model.name") + "-verify";
  v.trace = c.get_bool("verify.trace");
  v.cheat = c.get_string("verify.cheat");
  v.cheat_step = int(c.get_int("verify.cheat_step"));
  v.cheat_every = int(c.get_int("verify.cheat_every"));
  v.cheat_layer = int(c.get_int("verify.cheat_layer"));
  const int world = int(c.get_int("parallel.dp") * c.get_int("parallel.pp") * c.get_int("parallel.tp"));
  if (!v.on() && (v.trace || v.cheat != "none"))
    c.fail_constraint(v.trace ? "verify.trace" : "verify.cheat", "needs verify.segment > 0 (commitments on)");
  // The state hash covers parameters, moments, step, cursor and seed: not DiLoCo's other
  // workers, anchor and residuals, nor AQ-SGD's buffers, so those runs cannot be committed.
  if (v.on() && c.get_string("strategy.name") != "ddp")
    c.fail_constraint("verify.segment", "commitments cover strategy.name = ddp only (not DiLoCo's outer state)");
  if (v.on() && c.get_string("parallel.pp_compress") == "aqsgd")
    c.fail_constraint("verify.segment", "commitments do not cover AQ-SGD's activation buffers (parallel.pp_compress)");
  if (v.on() && c.get_string("device.backend") != "cpu")
    c.fail_constraint("verify.segment", "commitments need device.backend = cpu");
  if (v.trace && world != 1)
    c.fail_constraint("verify.trace", "traces one rank only (here parallel.dp x pp x tp = " + std::to_string(world) + ")");
  if (v.cheat != "none" && world != 1)
    c.fail_constraint("verify.cheat", "cheats run on one rank only");
  if (v.cheat != "none" && v.cheat_step >= c.get_int("train.steps"))
    c.fail_constraint("verify.cheat_step", "must be below train.steps = " + std::to_string(c.get_int("train.steps")));
  if (v.cheat_layer >= c.get_int("model.n_layer"))
    c.fail_constraint("verify.cheat_layer", "must be below model.n_layer = " + std::to_string(c.get_int("model.n_layer")));
  return v;
}

Digest config_digest(const Config& c) {
  static const char* kIgnored[] = {"train.results", "train.checkpoint", "train.checkpoint_every", "train.log_every",
                                   "train.val_every", "train.val_batches", "train.threads", "data.path", "verify.dir",
                                   "verify.cheat", "verify.cheat_step", "verify.cheat_every", "verify.cheat_layer"};
  Hasher h("dtbench-config-v1");
  for (const KeySpec& k : c.schema()) {
    if (std::find(std::begin(kIgnored), std::end(kIgnored), k.key) != std::end(kIgnored)) continue;
    // The default kernels are left out, so that commitments made before train.kernels
    // existed still verify; reproducible ones change the digest (and are recorded as the
    // commitment's mode).
    if (k.key == "train.kernels" && c.get_string(k.key) == "fast") continue;
    std::string value;
    switch (k.type) {
      case KeyType::kInt: value = std::to_string(c.get_int(k.key)); break;
      case KeyType::kFloat: {
        const double x = c.get_float(k.key);
        value.assign(reinterpret_cast<const char*>(&x), sizeof x);  // the bits, not a rounding of them
        break;
      }
      case KeyType::kBool: value = c.get_bool(k.key) ? "true" : "false"; break;
      default: value = c.get_string(k.key);
    }
    h.text(k.key).text(value);
  }
  return h.finish();
}

}  // namespace dtb::verify
