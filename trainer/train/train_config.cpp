#include "train/train_config.hpp"

#include <algorithm>

#include "cuda/availability.hpp"
#include "privacy/privacy_config.hpp"
#include "verify/verify_config.hpp"

namespace dtb {

std::vector<KeySpec> train_schema() {
  using K = KeyType;
  const double kMaxInt = 1e9;
  std::vector<KeySpec> keys = {
      {"model.name", K::kString, "tiny", 1, 0, {}, "model name, used in result and checkpoint names"},
      {"model.vocab_size", K::kInt, "256", 2, 16777216, {}, "vocabulary size V"},
      {"model.n_ctx", K::kInt, "64", 1, 65536, {}, "maximum sequence length (position table rows)"},
      {"model.n_layer", K::kInt, "2", 1, 1024, {}, "transformer blocks L"},
      {"model.n_head", K::kInt, "4", 1, 1024, {}, "attention heads (must divide n_embd)"},
      {"model.n_embd", K::kInt, "64", 1, 65536, {}, "model width C"},
      {"model.tie_embeddings", K::kBool, "true", 0, 0, {},
       "wte is also the LM head (GPT-2); false: the last stage has its own lm_head (DT-FM), no tied sync"},
      {"data.path", K::kString, "data/fortunes.h5", 1, 0, {}, "token dataset (dtbench prepare)"},
      {"data.sampler", K::kChoice, "windows", 0, 0, {"windows", "epoch"},
       "windows: a fresh random window per row; epoch: a fixed set of sequences with ids, shuffled per epoch"},
      {"data.epoch_samples", K::kInt, "0", 0, kMaxInt, {},
       "data.sampler=epoch: sequences per epoch, the first N disjoint windows (0 = all that fit)"},
      {"train.batch_size", K::kInt, "8", 1, 1048576, {}, "global batch B, in sequences"},
      {"train.seq_len", K::kInt, "64", 1, 65536, {}, "sequence length T (<= model.n_ctx)"},
      {"train.steps", K::kInt, "300", 0, kMaxInt, {}, "optimizer steps"},
      {"train.seed", K::kInt, "1337", 0, 9007199254740992.0, {}, "seed for weights and data order"},
      {"train.threads", K::kInt, "0", 0, 1024, {},
       "kernel threads per rank (0 = all cores; unless set: all cores for one rank on the wall clock, else 1)"},
      {"train.kernels", K::kChoice, "fast", 0, 0, {"fast", "reproducible"},
       "fast: OpenBLAS, bitwise per thread count and CPU; reproducible: fixed-order kernels, the same bits "
       "for any thread count and x86-64 CPU (cpu/kernel_set.hpp)"},
      {"train.log_every", K::kInt, "1", 1, kMaxInt, {}, "print a step line every N steps"},
      {"train.val_every", K::kInt, "50", 0, kMaxInt, {}, "validation every N steps (0 = never)"},
      {"train.val_batches", K::kInt, "8", 1, kMaxInt, {}, "batches per validation"},
      {"train.checkpoint", K::kString, "", 1, 0, {}, "final checkpoint file ('' = none)"},
      {"train.checkpoint_every", K::kInt, "0", 0, kMaxInt,
       {}, "also checkpoint every N steps, to <name>-stepNNNNNN.h5 (0 = off)"},
      {"train.results", K::kString, "", 1, 0, {},
       "results file ('' = results/runs/<name>-<time>.h5)"},
      {"train.results_every", K::kInt, "50", 0, kMaxInt, {},
       "rewrite the results file with the steps so far every N steps (0 = only at the end)"},
      {"optim.lr", K::kFloat, "0.001", 0, 10, {}, "peak learning rate", true},
      {"optim.min_lr_ratio", K::kFloat, "0.1", 0, 1, {}, "final lr as a fraction of the peak"},
      {"optim.warmup_steps", K::kInt, "20", 0, kMaxInt, {}, "linear warm-up steps"},
      {"optim.beta1", K::kFloat, "0.9", 0, 0.999999, {}, "AdamW first-moment decay"},
      {"optim.beta2", K::kFloat, "0.95", 0, 0.999999, {}, "AdamW second-moment decay"},
      {"optim.eps", K::kFloat, "1e-08", 0, 1, {}, "AdamW epsilon", true},
      {"optim.weight_decay", K::kFloat, "0.1", 0, 10, {}, "decoupled weight decay (matrices only)"},
      {"optim.grad_clip", K::kFloat, "1", 0, 1e9, {}, "global grad-norm clip (0 = off)"},
      {"optim.outlier_z", K::kFloat, "0", 0, 1e6, {},
       "skip an update whose grad norm's z-score over the last 128 norms exceeds this (llm.c's; 0 = off)"},
      {"parallel.dp", K::kInt, "1", 1, 65536, {}, "data-parallel ranks (world = dp x pp x tp)"},
      {"parallel.pp", K::kInt, "1", 1, 1024, {}, "pipeline stages (<= model.n_layer)"},
      {"parallel.tp", K::kInt, "1", 1, 1024, {}, "tensor-parallel ranks (must divide model.n_head)"},
      {"parallel.microbatches", K::kInt, "1", 1, 65536, {},
       "micro-batches per step (batch_size divisible by dp x microbatches)"},
      {"parallel.schedule", K::kChoice, "1f1b", 0, 0, {"gpipe", "1f1b"}, "pipeline schedule"},
      {"parallel.stages", K::kString, "", 1, 0, {},
       "layers per stage separated by ':', e.g. '3:1' ('' = balanced)"},
      {"parallel.bucket_mb", K::kFloat, "25", 0, 1e6, {},
       "DP gradient bucket size in MiB, as PyTorch DDP's bucket_cap_mb (0 = one bucket: the whole gradient after the backward)"},
      {"parallel.zero1", K::kBool, "false", 0, 0, {}, "ZeRO-1: AdamW moments sharded across DP ranks"},
      {"parallel.vocab_parallel", K::kBool, "false", 0, 0, {},
       "embedding and LM head split by vocabulary rows across TP ranks, with a parallel cross-entropy"},
      {"parallel.pp_compress", K::kChoice, "none", 0, 0, {"none", "directq", "aqsgd"},
       "pipeline-boundary compression: directq quantizes activations, aqsgd their change per sample (needs data.sampler=epoch)"},
      {"parallel.pp_fw_bits", K::kInt, "4", 2, 32, {}, "parallel.pp_compress: bits per forward activation value"},
      {"parallel.pp_bw_bits", K::kInt, "8", 2, 32, {}, "parallel.pp_compress: bits per backward gradient value"},
      {"parallel.pp_warmup_steps", K::kInt, "0", 0, kMaxInt, {},
       "parallel.pp_compress: first steps sent in fp32 (aqsgd fills its buffers)"},
      {"parallel.pp_rounding", K::kChoice, "nearest", 0, 0, {"nearest", "stochastic"},
       "parallel.pp_compress: round to nearest even, or stochastically (seeded by train.seed)"},
      {"parallel.placement", K::kString, "", 1, 0, {},
       "placement YAML: ranks (grid order), sites (per rank) ('' = identity)"},
      {"net.profile", K::kString, "", 1, 0, {}, "network profile configs/net/*.yaml ('' = unshaped)"},
      {"net.clock", K::kChoice, "auto", 0, 0, {"auto", "virtual", "wall"},
       "time of the emulated network: virtual, wall, or auto (wall on one rank: its own step time; virtual on more)"},
      {"net.algo", K::kChoice, "ring", 0, 0, {"ring", "hd", "tree", "hier", "ps", "gossip", "mpi"},
       "allreduce algorithm of the DP gradient sync"},
      {"net.codec", K::kString, "none", 1, 0, {}, "DP gradient (diloco: pseudo-gradient) compression: none, fp16, bf16, int8[:B], int4[:B], topk[:R], sign[:B]"},
      {"net.codec_scope", K::kChoice, "everywhere", 0, 0, {"everywhere", "across_sites"},
       "where net.codec applies: every message, or (net.algo = hier) only the site leaders' ring across sites"},
      {"net.error_feedback", K::kChoice, "on", 0, 0, {"on", "off"},
       "lossy codecs keep what an encoding lost and add it to the next send (EF-SGD)"},
      {"net.servers", K::kInt, "1", 1, 65536, {}, "net.algo=ps: server shards, served by DP ranks j x DP / servers"},
      {"net.rounds", K::kInt, "10", 0, 1000000, {}, "net.algo=gossip: averaging rounds"},
      {"strategy.name", K::kChoice, "ddp", 0, 0,
       {"ddp", "diloco", "streaming_diloco", "onebit_adam", "quantized_adam", "cocktail", "demo"},
       "DP strategy: ddp (gradients allreduced every step), diloco (H local AdamW steps, then an outer Nesterov step "
       "on the averaged pseudo-gradient; net.codec compresses it), streaming_diloco (fragments synced in turn, "
       "overlapping inner steps), onebit_adam / quantized_adam (Adam; after freeze_step steps the variance frozen "
       "and the momentum sent as 1 bit / strategy.bits bits through a sharded server with error feedback), "
       "cocktail (CocktailSGD: local AdamW, the model delta sent randomly sparsified, top-k and quantized every "
       "step), demo (DeMo: local momentum, top-k of its chunked DCT all-gathered, sign step)"},
      {"strategy.freeze_step", K::kInt, "100", 1, kMaxInt, {},
       "onebit_adam, quantized_adam: full-precision AdamW steps (DDP) before the variance freezes and the momentum "
       "is compressed (DeepSpeed's freeze_step)"},
      {"strategy.bits", K::kInt, "8", 2, 32, {},
       "quantized_adam: bits per momentum value, 2..8, 512-value buckets (AQ-SGD's dp_bits); cocktail: bits per kept "
       "value, 2..8 max-scaled per 128 values, or 32 = fp32 (lossless)"},
      {"strategy.inner_steps", K::kInt, "500", 1, kMaxInt, {}, "diloco: inner steps H per outer step"},
      {"strategy.outer_lr", K::kFloat, "0.7", 0, 10, {}, "diloco: outer Nesterov learning rate"},
      {"strategy.outer_momentum", K::kFloat, "0.9", 0, 0.999999, {}, "diloco: outer Nesterov momentum"},
      {"strategy.fragments", K::kInt, "2", 1, 65536, {},
       "streaming_diloco: fragments (contiguous slices of each rank's buffer) synced in turn, H/F steps apart"},
      {"strategy.overlap_steps", K::kInt, "1", 0, kMaxInt, {},
       "streaming_diloco: inner steps a fragment's sync overlaps before it lands (tau < H)"},
      {"strategy.mix", K::kFloat, "0.5", 0, 1, {},
       "streaming_diloco: a landed fragment = mix x local + (1 - mix) x the outer step's result"},
      {"strategy.random_ratio", K::kFloat, "0.1", 1e-6, 1, {}, "cocktail: share of each chunk's elements in the random (rolling) subset"},
      {"strategy.topk_ratio", K::kFloat, "0.2", 1e-6, 1, {}, "cocktail: share of the random subset kept by top-k"},
      {"strategy.chunk", K::kInt, "4096", 1, 16777216, {}, "demo: elements per DCT-II chunk of each rank's buffer"},
      {"strategy.topk", K::kInt, "32", 1, 16777216, {}, "demo: DCT components sent per chunk (<= strategy.chunk)"},
      {"strategy.momentum_decay", K::kFloat, "0.999", 0, 0.999999, {}, "demo: decay of the local momentum (DeMo's compression_decay)"},
      {"net.watchdog_s", K::kFloat, "300", 0, 1e9, {},
       "end the job when a rank waits this many real seconds for a peer that does not answer (0 = never)"},
      {"device.peak_gflops", K::kFloat, "0", 0, 1e12, {},
       "device model peak GFLOP/s per rank for the virtual clock (0 = charge measured CPU time; the sim: "
       "device.profile's peak at precision.compute)"},
      // One definition for the trainer and dtbench sim: 0 takes the sim's device.profile
      // value; the trainer has no device files, so there 0 means 1 and "free".
      {"device.efficiency", K::kFloat, "0", 0, 1, {},
       "fraction of the device peak reached (0 = the sim's device.profile's; the trainer: 1)"},
      {"device.memory_gbs", K::kFloat, "0", 0, 1e6, {},
       "device memory bandwidth, GB/s: AdamW costs its bytes / this (0 = the sim's device.profile's; "
       "the trainer: optimizer not charged)"},
      {"device.mfu_peak_gflops", K::kFloat, "0", 0, 1e12, {},
       "peak GFLOP/s per rank for MFU (0 = device.peak_gflops; CPU: the measured sgemm rate)"},
      backend_key_spec(),    // device.backend: cpu | cuda (cuda/availability.hpp)
      precision_key_spec(),  // device.precision: fp32 | bf16
      // Faults on purpose (train/faults.hpp): stragglers.
      {"faults.slow_ranks", K::kString, "", 1, 0, {}, "stragglers: world ranks whose compute is slowed, e.g. 1,3 ('' = none)"},
      {"faults.slowdown", K::kFloat, "1", 1, 1e6, {}, "the slow ranks' compute takes this many times as long (1 = off)"},
  };
  for (KeySpec& k : verify::key_specs()) keys.push_back(std::move(k));  // verify.* (verify/verify_config.hpp)
  for (KeySpec& k : privacy::key_specs()) keys.push_back(std::move(k));  // privacy.* (privacy/privacy_config.hpp)
  for (KeySpec& k : more_fault_key_specs()) keys.push_back(std::move(k));  // faults.*: links, spikes (train/faults.hpp)
  return keys;
}

namespace {

void read_parallel(const Config& c, TrainSettings& s) {
  ParallelSettings& p = s.parallel;
  p.dp = static_cast<int>(c.get_int("parallel.dp"));
  p.pp = static_cast<int>(c.get_int("parallel.pp"));
  p.tp = static_cast<int>(c.get_int("parallel.tp"));
  p.microbatches = static_cast<int>(c.get_int("parallel.microbatches"));
  p.schedule = c.get_string("parallel.schedule");
  p.stage_layers = stage_layers(c, p.pp, s.model.n_layer);
  p.bucket_mb = c.get_float("parallel.bucket_mb");
  p.zero1 = c.get_bool("parallel.zero1");
  p.vocab_parallel = c.get_bool("parallel.vocab_parallel");
  p.placement = c.get_string("parallel.placement");
  p.net_profile = c.get_string("net.profile");
  p.clock = resolved_clock(c.get_string("net.clock"), p.world());
  p.dp_algo = c.get_string("net.algo");
  p.codec = c.get_string("net.codec");
  p.codec_scope = c.get_string("net.codec_scope");
  p.error_feedback = c.get_string("net.error_feedback") == "on";
  p.servers = static_cast<int>(c.get_int("net.servers"));
  p.rounds = static_cast<int>(c.get_int("net.rounds"));
  p.device_gflops = c.get_float("device.peak_gflops");
  p.device_efficiency = c.get_float("device.efficiency");
  p.device_memory_gbs = c.get_float("device.memory_gbs");
  p.mfu_peak_gflops = c.get_float("device.mfu_peak_gflops");
  p.pp_compress = c.get_string("parallel.pp_compress");
  p.pp_fw_bits = static_cast<int>(c.get_int("parallel.pp_fw_bits"));
  p.pp_bw_bits = static_cast<int>(c.get_int("parallel.pp_bw_bits"));
  p.pp_warmup_steps = static_cast<int>(c.get_int("parallel.pp_warmup_steps"));
  p.pp_rounding = c.get_string("parallel.pp_rounding");
}

// Pipeline compression needs a pipeline, and AQ-SGD samples that come back (ids), on one
// replica: the epoch shuffle moves a sample between DP replicas, whose buffers are their own.
void check_pp_compress(const Config& c, const TrainSettings& s) {
  const ParallelSettings& p = s.parallel;
  if (p.pp_compress == "none") return;
  if (p.pp < 2)
    c.fail_constraint("parallel.pp_compress", p.pp_compress + " compresses pipeline boundaries: needs parallel.pp >= 2");
  if (p.pp_compress != "aqsgd") return;
  if (s.sampler != "epoch")
    c.fail_constraint("parallel.pp_compress", "aqsgd keeps a buffer per training sample: needs data.sampler = epoch");
  if (p.dp != 1)
    c.fail_constraint("parallel.pp_compress", "aqsgd needs parallel.dp = 1 (the epoch shuffle moves samples "
                                              "between replicas, and each replica's buffers are its own)");
}

// device.backend = cuda runs one stage holding every layer (parallel/stage_compute.hpp,
// BackendStage): one rank, one micro-batch, timed on the wall clock or a device model.
// Checked on the config alone, so the answer is the same on every machine.
void check_cuda_layout(const Config& c, const TrainSettings& s) {
  if (s.backend != "cuda") return;
  const ParallelSettings& p = s.parallel;
  if (p.world() != 1)
    c.fail_constraint("device.backend", "cuda trains on one rank only (here parallel.dp x parallel.pp x parallel.tp = " +
                                            std::to_string(p.world()) + "): use device.backend = cpu");
  if (p.microbatches != 1)
    c.fail_constraint("device.backend", "cuda trains one micro-batch per step (here parallel.microbatches = " +
                                            std::to_string(p.microbatches) + ")");
  if (p.clock == "virtual" && p.device_gflops == 0)
    c.fail_constraint("device.backend", "cuda needs net.clock = wall or a device model (device.peak_gflops): the "
                                        "virtual clock charges the CPU time of the main thread, not the GPU's");
}

// The layout must split the model and the batch exactly: checked before any work.
void check_layout(const Config& c, const TrainSettings& s) {
  const ParallelSettings& p = s.parallel;
  if (s.model.n_head % p.tp != 0)
    c.fail_constraint("parallel.tp", "must divide model.n_head = " + std::to_string(s.model.n_head));
  if (p.zero1 && p.dp_algo != "ring")
    c.fail_constraint("parallel.zero1", "needs net.algo = ring (ZeRO-1 reduce-scatters the gradients and "
                                        "allgathers the parameters with the ring), not '" + p.dp_algo + "'");
  if (p.vocab_parallel && p.tp > s.model.vocab_size)
    c.fail_constraint("parallel.tp", "must be at most model.vocab_size = " + std::to_string(s.model.vocab_size) +
                                         " with parallel.vocab_parallel (every TP rank needs a vocabulary row)");
  if (p.pp > s.model.n_layer)
    c.fail_constraint("parallel.pp", "must be at most model.n_layer = " + std::to_string(s.model.n_layer) +
                                         " (every stage needs a layer)");
  if (s.batch_size % (p.dp * p.microbatches) != 0)
    c.fail_constraint("train.batch_size", "must be divisible by parallel.dp x parallel.microbatches = " +
                                              std::to_string(p.dp * p.microbatches));
  if (p.servers > p.dp)
    c.fail_constraint("net.servers", "must be at most parallel.dp = " + std::to_string(p.dp));
  if (p.codec_scope == "across_sites" && p.dp_algo != "hier")
    c.fail_constraint("net.codec_scope", "across_sites needs net.algo = hier (the only algorithm whose messages "
                                         "inside a site and across sites are separate levels), not '" + p.dp_algo + "'");
}

}  // namespace

int strategy_bits(const Config& c) {
  const int bits = static_cast<int>(c.get_int("strategy.bits"));
  const std::string& name = c.get_string("strategy.name");
  if (name == "quantized_adam" && bits > 8 && bits != 32)
    c.fail_constraint("strategy.bits", "quantized_adam takes 2..8 bits, or 32 (fp32, no quantization)");
  if (name == "cocktail" && bits > 8 && bits != 32)
    c.fail_constraint("strategy.bits", "must be 2..8 or 32 (fp32, no quantization)");
  return bits;
}

namespace {

// cocktail's and demo's keys (parallel/cocktail.hpp, demo.hpp); refused with any other strategy.
void read_compressed_strategy(const Config& c, TrainSettings& s) {
  StrategySettings& st = s.strategy;
  // strategy.bits is also quantized_adam's (read_compressed_adam checks it there).
  const std::vector<std::string> cocktail = {"strategy.random_ratio", "strategy.topk_ratio"};
  const std::vector<std::string> demo = {"strategy.chunk", "strategy.topk", "strategy.momentum_decay"};
  for (const KeySpec& k : c.schema()) {
    const bool mine = std::count(cocktail.begin(), cocktail.end(), k.key) ? st.name == "cocktail"
                      : std::count(demo.begin(), demo.end(), k.key)     ? st.name == "demo"
                                                                         : true;
    if (!mine && c.get_float(k.key) != std::stod(k.default_value))
      c.fail_constraint(k.key, "needs strategy.name = " + std::string(std::count(demo.begin(), demo.end(), k.key) ? "demo" : "cocktail"));
  }
  if (st.name != "cocktail" && st.name != "demo") return;
  st.random_ratio = c.get_float("strategy.random_ratio");
  st.topk_ratio = c.get_float("strategy.topk_ratio");
  st.bits = strategy_bits(c);
  st.chunk = static_cast<int>(c.get_int("strategy.chunk"));
  st.topk = static_cast<int>(c.get_int("strategy.topk"));
  st.momentum_decay = c.get_float("strategy.momentum_decay");
  if (st.topk > st.chunk)
    c.fail_constraint("strategy.topk", "must be at most strategy.chunk = " + std::to_string(st.chunk));
  // Each rank chunks its own buffer, so an element two ranks of a worker both hold (TP's
  // replicated LayerNorms and biases, the tied embedding on the first and last stage) would
  // be chosen, and updated, differently on each: those layouts are refused.
  if (s.parallel.tp > 1)
    c.fail_constraint("parallel.tp", st.name + " needs parallel.tp = 1 (TP ranks' replicated parameters would diverge)");
  if (s.parallel.pp > 1 && s.model.tie_embeddings)
    c.fail_constraint("parallel.pp", st.name + " with parallel.pp > 1 needs model.tie_embeddings = false (the two "
                                     "embedding copies would diverge)");
  if (s.parallel.codec != "none")
    c.fail_constraint("net.codec", st.name + " compresses with its own strategy.* keys; net.codec must be none");
}

// strategy.freeze_step and strategy.bits (compressed_adam.hpp), by value as read_strategy's.
void read_compressed_adam(const Config& c, TrainSettings& s) {
  StrategySettings& st = s.strategy;
  st.freeze_step = static_cast<int>(c.get_int("strategy.freeze_step"));
  st.bits = strategy_bits(c);
  for (const KeySpec& k : c.schema()) {
    const bool set = (k.key == "strategy.freeze_step" || k.key == "strategy.bits") &&
                     c.get_float(k.key) != std::stod(k.default_value);
    if (set && k.key == "strategy.bits" && st.name != "quantized_adam" && st.name != "cocktail")
      c.fail_constraint(k.key, "needs strategy.name = quantized_adam or cocktail");
    if (set && k.key == "strategy.freeze_step" && !st.compressed())
      c.fail_constraint(k.key, "needs strategy.name = onebit_adam or quantized_adam");
  }
  if (!st.compressed()) return;
  const std::string what = st.name + " compresses the momentum itself";
  if (s.parallel.zero1) c.fail_constraint("strategy.name", what + "; parallel.zero1 shards the moments: use one or the other");
  if (s.backend != "cpu") c.fail_constraint("strategy.name", st.name + " needs device.backend = cpu (it reads the moments)");
  if (s.parallel.codec != "none")
    c.fail_constraint("net.codec", what + " after a full-precision warm-up; net.codec must be none, not '" +
                                       s.parallel.codec + "'");
}

// strategy.*: the DP strategy and what it cannot be combined with.
void read_strategy(const Config& c, TrainSettings& s) {
  StrategySettings& st = s.strategy;
  st.name = c.get_string("strategy.name");
  st.inner_steps = static_cast<int>(c.get_int("strategy.inner_steps"));
  st.outer_lr = c.get_float("strategy.outer_lr");
  st.outer_momentum = c.get_float("strategy.outer_momentum");
  if (st.name == "streaming_diloco") {
    st.fragments = static_cast<int>(c.get_int("strategy.fragments"));
    st.overlap_steps = static_cast<int>(c.get_int("strategy.overlap_steps"));
    st.mix = c.get_float("strategy.mix");
    if (st.fragments > st.inner_steps)
      c.fail_constraint("strategy.fragments", "must be at most strategy.inner_steps = " + std::to_string(st.inner_steps) +
                                                  " (one fragment's sync per H / F steps)");
    if (st.overlap_steps >= st.inner_steps)
      c.fail_constraint("strategy.overlap_steps", "must be below strategy.inner_steps = " + std::to_string(st.inner_steps) +
                                                      " (a fragment's sync lands before its next one starts)");
  } else {
    // By value, not by origin: a resolved config (a results file's /config, as dtbench
    // verify re-runs it) names every key, at its default where the run did not set it.
    for (const KeySpec& k : c.schema())
      if ((k.key == "strategy.fragments" || k.key == "strategy.overlap_steps" || k.key == "strategy.mix") &&
          c.get_float(k.key) != std::stod(k.default_value))
        c.fail_constraint(k.key, "needs strategy.name = streaming_diloco");
  }
  read_compressed_strategy(c, s);
  read_compressed_adam(c, s);
  if (!st.local()) return;
  if (s.parallel.zero1)
    c.fail_constraint("strategy.name", st.name + " keeps a whole replica per worker; parallel.zero1 shards "
                                       "the moments across DP ranks: use one or the other");
  if (s.backend != "cpu")
    c.fail_constraint("strategy.name", st.name + " needs device.backend = cpu (it reads the parameters)");
  if (s.parallel.dp_algo == "mpi")
    c.fail_constraint("strategy.name", st.name + " averages through netem; net.algo = mpi runs outside it");
}

}  // namespace

std::vector<int> stage_layers(const Config& c, int pp, int n_layer) {
  std::vector<int> out;
  const std::string& text = c.get_string("parallel.stages");
  size_t start = 0;
  while (start < text.size()) {
    const size_t comma = std::min(text.find(':', start), text.size());
    const std::string item = text.substr(start, comma - start);
    if (item.empty() || item.find_first_not_of("0123456789 ") != std::string::npos || item.size() > 6)
      c.fail_constraint("parallel.stages", "must be layer counts separated by ':', e.g. '3:1'");
    out.push_back(std::stoi(item));
    start = comma + 1;
  }
  int sum = 0, min = n_layer;
  for (int l : out) sum += l, min = std::min(min, l);
  if (!out.empty() && (int(out.size()) != pp || sum != n_layer || min < 1))
    c.fail_constraint("parallel.stages", "must give parallel.pp = " + std::to_string(pp) +
                                             " counts of >= 1 layer summing to model.n_layer = " + std::to_string(n_layer));
  return out;
}

GPTConfig model_config(const Config& c) {
  GPTConfig m;
  m.vocab_size = static_cast<int>(c.get_int("model.vocab_size"));
  m.n_ctx = static_cast<int>(c.get_int("model.n_ctx"));
  m.n_layer = static_cast<int>(c.get_int("model.n_layer"));
  m.n_head = static_cast<int>(c.get_int("model.n_head"));
  m.n_embd = static_cast<int>(c.get_int("model.n_embd"));
  m.tie_embeddings = c.get_bool("model.tie_embeddings");
  return m;
}

TrainSettings train_settings(const Config& c) {
  TrainSettings s;
  s.name = c.get_string("model.name");
  s.model = model_config(c);
  s.batch_size = static_cast<int>(c.get_int("train.batch_size"));
  s.seq_len = static_cast<int>(c.get_int("train.seq_len"));
  s.steps = static_cast<int>(c.get_int("train.steps"));
  s.seed = static_cast<uint64_t>(c.get_int("train.seed"));
  s.threads = static_cast<int>(c.get_int("train.threads"));
  s.log_every = static_cast<int>(c.get_int("train.log_every"));
  s.val_every = static_cast<int>(c.get_int("train.val_every"));
  s.val_batches = static_cast<int>(c.get_int("train.val_batches"));
  s.checkpoint_every = static_cast<int>(c.get_int("train.checkpoint_every"));
  s.data_path = c.get_string("data.path");
  s.checkpoint_path = c.get_string("train.checkpoint");
  s.results_path = c.get_string("train.results");
  s.results_every = static_cast<int>(c.get_int("train.results_every"));
  s.watchdog_s = c.get_float("net.watchdog_s");
  s.optim.lr = c.get_float("optim.lr");
  s.optim.min_lr_ratio = c.get_float("optim.min_lr_ratio");
  s.optim.warmup_steps = static_cast<int>(c.get_int("optim.warmup_steps"));
  s.optim.beta1 = c.get_float("optim.beta1");
  s.optim.beta2 = c.get_float("optim.beta2");
  s.optim.eps = c.get_float("optim.eps");
  s.optim.weight_decay = c.get_float("optim.weight_decay");
  s.optim.grad_clip = c.get_float("optim.grad_clip");
  s.outlier_z = c.get_float("optim.outlier_z");

  s.threads_set = c.get_int("train.threads") != 0;  // by value: a resolved config names every key
  s.sampler = c.get_string("data.sampler");
  s.epoch_samples = c.get_int("data.epoch_samples");
  read_parallel(c, s);
  check_layout(c, s);
  check_pp_compress(c, s);
  if (s.model.n_embd % s.model.n_head != 0)
    c.fail_constraint("model.n_head", "must divide model.n_embd = " +
                                          std::to_string(s.model.n_embd));
  if (s.seq_len > s.model.n_ctx)
    c.fail_constraint("train.seq_len", "must be at most model.n_ctx = " +
                                           std::to_string(s.model.n_ctx));
  if (s.name.empty() || s.name.find('/') != std::string::npos)
    c.fail_constraint("model.name", "must be a non-empty name without '/'");
  if (s.data_path.empty()) c.fail_constraint("data.path", "must name a token dataset");
  s.backend = c.get_string("device.backend");
  s.precision = c.get_string("device.precision");
  read_strategy(c, s);
  s.faults = fault_settings(c);
  check_fault_ranks(s.faults, s.parallel.world());
  check_cuda_layout(c, s);
  s.kernels = c.get_string("train.kernels") == "fast" ? KernelMode::kFast : KernelMode::kReproducible;
  if (s.kernels == KernelMode::kReproducible && s.backend != "cpu")
    c.fail_constraint("train.kernels", "reproducible runs the CPU kernels: it needs device.backend = cpu");
  // The strategies' and DP-SGD's own arithmetic (compressed momentum, DCT, codecs, noise)
  // is built with the fast flags and glibc's math: not part of the reproducible set.
  if (s.kernels == KernelMode::kReproducible && s.strategy.name != "ddp")
    c.fail_constraint("train.kernels", "reproducible needs strategy.name = ddp (" + s.strategy.name +
                                           "'s own arithmetic is not in the reproducible set)");
  verify::verify_settings(c);  // the verify.* keys, checked here with the rest
  s.privacy = privacy::privacy_settings(c);
  if (s.kernels == KernelMode::kReproducible && s.privacy.dp_sgd)
    c.fail_constraint("train.kernels", "reproducible needs privacy.dp_sgd = off (its noise uses glibc's log and cos)");
  if (s.outlier_z > 0 && (s.strategy.name == "demo" || s.strategy.compressed()))
    c.fail_constraint("optim.outlier_z", s.strategy.name + " replaces the AdamW update the outlier skip would skip");
  check_backend(c);  // last: a config's own mistakes are named before this machine's limits
  return s;
}

std::string resolved_clock(const std::string& value, int world) {
  if (value != "auto") return value;
  return world == 1 ? "wall" : "virtual";
}

}  // namespace dtb
