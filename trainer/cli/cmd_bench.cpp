// dtbench bench train: time training steps against OpenBLAS sgemm on the same shapes.
// dtbench bench masks: secure aggregation's ChaCha20 keystream rate beside the simulator's.
#include <cstdio>
#include <iostream>

#include "cli/cli_common.hpp"
#include "cli/commands.hpp"
#include "privacy/secure_agg.hpp"
#include "sim/privacy_costs.hpp"
#include "train/bench.hpp"
#include "train/train_config.hpp"

namespace dtb {
namespace {

struct BenchCase {
  const char* name;
  GPTConfig model;
  int B, T;
};

// The shapes of configs/model/tiny.yaml and gpt2-124m.yaml, built in so that the benchmark
// runs from any folder; --config replaces them with a config's model and batch. The small
// model goes first: peak RSS only grows, so each figure is then the model's own.
const BenchCase kDefaultCases[] = {
    {"tiny", {256, 64, 4, 4, 128}, 8, 64},
    {"gpt2-124m", {50257, 1024, 12, 12, 768}, 4, 64},
};

int run_masks_bench() {
  constexpr size_t kBytes = size_t(64) << 20;
  const double rate = privacy::keystream_bytes_per_second(kBytes, 5);
  char line[256];
  std::snprintf(line, sizeof line,
                "ChaCha20 keystream (libsodium, 64 MiB, best of 5, thread CPU time): %.3g GB/s per core; "
                "dtbench sim --privacy charges %.3g GB/s (measured/charged %.2f)\n",
                rate / 1e9, sim::kChaCha20BytesPerS / 1e9, rate / sim::kChaCha20BytesPerS);
  std::cout << line;
  return 0;
}

}  // namespace

int cmd_bench(int argc, char** argv) {
  cxxopts::Options options(argv[0], "Benchmarks. 'train': ms per training step, tokens/s and "
                                    "GFLOP/s beside OpenBLAS sgemm on the same matmul shapes. 'masks': "
                                    "secure aggregation's ChaCha20 keystream rate beside the simulator's.");
  options.positional_help("train|masks");
  add_config_options(options);
  options.add_options()
      ("steps", "timed steps per model", cxxopts::value<int>()->default_value("5"), "N")
      ("threads", "kernel threads (0 = all cores)", cxxopts::value<int>()->default_value("0"), "N")
      ("h,help", "print this help");
  options.add_options("positional")("what", "benchmark", cxxopts::value<std::string>());
  options.parse_positional({"what"});
  auto args = parse_or_usage(options, argc, argv);
  if (args.count("help")) {
    std::cout << options.help({"", "config"});
    return 0;
  }
  const std::string what = args.count("what") ? args["what"].as<std::string>() : "";
  if (what == "masks") return run_masks_bench();
  if (what != "train")
    throw UsageError(std::string(argv[0]) + ": expected a benchmark name: train or masks (got '" + what + "')");
  const int steps = args["steps"].as<int>(), threads = args["threads"].as<int>();
  if (args.count("config") || args.count("set")) {
    TrainSettings s = train_settings(config_from_args(args, train_schema()));
    return run_train_bench(s.model, s.batch_size, s.seq_len, steps, threads, std::cout);
  }
  for (const BenchCase& c : kDefaultCases) {
    std::cout << "## " << c.name << "\n";
    run_train_bench(c.model, c.B, c.T, steps, threads, std::cout);
  }
  return 0;
}

}  // namespace dtb
