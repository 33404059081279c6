#include "cli/cli_common.hpp"

#include <exception>
#include <iostream>

#include "train/run_stopped.hpp"

namespace dtb {

int run_command(int (*run)(int argc, char** argv), int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    std::cout.flush();
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const RunStopped& e) {  // the run stopped itself (train/run_stopped.hpp)
    std::cout.flush();
    std::cerr << "error: " << e.what() << "\n";
    return kRunStoppedExit;
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "internal error: " << e.what() << "\n";
    return 1;
  }
}

cxxopts::ParseResult parse_or_usage(cxxopts::Options& options, int argc, char** argv) {
  try {
    return options.parse(argc, argv);
  } catch (const cxxopts::exceptions::exception& e) {
    throw UsageError(options.program() + ": " + e.what() + "; see " + options.program() +
                     " --help");
  }
}

void add_config_options(cxxopts::Options& options) {
  options.add_options("config")
      ("c,config", "YAML config file (repeatable; later files win)",
       cxxopts::value<std::vector<std::string>>(), "FILE")
      ("s,set", "override one key, e.g. --set train.steps=300 (repeatable)",
       cxxopts::value<std::vector<std::string>>(), "KEY=VALUE");
}

Config config_from_args(const cxxopts::ParseResult& args, std::vector<KeySpec> schema) {
  std::vector<std::string> files, sets;
  if (args.count("config")) files = args["config"].as<std::vector<std::string>>();
  if (args.count("set")) sets = args["set"].as<std::vector<std::string>>();
  return load_config(std::move(schema), files, sets);
}

std::string help_with_keys(const cxxopts::Options& options, const std::vector<KeySpec>& schema) {
  return options.help() + "\n Config keys (in --config files as nested maps, or --set KEY=VALUE):\n" +
         Config(schema).describe_keys();
}

}  // namespace dtb
