#include "train/faults.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>

#include <unistd.h>

namespace dtb {

double FaultSettings::factor(int rank) const {
  return std::find(slow_ranks.begin(), slow_ranks.end(), rank) != slow_ranks.end() ? slowdown : 1.0;
}

FaultSettings fault_settings(const Config& c) {
  FaultSettings f;
  f.slowdown = c.get_float("faults.slowdown");
  const std::string& text = c.get_string("faults.slow_ranks");
  for (size_t start = 0; start < text.size();) {
    const size_t comma = std::min(text.find(',', start), text.size());
    std::string item = text.substr(start, comma - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    int rank = -1;
    const auto [end, err] = std::from_chars(item.data(), item.data() + item.size(), rank);
    if (item.empty() || err != std::errc() || end != item.data() + item.size() || rank < 0)
      c.fail_constraint("faults.slow_ranks", "must list world ranks >= 0 separated by commas, e.g. 1,3 (got '" +
                                                 text + "')");
    f.slow_ranks.push_back(rank);
    start = comma + 1;
  }
  f.links.outages = c.get_string("faults.outages");
  f.links.links = c.get_string("faults.links");
  f.links.bandwidth = c.get_string("faults.bandwidth");
  f.links.burst = {c.get_float("faults.burst_enter"), c.get_float("faults.burst_leave"),
                   c.get_float("faults.burst_loss_good"), c.get_float("faults.burst_loss_bad")};
  f.grad_spike_step = c.get_int("faults.grad_spike_step");
  const std::string& spike = c.get_string("faults.grad_spike");
  char* end = nullptr;
  f.grad_spike = spike == "nan" ? std::nan("") : std::strtod(spike.c_str(), &end);
  if (spike != "nan" && (spike.empty() || *end != '\0' || !(f.grad_spike >= 0) || !std::isfinite(f.grad_spike)))
    c.fail_constraint("faults.grad_spike", "must be a factor >= 0 or nan (got '" + spike + "')");
  f.grad_spike_rank = int(c.get_int("faults.grad_spike_rank"));
  f.hang_at = c.get_string("faults.hang_at");
  f.hang_rank = int(c.get_int("faults.hang_rank"));
  return f;
}

std::vector<KeySpec> more_fault_key_specs() {
  using K = KeyType;
  return {
      {"faults.outages", K::kString, "", 1, 0, {},
       "link outages: LINK@START..END, comma-separated (LINK = A:B, A or * by the profile's site names; seconds on the run's clock)"},
      {"faults.links", K::kString, "*", 1, 0, {},
       "the links faults.bandwidth and faults.burst_* apply to: * (every link between sites), or A:B and A, comma-separated"},
      {"faults.bandwidth", K::kString, "", 1, 0, {},
       "bandwidth over time: TIME:FACTOR points, comma-separated; the rate is multiplied by FACTOR from TIME on ('' = none)"},
      {"faults.burst_enter", K::kFloat, "0", 0, 1, {}, "bursty loss (Gilbert-Elliott): P(good -> bad) per segment (0 = off)"},
      {"faults.burst_leave", K::kFloat, "0.5", 0, 1, {}, "bursty loss: P(bad -> good) per segment (mean burst 1/this)"},
      {"faults.burst_loss_good", K::kFloat, "0", 0, 1, {}, "bursty loss: a segment's loss probability in the good state"},
      {"faults.burst_loss_bad", K::kFloat, "1", 0, 1, {}, "bursty loss: a segment's loss probability in the bad state"},
      {"faults.grad_spike_step", K::kInt, "0", 0, 1e12, {},
       "test knob: at this step (1-based) every gradient is multiplied by faults.grad_spike (0 = off)"},
      {"faults.grad_spike", K::kString, "1", 1, 0, {}, "test knob: the factor of faults.grad_spike_step, >= 0, or nan"},
      {"faults.grad_spike_rank", K::kInt, "-1", -1, 1e6, {}, "test knob: the world rank spiked (-1 = every rank)"},
      {"faults.hang_at", K::kChoice, "none", 0, 0, {"none", "init", "startup", "finalize"},
       "test knob: faults.hang_rank stops answering before MPI_Init, start-up's first collectives or MPI_Finalize"},
      {"faults.hang_rank", K::kInt, "0", 0, 1e6, {}, "test knob: the rank (its launcher's number) that hangs"},
  };
}

void hang_if_asked(const FaultSettings& f, const std::string& at, int rank) {
  if (f.hang_at != at || f.hang_rank != rank) return;
  for (;;) pause();  // a hung node: alive, silent, until the launcher kills it
}

void attach_link_faults(netem::Profile& profile, const FaultSettings& f) {
  profile.faults = netem::resolve_link_faults(f.links, profile);
}

void check_fault_ranks(const FaultSettings& f, int world) {
  for (int r : f.slow_ranks)
    if (r >= world)
      throw UsageError("faults.slow_ranks: rank " + std::to_string(r) + " is outside the world's ranks [0, " +
                       std::to_string(world) + ")");
}

}  // namespace dtb
