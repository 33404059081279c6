// dtbench report DIR: the tables and figures of a results folder (report.md beside them).
#include <iostream>

#include "cli/cli_common.hpp"
#include "cli/commands.hpp"
#include "exp/report.hpp"

namespace dtb {

int cmd_report(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "Reads every result (*.h5) of a folder (dtbench run writes one per run; dtbench train and "
                           "coll results may be added)\nand writes DIR/report.md with SVG and PNG figures (gnuplot); prints "
                           "the tables. Files that are not dtbench results are skipped with a warning.");
  options.add_options()("csv", "also write every table as DIR/<table>.csv (SI units, every digit; runs, breakdown, "
                               "failed, coll, files)")(
      "json", "also write every table into DIR/report.json (the CSV's columns and numbers; null for n/a)");
  options.positional_help("DIR");
  options.add_options()("h,help", "print this help");
  options.add_options("positional")("dir", "results folder", cxxopts::value<std::vector<std::string>>());
  options.parse_positional({"dir"});
  auto args = parse_or_usage(options, argc, argv);
  if (args.count("help")) {
    std::cout << options.help({""});
    return 0;
  }
  const auto dirs = args.count("dir") ? args["dir"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (dirs.size() != 1)
    throw UsageError(std::string(argv[0]) + ": expected one results folder, e.g. " + argv[0] + " results/quickstart");
  exp::write_report(dirs[0], std::cout, std::cerr, {.csv = args.count("csv") > 0, .json = args.count("json") > 0});
  return 0;
}

}  // namespace dtb
