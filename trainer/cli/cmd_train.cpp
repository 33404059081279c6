// dtbench train: train a GPT model from YAML configs and --set overrides.
#include <iostream>

#include "cli/cli_common.hpp"
#include "cli/commands.hpp"
#include "train/train.hpp"

namespace dtb {

int cmd_train(int argc, char** argv) {
  std::string command_line;
  for (int i = 0; i < argc; ++i) command_line += (i ? " " : "") + std::string(argv[i]);
  cxxopts::Options options(argv[0], "Train a GPT model on one rank.");
  add_config_options(options);
  options.add_options()
      ("resume", "continue from this checkpoint", cxxopts::value<std::string>(), "CKPT")
      ("h,help", "print this help");
  auto args = parse_or_usage(options, argc, argv);
  if (args.count("help")) {
    std::cout << help_with_keys(options, train_schema());
    return 0;
  }
  if (!args.unmatched().empty())
    throw UsageError(std::string(argv[0]) + ": unexpected argument '" + args.unmatched()[0] +
                     "'; see " + argv[0] + " --help");
  Config config = config_from_args(args, train_schema());
  std::cout << "# resolved config\n" << config.to_yaml() << std::flush;
  Trainer trainer(config, std::cout);
  if (args.count("resume")) trainer.resume(args["resume"].as<std::string>());
  trainer.run(command_line);
  return 0;
}

}  // namespace dtb
