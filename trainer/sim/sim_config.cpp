#include "sim/sim_config.hpp"

#include <algorithm>

#include "codec.hpp"
#include "train/train_config.hpp"
#include "units.hpp"

namespace dtb::sim {
namespace {

constexpr int kMaxWorld = 65536;  // ranks; the work is linear in the world size

const std::vector<std::string> kAlgoNames = {"ring", "hd", "tree", "hier", "ps", "gossip"};

// The simulator's own keys, for what the trainer has no key for. The keys both read
// (parallel.*, net.algo/codec/servers/rounds, parallel.bucket_mb, device.peak_gflops /
// efficiency / memory_gbs) are the trainer's, with its definition (train_config.cpp).
std::vector<KeySpec> own_keys() {
  using K = KeyType;
  const std::vector<std::string> precisions = {"fp32", "tf32", "bf16", "fp16"};
  const std::vector<std::string> storage = {"fp32", "bf16", "fp16"};
  return {
      {"model.params", K::kFloat, "0", 0, 1e16, {},
       "parameter count N (0 = counted from the shape); the shape still sets attention and activations"},
      {"train.recompute", K::kBool, "false", 0, 0, {},
       "full activation recomputation: keep each layer's input only, redo its forward in backward"},
      {"parallel.micro_batch", K::kInt, "0", 0, 1048576, {},
       "sequences per micro-batch; when > 0 it sets parallel.microbatches = batch / (DP x this), so a DP sweep keeps it"},
      {"net.bandwidth", K::kString, "", 1, 0, {},
       "every link's bandwidth and any NIC cap (a rank's or a host's), e.g. 10Gbps ('' = as in the profile)"},
      {"net.latency", K::kString, "", 1, 0, {}, "every link's one-way latency, e.g. 5ms ('' = as in the profile)"},
      {"net.inter_bandwidth", K::kString, "", 1, 0, {}, "bandwidth of the links between sites only"},
      {"net.inter_latency", K::kString, "", 1, 0, {}, "latency of the links between sites only"},
      {"device.profile", K::kString, "cpu-this-machine", 1, 0, {},
       "device: a100, h100, h200, v100, cpu-this-machine (configs/devices/) or a .yaml path"},
      {"precision.compute", K::kChoice, "fp32", 0, 0, precisions, "matmul precision (picks the device peak; activations: 4 or 2 bytes)"},
      {"precision.params", K::kChoice, "fp32", 0, 0, storage, "stored parameters (half: plus an fp32 master copy)"},
      {"precision.grads", K::kChoice, "fp32", 0, 0, storage, "gradients, as stored and as sent when net.codec is none"},
  };
}

// The trainer keys the simulator reads.
const std::vector<std::string> kTrainKeysRead = {
    "model.name",         "model.vocab_size",  "model.n_ctx",        "model.n_layer",     "model.n_head",
    "model.n_embd",       "train.batch_size",  "train.seq_len",      "parallel.dp",       "parallel.pp",
    "parallel.tp",        "parallel.microbatches", "parallel.schedule", "parallel.bucket_mb", "net.profile",
    "net.algo",           "net.codec",         "net.servers",        "net.rounds",        "device.peak_gflops",
    "device.efficiency",  "device.memory_gbs", "parallel.vocab_parallel", "parallel.stages",
    "parallel.placement", "parallel.zero1", "model.tie_embeddings", "net.codec_scope",
    "strategy.name",      "strategy.inner_steps", "strategy.fragments", "strategy.overlap_steps",
    "parallel.pp_compress", "parallel.pp_fw_bits", "parallel.pp_bw_bits", "faults.slow_ranks", "faults.slowdown",
    "strategy.random_ratio", "strategy.topk_ratio", "strategy.bits", "strategy.chunk", "strategy.topk",
    "strategy.freeze_step", "faults.outages", "faults.links", "faults.bandwidth", "faults.burst_enter",
    "faults.burst_leave", "faults.burst_loss_good", "faults.burst_loss_bad", "train.steps",
    "data.epoch_samples", "faults.grad_spike_step", "faults.grad_spike_rank"};  // a spike on one rank: the norm over the world

std::string section(const std::string& key) { return key.substr(0, key.find('.')); }

bool has_key(const std::vector<KeySpec>& keys, const std::string& key) {
  return std::any_of(keys.begin(), keys.end(), [&](const KeySpec& s) { return s.key == key; });
}

std::optional<double> parse_override(const Config& c, const std::string& key, bool bandwidth) {
  const std::string& text = c.get_string(key);
  if (text.empty()) return std::nullopt;
  const std::optional<double> v = bandwidth ? netem::units::parse_bandwidth(text) : netem::units::parse_duration(text);
  if (!v)
    c.fail_constraint(key, bandwidth ? "expected a bandwidth like '25Gbps', '100Mbps' or 'unlimited'"
                                     : "expected a duration like '10ms', '5us' or '0'");
  return v;
}

// net.algo: the trainer also takes MPI's own allreduce, which runs outside netem, so the
// simulator has no cost for it.
Algo parse_algo(const Config& c) {
  const std::string& name = c.get_string("net.algo");
  const auto it = std::find(kAlgoNames.begin(), kAlgoNames.end(), name);
  if (it == kAlgoNames.end())
    c.fail_constraint("net.algo", "'" + name + "' runs outside the network model; the simulator takes ring, hd, "
                                  "tree, hier, ps, gossip");
  return Algo(it - kAlgoNames.begin());
}

// The DP gradient sync: the trainer's net.* and parallel.bucket_mb keys.
void read_dp_sync(const Config& c, SimSettings& s) {
  s.dp_algo = parse_algo(c);
  s.dp_codec = c.get_string("net.codec");
  try {
    coll::make_codec(s.dp_codec);
  } catch (const UsageError& e) {
    c.fail_constraint("net.codec", e.what());
  }
  s.dp_codec_across_sites = c.get_string("net.codec_scope") == "across_sites";
  if (s.dp_codec_across_sites && s.dp_algo != Algo::kHier)  // as the trainer (train_config.cpp)
    c.fail_constraint("net.codec_scope", std::string("across_sites needs net.algo = hier, not '") +
                                             algo_name(s.dp_algo) + "'");
  s.dp_bucket_bytes = c.get_float("parallel.bucket_mb") * 1048576.0;
  const std::string& strategy = c.get_string("strategy.name");
  s.strategy = strategy;
  const bool local = strategy == "diloco" || strategy == "streaming_diloco";
  s.inner_steps = local ? int(c.get_int("strategy.inner_steps")) : 0;
  s.random_ratio = c.get_float("strategy.random_ratio");
  s.topk_ratio = c.get_float("strategy.topk_ratio");
  s.bits = strategy_bits(c);
  s.chunk = int(c.get_int("strategy.chunk"));
  s.topk = int(c.get_int("strategy.topk"));
  if (strategy == "onebit_adam" || strategy == "quantized_adam") {  // compressed_adam.hpp
    s.momentum_codec = strategy == "onebit_adam" ? "onebit" : "kbit" + std::to_string(s.bits);
    s.freeze_step = int(c.get_int("strategy.freeze_step"));
    s.steps = int(c.get_int("train.steps"));
  }
  if (strategy == "streaming_diloco") {
    s.fragments = int(c.get_int("strategy.fragments"));
    s.overlap_steps = int(c.get_int("strategy.overlap_steps"));
  }
  s.dp_servers = int(c.get_int("net.servers"));
  s.dp_rounds = int(c.get_int("net.rounds"));
}

// parallel.microbatches, or batch / (DP x parallel.micro_batch) when that is given.
int microbatches(const Config& c, int batch, int dp) {
  const int64_t micro = c.get_int("parallel.micro_batch");
  if (micro == 0) return int(c.get_int("parallel.microbatches"));
  if (batch % (int64_t(dp) * micro) != 0)
    c.fail_constraint("parallel.micro_batch", "train.batch_size = " + std::to_string(batch) +
                                                  " is not divisible by parallel.dp x parallel.micro_batch = " +
                                                  std::to_string(dp) + " x " + std::to_string(micro));
  return int(batch / (int64_t(dp) * micro));
}

void check_layout(const Config& c, const SimSettings& s) {
  const GPTConfig& m = s.model;
  const par::Layout& g = s.grid;
  if (m.n_embd % m.n_head != 0)
    c.fail_constraint("model.n_head", "must divide model.n_embd = " + std::to_string(m.n_embd));
  if (m.n_head % g.tp != 0)
    c.fail_constraint("parallel.tp", "must divide model.n_head = " + std::to_string(m.n_head));
  if (g.pp > m.n_layer)
    c.fail_constraint("parallel.pp", "must be at most model.n_layer = " + std::to_string(m.n_layer) +
                                         " (every stage needs a layer)");
  if (s.seq_len > m.n_ctx)
    c.fail_constraint("train.seq_len", "must be at most model.n_ctx = " + std::to_string(m.n_ctx));
  if (s.batch_size % (g.dp * s.microbatches) != 0)
    c.fail_constraint("train.batch_size", "must be divisible by parallel.dp x parallel.microbatches = " +
                                              std::to_string(g.dp) + " x " + std::to_string(s.microbatches));
  if (int64_t(g.dp) * g.pp * g.tp > kMaxWorld)
    c.fail_constraint("parallel.dp", "DP x PP x TP = " + std::to_string(int64_t(g.dp) * g.pp * g.tp) +
                                         " ranks; the simulator takes at most " + std::to_string(kMaxWorld));
  if (s.dp_servers > g.dp)
    c.fail_constraint("net.servers", "must be at most parallel.dp = " + std::to_string(g.dp));
  if (s.zero1 && s.dp_algo != Algo::kRing)  // as the trainer: GradSync's ring reduce-scatter and allgather
    c.fail_constraint("parallel.zero1", std::string("needs net.algo = ring (ZeRO-1 reduce-scatters the gradients "
                                                    "and allgathers the parameters with the ring), not '") +
                                            algo_name(s.dp_algo) + "'");
}

}  // namespace

const char* algo_name(Algo a) { return kAlgoNames[size_t(a)].c_str(); }

std::vector<KeySpec> sim_schema() {
  std::vector<KeySpec> keys = train_schema();
  for (KeySpec& own : own_keys()) {
    if (has_key(keys, own.key)) continue;
    // After the last key of its section, so that to_yaml() writes each section once.
    auto last = std::find_if(keys.rbegin(), keys.rend(),
                             [&](const KeySpec& s) { return section(s.key) == section(own.key); });
    keys.insert(last == keys.rend() ? keys.end() : last.base(), std::move(own));
  }
  return keys;
}

std::vector<KeySpec> sim_help_schema() {
  std::vector<KeySpec> used;
  const std::vector<KeySpec> own = own_keys();
  for (const KeySpec& s : sim_schema())
    if (has_key(own, s.key) || std::count(kTrainKeysRead.begin(), kTrainKeysRead.end(), s.key)) used.push_back(s);
  return used;
}

SimSettings sim_settings(const Config& c) {
  SimSettings s;
  auto get_int = [&](const char* key) { return int(c.get_int(key)); };
  s.name = c.get_string("model.name");
  s.model = model_config(c);
  s.params = c.get_float("model.params");
  s.batch_size = get_int("train.batch_size");
  s.seq_len = get_int("train.seq_len");
  s.grid = {get_int("parallel.dp"), get_int("parallel.pp"), get_int("parallel.tp")};
  s.microbatches = microbatches(c, s.batch_size, s.grid.dp);
  s.recompute = c.get_bool("train.recompute");
  s.schedule = par::parse_schedule(c.get_string("parallel.schedule"));
  s.stage_layers = stage_layers(c, s.grid.pp, s.model.n_layer);
  s.placement = c.get_string("parallel.placement");
  s.zero1 = c.get_bool("parallel.zero1");
  s.net_path = c.get_string("net.profile");
  s.net = {parse_override(c, "net.bandwidth", true), parse_override(c, "net.latency", false),
           parse_override(c, "net.inter_bandwidth", true), parse_override(c, "net.inter_latency", false)};
  s.device = c.get_string("device.profile");
  s.peak_flops = c.get_float("device.peak_gflops") * 1e9;
  s.efficiency = c.get_float("device.efficiency");
  s.memory_bandwidth = c.get_float("device.memory_gbs") * 1e9;
  s.compute = parse_precision(c.get_string("precision.compute"));
  s.param_precision = parse_precision(c.get_string("precision.params"));
  s.grad_precision = parse_precision(c.get_string("precision.grads"));
  s.vocab_parallel = c.get_bool("parallel.vocab_parallel");
  s.pp_compress = c.get_string("parallel.pp_compress");
  s.pp_fw_bits = int(c.get_int("parallel.pp_fw_bits"));
  s.pp_bw_bits = int(c.get_int("parallel.pp_bw_bits"));
  s.epoch_samples = c.get_int("data.epoch_samples");
  read_dp_sync(c, s);
  check_layout(c, s);
  s.faults = fault_settings(c);
  check_fault_ranks(s.faults, s.grid.world());
  return s;
}

}  // namespace dtb::sim
