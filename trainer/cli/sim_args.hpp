#pragma once
// The simulator's config from the command line, shared by `dtbench sim` and `dtbench
// plan`: --preset (configs/sim/NAME.yaml first), the --config files, --net and --device,
// then the --set overrides. The command's options must hold preset, config, net, device
// and set.
#include <cxxopts.hpp>

#include "config.hpp"

namespace dtb {
Config sim_config_from_args(const cxxopts::ParseResult& args);
}  // namespace dtb
