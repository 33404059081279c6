#pragma once
// What `dtbench sim` reads: the trainer's own keys, with the trainer's names and meaning
// (model.*, train.batch_size, train.seq_len, the layout parallel.*, the network and DP sync
// net.*, the device model device.peak_gflops / efficiency / memory_gbs; its other keys are
// accepted and ignored, so one config drives both), plus keys the trainer has no
// equivalent for: model.params, train.recompute, parallel.micro_batch, net.bandwidth and
// the other link overrides, device.profile and precision.*.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config.hpp"
#include "model/gpt2.hpp"
#include "parallel/grid.hpp"
#include "parallel/schedule.hpp"
#include "sim/device.hpp"
#include "train/faults.hpp"

namespace dtb::sim {

enum class Algo { kRing, kHd, kTree, kHier, kPs, kGossip };  // names as in `dtbench coll --algo`
const char* algo_name(Algo a);


// Changes to every link of the network profile (net.*); nullopt = as in the profile.
struct NetOverrides {
  std::optional<double> bandwidth, latency;              // all links (bandwidth: NIC caps too)
  std::optional<double> inter_bandwidth, inter_latency;  // links between sites only
};

struct SimSettings {
  std::string name;
  GPTConfig model;
  double params = 0;          // model.params; 0 = counted from the shape
  int batch_size = 1;         // global B, sequences
  int seq_len = 1;            // T
  par::Layout grid;           // the trainer's grid (parallel/grid.hpp)
  std::vector<int> stage_layers;  // parallel.stages: layers per stage (empty = balanced)
  std::string placement;      // parallel.placement: a placement file ('' = identity)
  bool zero1 = false;         // parallel.zero1: reduce-scatter the gradients, shard AdamW, allgather params
  int microbatches = 1;       // per DP replica and step
  bool recompute = false;     // full activation recomputation (train.recompute)
  par::ScheduleKind schedule = par::ScheduleKind::k1F1B;
  std::string net_path;       // "" = no limits at all
  NetOverrides net;
  std::string device;         // a shipped name or a .yaml path
  double peak_flops = 0;      // device.peak_gflops, FLOP/s; 0 = the device's at `compute`
  double efficiency = 0;      // 0 = the device's
  double memory_bandwidth = 0;  // bytes/s; 0 = the device's
  Precision compute = Precision::kFp32, param_precision = Precision::kFp32,
            grad_precision = Precision::kFp32;
  Algo dp_algo = Algo::kRing;    // net.algo
  std::string dp_codec = "none";  // net.codec
  bool dp_codec_across_sites = false;  // net.codec_scope = across_sites (hier: raw trees inside a site)
  double dp_bucket_bytes = 0;  // parallel.bucket_mb; 0 = one bucket: the whole gradient after the backward
  int dp_servers = 1;          // net.servers: ps shards
  int dp_rounds = 10;          // net.rounds: gossip
  bool vocab_parallel = false;  // parallel.vocab_parallel: wte and the LM head split over TP
  std::string pp_compress = "none";  // parallel.pp_compress: none | directq | aqsgd
  int pp_fw_bits = 4, pp_bw_bits = 8;  // parallel.pp_fw_bits / pp_bw_bits
  int64_t epoch_samples = 0;  // data.epoch_samples: AQ-SGD's buffers per boundary end (0 = unknown, not counted)
  int inner_steps = 0;          // strategy.name = diloco: strategy.inner_steps H (0 = ddp: every step)
  int fragments = 1;            // streaming_diloco: strategy.fragments F
  int overlap_steps = 0;        // streaming_diloco: strategy.overlap_steps tau
  std::string strategy = "ddp";  // strategy.name
  double random_ratio = 0.1, topk_ratio = 0.2;  // cocktail: strategy.random_ratio, topk_ratio
  int bits = 8;                                 // cocktail, quantized_adam: strategy.bits
  int chunk = 4096, topk = 32;                  // demo: strategy.chunk, strategy.topk
  // strategy.name = onebit_adam | quantized_adam (parallel/compressed_adam.hpp): the step
  // simulated is one after the warm-up, its momentum through the compressed server;
  // MOMENTUM_CODEC the quantizer ('' = neither strategy), FREEZE_STEP of STEPS (train.steps)
  // the warm-up at DDP's cost, for the volume over the run.
  std::string momentum_codec;
  int freeze_step = 0, steps = 0;
  // Gradient buckets every step (ddp) or not: DiLoCo's outer steps, cocktail's and demo's
  // own syncs, 1-bit Adam's compressed momentum.
  bool per_step_buckets() const { return strategy == "ddp"; }
  // Each worker steps alone (its loss and norm reductions stay inside it): DiLoCo, cocktail, demo.
  bool local() const { return strategy != "ddp" && momentum_codec.empty(); }
  FaultSettings faults;         // faults.*: stragglers, as the trainer reads them (train/faults.hpp)

  int micro_batch() const { return batch_size / (grid.dp * microbatches); }
};

// The trainer's keys with the simulator's inserted beside their sections (a key the
// trainer already has keeps the trainer's definition).
std::vector<KeySpec> sim_schema();
// Only the keys the simulator reads (for --help).
std::vector<KeySpec> sim_help_schema();

// Typed settings; an impossible model or layout, an unknown precision, an unparsable
// unit or codec throws UsageError naming the key and where its value came from.
SimSettings sim_settings(const Config& config);

}  // namespace dtb::sim
