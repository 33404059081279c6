// dtbench plan: DT-FM's scheduler (trainer/sim/dtfm_*.hpp). Searches a placement for a
// DP x PP layout on a network profile, ranks the best candidates with the simulator,
// writes the winner as a placement file (parallel.placement) and prints its cost beside
// Megatron's order and random placements. No MPI.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <optional>

#include "cli/cli_common.hpp"
#include "cli/commands.hpp"
#include "cli/sim_args.hpp"
#include "provenance.hpp"
#include "sim/dtfm_plan.hpp"
#include "sim/sim_config.hpp"
#include "units.hpp"
#include "usage_error.hpp"

namespace dtb {
namespace {

void add_options(cxxopts::Options& options) {
  options.add_options()
      ("preset", "configs/sim/NAME.yaml as the first config", cxxopts::value<std::string>(), "NAME")
      ("net", "network profile (same as --set net.profile=FILE)", cxxopts::value<std::string>(), "FILE")
      ("device", "device profile (same as --set device.profile=NAME)", cxxopts::value<std::string>(), "NAME")
      ("out", "the plan's placement file (default results/runs/plan-<name>-<time>.yaml; 'none' = no file)",
       cxxopts::value<std::string>(), "FILE")
      ("out-random", "also write the slowest simulated random placement (for comparison runs)",
       cxxopts::value<std::string>(), "FILE")
      ("seed", "seeds the search and the random placements", cxxopts::value<uint64_t>()->default_value("1"), "N")
      ("random", "random placements to compare with (at least 20: the mean and worst of fewer say little)",
       cxxopts::value<int>()->default_value("20"), "N")
      ("population", "the genetic algorithm's population", cxxopts::value<int>()->default_value("100"), "N")
      ("trials", "the genetic algorithm's offspring (DT-FM: 4900)", cxxopts::value<int>()->default_value("4900"), "N")
      ("candidates", "the search's best, ranked by the simulator", cxxopts::value<int>()->default_value("5"), "N")
      ("world", "the ranks the job runs on (default: parallel.dp x parallel.pp)", cxxopts::value<int>(), "N")
      ("c-dp", "c_DP, one stage's gradient bytes (e.g. 1GB, 355MB; default: the model's at precision.grads)",
       cxxopts::value<std::string>(), "SIZE")
      ("c-pp", "c_PP, one pipeline's activation bytes per boundary and step (e.g. 0.28GB; default: the model's)",
       cxxopts::value<std::string>(), "SIZE")
      ("h,help", "print this help");
  add_config_options(options);
}

int at_least(const cxxopts::ParseResult& args, const char* key, int least) {
  const int v = args[key].as<int>();
  if (v < least) throw UsageError(std::string("--") + key + " " + std::to_string(v) + ": allowed: >= " + std::to_string(least));
  return v;
}

// --c-dp / --c-pp: a size as network profiles write them (netem/units.hpp), > 0; 0 = not given.
double volume(const cxxopts::ParseResult& args, const char* key) {
  if (!args.count(key)) return 0;
  const std::string text = args[key].as<std::string>();
  const std::optional<uint64_t> bytes = netem::units::parse_bytes(text);
  if (!bytes || *bytes == 0)
    throw UsageError(std::string("--") + key + " '" + text + "': allowed: a size > 0 in bytes, e.g. 1GB, 280MB, 4MiB");
  return double(*bytes);
}

}  // namespace

int cmd_plan(int argc, char** argv) {
  cxxopts::Options options(argv[0], "DT-FM's scheduler: a placement of a DP x PP layout on a network profile.");
  options.custom_help("[--preset NAME] [--config FILE]... --net PROFILE [--out placement.yaml] [--seed N] [--random N]");
  add_options(options);
  auto args = parse_or_usage(options, argc, argv);
  if (args.count("help")) {
    std::cout << help_with_keys(options, sim::sim_help_schema());
    return 0;
  }
  if (!args.unmatched().empty())
    throw UsageError(std::string(argv[0]) + ": unexpected argument '" + args.unmatched()[0] + "'; see " + argv[0] + " --help");
  const sim::SimSettings s = sim::sim_settings(sim_config_from_args(args));
  if (s.net_path.empty()) throw UsageError("dtbench plan: no network profile; give --net PROFILE");
  sim::dtfm::check_plan_layout(s, args.count("world") ? args["world"].as<int>() : s.grid.world());
  sim::dtfm::PlanOptions o;
  o.search.seed = args["seed"].as<uint64_t>();
  o.search.population = at_least(args, "population", 2);
  o.search.trials = at_least(args, "trials", 0);
  o.random = at_least(args, "random", 20);  // issue 11: N >= 20
  o.candidates = at_least(args, "candidates", 1);
  o.given = {.dp_bytes = volume(args, "c-dp"), .pp_bytes = volume(args, "c-pp")};
  const std::string out = args.count("out") ? args["out"].as<std::string>()
                                            : "results/runs/plan-" + s.name + "-" + utc_file_stamp() + ".yaml";

  const sim::dtfm::PlanResult r = sim::dtfm::make_plan(s, o);
  sim::dtfm::print_plan(std::cout, s, o, r);
  if (out != "none") {
    const std::filesystem::path dir = std::filesystem::path(out).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir);
    par::save_placement(out, r.plan.placement,
                        "dtbench plan (DT-FM's scheduler): " + s.name + " on " + s.net_path + ", DP " +
                            std::to_string(s.grid.dp) + " x PP " + std::to_string(s.grid.pp) + ", seed " +
                            std::to_string(o.search.seed) + "\nuse: --set parallel.placement=" + out);
    std::cout << "# placement: " << out << "\n";
  }
  if (args.count("out-random") && !r.random.empty()) {
    const std::string file = args["out-random"].as<std::string>();
    const auto slowest = std::max_element(r.random.begin(), r.random.end(),
                                          [](const auto& a, const auto& b) { return a.step < b.step; });
    par::save_placement(file, slowest->placement,
                        "dtbench plan: the slowest of " + std::to_string(r.random.size()) +
                            " random placements (seed " + std::to_string(o.search.seed) + "), " + s.name + " on " +
                            s.net_path);
    std::cout << "# slowest random placement: " << file << "\n";
  }
  return 0;
}

}  // namespace dtb
