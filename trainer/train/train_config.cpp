#include "train/train_config.hpp"

#include <algorithm>

#include "cuda/availability.hpp"

namespace dtb {

std::vector<KeySpec> train_schema() {
  using K = KeyType;
  const double kMaxInt = 1e9;
  return {
      {"model.name", K::kString, "tiny", 1, 0, {}, "model name, used in result and checkpoint names"},
      {"model.vocab_size", K::kInt, "256", 2, 16777216, {}, "vocabulary size V"},
      {"model.n_ctx", K::kInt, "64", 1, 65536, {}, "maximum sequence length (position table rows)"},
      {"model.n_layer", K::kInt, "2", 1, 1024, {}, "transformer blocks L"},
      {"model.n_head", K::kInt, "4", 1, 1024, {}, "attention heads (must divide n_embd)"},
      {"model.n_embd", K::kInt, "64", 1, 65536, {}, "model width C"},
      {"model.tie_embeddings", K::kBool, "true", 0, 0, {},
       "wte is also the LM head (GPT-2); false: the last stage has its own lm_head (DT-FM), no tied sync"},
      {"data.path", K::kString, "data/fortunes.h5", 1, 0, {}, "token dataset (dtbench prepare)"},
      {"train.batch_size", K::kInt, "8", 1, 1048576, {}, "global batch B, in sequences"},
      {"train.seq_len", K::kInt, "64", 1, 65536, {}, "sequence length T (<= model.n_ctx)"},
      {"train.steps", K::kInt, "300", 0, kMaxInt, {}, "optimizer steps"},
      {"train.seed", K::kInt, "1337", 0, 9007199254740992.0, {}, "seed for weights and data order"},
      {"train.threads", K::kInt, "0", 0, 1024, {},
       "kernel threads per rank (0 = all cores; unless set: all cores for one rank on the wall clock, else 1)"},
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
      {"parallel.dp", K::kInt, "1", 1, 65536, {}, "data-parallel ranks (world = dp x pp x tp)"},
      {"parallel.pp", K::kInt, "1", 1, 1024, {}, "pipeline stages (<= model.n_layer)"},
      {"parallel.tp", K::kInt, "1", 1, 1024, {}, "tensor-parallel ranks (must divide model.n_head)"},
      {"parallel.microbatches", K::kInt, "1", 1, 65536, {},
       "micro-batches per step (batch_size divisible by dp x microbatches)"},
      {"parallel.schedule", K::kChoice, "1f1b", 0, 0, {"gpipe", "1f1b"}, "pipeline schedule"},
      {"parallel.stages", K::kString, "", 1, 0, {},
       "layers per stage separated by ':', e.g. '3:1' ('' = balanced)"},
      {"parallel.bucket_mb", K::kFloat, "1", 0, 1e6, {},
       "DP gradient bucket size in MiB (0 = one bucket: the whole gradient after the backward)"},
      {"parallel.zero1", K::kBool, "false", 0, 0, {}, "ZeRO-1: AdamW moments sharded across DP ranks"},
      {"parallel.vocab_parallel", K::kBool, "false", 0, 0, {},
       "embedding and LM head split by vocabulary rows across TP ranks, with a parallel cross-entropy"},
      {"parallel.placement", K::kString, "", 1, 0, {},
       "placement YAML: ranks (grid order), sites (per rank) ('' = identity)"},
      {"net.profile", K::kString, "", 1, 0, {}, "network profile configs/net/*.yaml ('' = unshaped)"},
      {"net.clock", K::kChoice, "virtual", 0, 0, {"virtual", "wall"},
       "time of the emulated network (a world of one rank, unless set: wall, its own step time)"},
      {"net.algo", K::kChoice, "ring", 0, 0, {"ring", "hd", "tree", "hier", "ps", "gossip", "mpi"},
       "allreduce algorithm of the DP gradient sync"},
      {"net.codec", K::kString, "none", 1, 0, {}, "DP gradient compression: none, fp16, bf16, int8[:B], topk[:R], sign[:B]"},
      {"net.servers", K::kInt, "1", 1, 65536, {}, "net.algo=ps: server shards, served by DP ranks j x DP / servers"},
      {"net.rounds", K::kInt, "10", 0, 1000000, {}, "net.algo=gossip: averaging rounds"},
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
  };
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
  // One rank sends nothing: its step time is its own, on the wall clock, unless asked.
  p.clock = p.world() == 1 && c.origin("net.clock") == "default" ? "wall" : c.get_string("net.clock");
  p.dp_algo = c.get_string("net.algo");
  p.codec = c.get_string("net.codec");
  p.servers = static_cast<int>(c.get_int("net.servers"));
  p.rounds = static_cast<int>(c.get_int("net.rounds"));
  p.device_gflops = c.get_float("device.peak_gflops");
  p.device_efficiency = c.get_float("device.efficiency");
  p.device_memory_gbs = c.get_float("device.memory_gbs");
  p.mfu_peak_gflops = c.get_float("device.mfu_peak_gflops");
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

  s.threads_set = c.origin("train.threads") != "default";
  read_parallel(c, s);
  check_layout(c, s);
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
  check_cuda_layout(c, s);
  check_backend(c);  // last: a config's own mistakes are named before this machine's limits
  return s;
}

}  // namespace dtb
