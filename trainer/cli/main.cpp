// dtbench: one binary, one subcommand per job. Bad input of any kind ends here as one line
// on stderr and exit code 2.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "cli/cli_common.hpp"
#include "cli/commands.hpp"

namespace {

struct Command {
  const char* name;
  const char* summary;
  int (*run)(int argc, char** argv);
};

const Command kCommands[] = {
    {"prepare", "turn text files (default: the fortunes corpus) into a token dataset", dtb::cmd_prepare},
    {"train", "train a GPT model from YAML configs and --set overrides", dtb::cmd_train},
    {"bench", "benchmarks: 'bench train' times training steps against OpenBLAS sgemm", dtb::cmd_bench},
    {"coll", "collective benchmark over the emulated network, nccl-tests style (under mpirun)", dtb::cmd_coll},
    {"sim", "step-time simulator: a training step at any scale on paper; sweeps; the article's arithmetic", dtb::cmd_sim},
    {"plan", "DT-FM's scheduler: a placement file for a DP x PP layout on a network profile", dtb::cmd_plan},
    {"run", "run an experiment (configs/experiments/*.yaml): each run under mpirun or srun, then its report", dtb::cmd_run},
    {"report", "tables and figures of a results folder (report.md, SVG)", dtb::cmd_report},
    {"verify", "verify a committed run: re-execute sampled segments, bisect disputes to the step and layer", dtb::cmd_verify},
    {"infer", "generate from a checkpoint over PP stages and TP slices on a network profile; latency figures", dtb::cmd_infer},
};

std::string usage(const cxxopts::Options& options) {
  std::string text = options.help() + "\n Commands (dtbench COMMAND --help for each):\n";
  for (const Command& c : kCommands)
    text += "  " + std::string(c.name) + std::string(10 - std::strlen(c.name), ' ') + c.summary + "\n";
  return text;
}

int run_main(int argc, char** argv) {
  if (argc >= 2 && argv[1][0] != '-') {
    for (const Command& c : kCommands) {
      if (std::strcmp(argv[1], c.name) != 0) continue;
      std::string program = std::string("dtbench ") + c.name;
      argv[1] = program.data();  // the subcommand sees "dtbench NAME" as its argv[0]
      return c.run(argc - 1, argv + 1);
    }
    throw dtb::UsageError(std::string("dtbench: unknown command '") + argv[1] +
                          "'; commands: prepare, train, bench, coll, sim, plan, run, report, verify, infer (see dtbench --help)");
  }
  cxxopts::Options options("dtbench", "dtbench: reference GPT trainer and decentralized-training benchmark");
  options.custom_help("[--help] [--version] COMMAND [OPTIONS]");
  options.add_options()("h,help", "print this help")("version", "print the version");
  auto args = dtb::parse_or_usage(options, argc, argv);
  if (args.count("version")) {
    std::cout << "dtbench " << DTB_VERSION << " (" << DTB_GIT_COMMIT << ")\n";
    return 0;
  }
  std::cout << usage(options);
  return args.count("help") ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) { return dtb::run_command(run_main, argc, argv); }
