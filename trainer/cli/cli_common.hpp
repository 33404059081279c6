#pragma once
// Pieces every dtbench subcommand (and dtb-cuda-bench) shares: the error wrapper of main(),
// parsing with one-line errors, the --config / --set options, and help text built from the
// same tables the parser uses.
#include <cxxopts.hpp>
#include <string>
#include <vector>

#include "config.hpp"

namespace dtb {

// The body of every program's main(): runs RUN(argc, argv) and returns its exit code. Bad
// input (UsageError) ends as one line "error: ..." on stderr and exit code 2, any other
// exception as "internal error: ..." and exit code 1; stdout is flushed first, so the
// line comes after what the program printed.
int run_command(int (*run)(int argc, char** argv), int argc, char** argv);

// Parses ARGV with OPTIONS; a cxxopts error becomes a UsageError naming the command.
cxxopts::ParseResult parse_or_usage(cxxopts::Options& options, int argc, char** argv);

// Adds --config FILE (repeatable, later files win) and --set KEY=VALUE (repeatable).
void add_config_options(cxxopts::Options& options);

// Defaults of SCHEMA, then the --config files, then the --set overrides.
Config config_from_args(const cxxopts::ParseResult& args, std::vector<KeySpec> schema);

// cxxopts' help followed by every config key of SCHEMA.
std::string help_with_keys(const cxxopts::Options& options, const std::vector<KeySpec>& schema);

}  // namespace dtb
