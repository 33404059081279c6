#pragma once
// The one parser of `dtbench coll`'s options, shared with `dtbench run`, which checks an
// experiment's coll runs with it before any run starts.
#include <string>
#include <vector>

#include "coll_bench.hpp"

namespace dtb {

// Parses ARGS (the options after PROGRAM, e.g. {"-b", "4K", "--algo", "ring"}) exactly as
// `dtbench coll` does and checks everything that needs no world size (the profile and
// check_bench_options do); --help is refused. Throws UsageError naming the option.
coll::BenchOptions parse_coll_options(const std::string& program, const std::vector<std::string>& args);

}  // namespace dtb
