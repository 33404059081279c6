#pragma once
// The keys the trainer understands (model.*, train.*, data.*, optim.*) and the typed
// settings built from them once every cross-key constraint has been checked.
#include <string>
#include <vector>

#include "config.hpp"
#include "model/gpt2.hpp"
#include "privacy/privacy_config.hpp"
#include "train/faults.hpp"

namespace dtb {

std::vector<KeySpec> train_schema();

struct OptimSettings {
  double lr, min_lr_ratio, beta1, beta2, eps, weight_decay, grad_clip;
  int warmup_steps;
};

// The parallel layout (parallel.*), the emulated network (net.*) and the device model
// (device.*) of a run under MPI. train.batch_size stays the global batch on any layout.
struct ParallelSettings {
  int dp = 1, pp = 1, tp = 1, microbatches = 1;
  std::string schedule = "1f1b";   // gpipe | 1f1b
  std::vector<int> stage_layers;   // layers per pipeline stage; empty = balanced
  double bucket_mb = 25;           // DP gradient bucket size, MiB (0 = one bucket); PyTorch DDP's 25
  bool zero1 = false;              // shard the AdamW moments across DP ranks
  bool vocab_parallel = false;     // wte and the LM head split by vocabulary rows across TP ranks
  std::string placement;           // YAML: grid position -> rank, rank -> site ('' = identity)
  std::string net_profile;         // configs/net/*.yaml ('' = unshaped)
  std::string clock = "virtual";   // virtual | wall
  std::string dp_algo = "ring";    // allreduce algorithm of the DP gradient sync
  std::string codec = "none";      // compression of the DP gradient sync
  std::string codec_scope = "everywhere";  // everywhere | across_sites (net.algo = hier only)
  bool error_feedback = true;      // net.error_feedback: lossy codecs carry what they lost
  int servers = 1, rounds = 10;    // ps: server shards; gossip: rounds
  double device_gflops = 0;        // device model peak (0: charge measured thread CPU time)
  double device_efficiency = 1;    // fraction of the peak the kernels reach
  double device_memory_gbs = 0;    // device model memory bandwidth, GB/s (0: optimizer free)
  double mfu_peak_gflops = 0;      // per-rank peak for MFU (0: device_gflops; both 0: n/a)
  // Pipeline-boundary compression (parallel/pp_compress.hpp): none | directq | aqsgd.
  std::string pp_compress = "none";
  int pp_fw_bits = 4, pp_bw_bits = 8, pp_warmup_steps = 0;
  std::string pp_rounding = "nearest";  // nearest | stochastic
  int world() const { return dp * pp * tp; }
};

// The DP strategy (strategy.*; parallel/dp_strategy.hpp): ddp syncs gradients every step,
// diloco takes inner_steps local steps per outer step, streaming_diloco syncs fragments in
// turn, each overlapping the next inner steps.
struct StrategySettings {
  std::string name = "ddp";      // ddp | diloco | streaming_diloco | onebit_adam | quantized_adam | cocktail | demo
  int inner_steps = 500;         // H: inner steps per outer step
  double outer_lr = 0.7;         // the outer Nesterov step's learning rate
  double outer_momentum = 0.9;   // its momentum mu
  int fragments = 1;             // streaming: fragments synced in turn (diloco: 1)
  int overlap_steps = 0;         // streaming: inner steps a sync overlaps, tau (diloco: 0)
  double mix = 0;                // streaming: a landed fragment = mix local + (1 - mix) anchor (diloco: 0)
  // cocktail (parallel/cocktail.hpp): random subset, then top-k of it, then BITS-bit values (32: fp32)
  double random_ratio = 0.1, topk_ratio = 0.2;
  int bits = 8;                  // cocktail: bits per kept value; quantized_adam: per momentum value
  // demo (parallel/demo.hpp): DCT-II over CHUNK-element chunks, TOPK per chunk sent, momentum decay
  int chunk = 4096, topk = 32;
  double momentum_decay = 0.999;
  int freeze_step = 100;         // onebit_adam, quantized_adam: full-precision Adam steps first
  bool compressed() const { return name == "onebit_adam" || name == "quantized_adam"; }  // compressed_adam.hpp
  // No per-step gradient sync across DP (each worker steps alone between its syncs).
  bool local() const { return name != "ddp" && !compressed(); }
  bool diloco() const { return name == "diloco" || name == "streaming_diloco"; }
};

struct TrainSettings {
  std::string name;          // model.name
  GPTConfig model;
  int batch_size, seq_len;   // global B, T
  int steps, threads, log_every, val_every, val_batches, checkpoint_every;
  uint64_t seed;
  std::string data_path, checkpoint_path, results_path;
  OptimSettings optim;
  ParallelSettings parallel;
  StrategySettings strategy;
  bool threads_set = false;  // train.threads given explicitly (not the default)
  std::string backend = "cpu";      // device.backend: cpu | cuda (train/backend.hpp)
  std::string precision = "fp32";   // device.precision: fp32 | bf16 (bf16: cuda only)
  std::string sampler = "windows";  // data.sampler: windows | epoch (data/epoch_sampler.hpp)
  int64_t epoch_samples = 0;        // data.epoch_samples: sequences per epoch (0 = all)
  FaultSettings faults;             // faults.*: stragglers (train/faults.hpp)
  int results_every = 50;           // train.results_every: results so far rewritten every N steps (0 = at the end)
  double watchdog_s = 300;          // net.watchdog_s: real seconds a rank waits for a silent peer (0 = forever)
  privacy::PrivacySettings privacy;  // privacy.*: DP-SGD, secure aggregation (privacy/privacy_config.hpp)
  double outlier_z = 0;             // optim.outlier_z: skip an update whose norm's z-score is above (0 = off; train/outlier.hpp)
  KernelMode kernels = KernelMode::kFast;  // train.kernels (cpu/kernel_set.hpp)
};

// Reads the typed settings and checks the constraints between keys (heads divide the width,
// T <= n_ctx, ...); throws UsageError naming the keys.
// The model.* shape keys as a GPTConfig (the trainer and the simulator read them alike).
GPTConfig model_config(const Config& config);
TrainSettings train_settings(const Config& config);
// strategy.bits, checked for strategy.name (quantized_adam and cocktail: 2..8 or 32): the
// trainer's and the simulator's one reading.
int strategy_bits(const Config& c);
// parallel.stages: one layer count per stage ('' = balanced: empty), checked against PP and
// N_LAYER (UsageError naming the key). The trainer and the simulator read it here.
std::vector<int> stage_layers(const Config& c, int pp, int n_layer);

// net.clock as a run of WORLD ranks uses it: auto (the default) is the wall clock for a world
// of one (it sends nothing: its step time is its own) and the virtual clock for more; virtual
// and wall are themselves. By value, so a resolved config (a results file's /config) read
// back is the same run. The trainer, `dtbench run`'s plan and `dtbench report` all use it.
std::string resolved_clock(const std::string& value, int world);

}  // namespace dtb
