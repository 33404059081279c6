#include "cli/train_prediction.hpp"

#include <ostream>

#include "cli/cli_common.hpp"
#include "sim/format.hpp"
#include "sim/sim_config.hpp"
#include "sim/simulator.hpp"

namespace dtb {
namespace {

constexpr double kWarnRunSeconds = 24 * 3600;

// The simulator's step for the run's config (its keys read with the simulator's schema,
// a superset of the trainer's); < 0 when it cannot predict this config.
double predicted_step(const cxxopts::ParseResult& args) {
  try {
    return sim::simulate(sim::sim_settings(config_from_args(args, sim::sim_schema()))).time.step;
  } catch (const std::exception&) {
    return -1;  // a layout the simulator does not model: no prediction, no refusal
  }
}

}  // namespace

void check_predicted_step(const cxxopts::ParseResult& args, const TrainSettings& s, std::ostream& warn) {
  if (s.parallel.clock != "wall" || s.parallel.net_profile.empty() || s.parallel.world() == 1) return;
  const double step = predicted_step(args);
  if (step < 0) return;
  const std::string what = "net.profile " + s.parallel.net_profile + ": predicted step time " +
                           sim::format_seconds(step) + " on the wall clock (dtbench sim's prediction)";
  if (s.watchdog_s > 0 && step > s.watchdog_s)
    throw UsageError(what + " exceeds net.watchdog_s = " + sim::format_seconds(s.watchdog_s) +
                     ": the watchdog would end it; use net.clock=virtual, or raise net.watchdog_s (0 = off)");
  if (step * s.steps > kWarnRunSeconds)
    warn << "warning: " << what << ": " << sim::format_seconds(step * s.steps) << " for " << s.steps << (s.steps == 1 ? " step\n" : " steps\n");
}

}  // namespace dtb
