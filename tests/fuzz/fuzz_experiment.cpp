// The experiment parser (dtbench run): any YAML text is an experiment or one UsageError line.
#include "exp/experiment.hpp"
#include "fuzz_common.hpp"
#include "usage_error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = dtb::fuzz::write_input(data, size, "experiment.yaml");
  try {
    const dtb::exp::Experiment e = dtb::exp::parse_experiment(path);
    if (!e.runs.empty()) (void)dtb::exp::find_run(e, "0");
  } catch (const dtb::UsageError&) {
  }
  return 0;
}
