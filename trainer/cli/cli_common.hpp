#pragma once
// Pieces every dtbench subcommand shares: parsing with one-line errors, the --config /
// --set options, and help text built from the same tables the parser uses.
#include <cxxopts.hpp>
#include <string>
#include <vector>

#include "config.hpp"

namespace dtb {

// Parses ARGV with OPTIONS; a cxxopts error becomes a UsageError naming the command.
cxxopts::ParseResult parse_or_usage(cxxopts::Options& options, int argc, char** argv);

// Adds --config FILE (repeatable, later files win) and --set KEY=VALUE (repeatable).
void add_config_options(cxxopts::Options& options);

// Defaults of SCHEMA, then the --config files, then the --set overrides.
Config config_from_args(const cxxopts::ParseResult& args, std::vector<KeySpec> schema);

// cxxopts' help followed by every config key of SCHEMA.
std::string help_with_keys(const cxxopts::Options& options, const std::vector<KeySpec>& schema);

}  // namespace dtb
