#pragma once
// The one error type for bad input (a config key, a file, a dataset, a command-line
// option). main() catches it, prints its message as one line and exits with code 2.
// Its message must say what was wrong, where (file, key or option) and what is allowed.
#include <stdexcept>
#include <string>

namespace dtb {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace dtb
