#include "sim/fault_run.hpp"

#include <cmath>
#include <limits>
#include <map>
#include <utility>
#include <vector>

namespace dtb::sim {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// The pairs of sites that carry the run's messages: two sites holding ranks, or one site
// holding two or more.
std::vector<std::pair<int, int>> used_links(const netem::Profile& p, int world) {
  std::map<int, int> ranks;  // site -> ranks on it
  for (int r = 0; r < world; ++r) ++ranks[p.rank_site[size_t(r)]];
  std::vector<std::pair<int, int>> out;
  for (const auto& [a, na] : ranks)
    for (const auto& [b, nb] : ranks)
      if (a < b || (a == b && na > 1)) out.emplace_back(a, b);
  return out;
}

// LINK as the faults' state makes it: bandwidth times FACTOR, and bursty loss at its
// long-run rate L: a message of m bytes loses ceil(m / segment) x L segments on average,
// each an rto: m / segment x L x rto as time per byte, and one more segment's L x rto as
// latency (the rounding up; exact for a message of one segment, the norm's scalars).
void degrade(netem::LinkSpec& link, double factor, const netem::Profile& p) {
  double per_byte = link.bandwidth_Bps > 0 ? 1 / (link.bandwidth_Bps * factor) : 0;
  if (p.faults.burst.on() && p.segment_bytes > 0) {
    const double per_segment = p.faults.burst.loss_rate() * p.rto_s;
    per_byte += per_segment / double(p.segment_bytes);
    link.latency_s += per_segment;
  }
  link.bandwidth_Bps = per_byte > 0 ? 1 / per_byte : 0;
}

// The profile as the faults leave it at bandwidth factor FACTOR.
netem::Profile degraded(const netem::Profile& p, double factor) {
  netem::Profile out = p;
  out.faults = {};
  const int n = int(p.sites.size());
  for (int a = 0; a < n; ++a)
    if (p.faults.is_shaped(a, a)) degrade(out.sites[size_t(a)].intra, factor, p);
  if (p.inter.size() == 1) {  // one link for every pair of sites
    if (n > 1 && p.faults.is_shaped(0, 1)) degrade(out.inter[0], factor, p);
  } else {
    for (int a = 0; a < n; ++a)
      for (int b = 0; b < n; ++b)
        if (a != b && p.faults.is_shaped(a, b)) degrade(out.inter[size_t(a * n + b)], factor, p);
  }
  return out;
}

}  // namespace

FaultRun simulate_fault_run(const SimSettings& s, const SimInputs& in, int steps) {
  const netem::LinkFaults& faults = in.profile.faults;
  std::map<double, double> step_at;  // bandwidth factor -> step time
  auto step = [&](double factor) {
    auto it = step_at.find(factor);
    if (it == step_at.end()) {
      SimInputs state = in;
      state.profile = degraded(in.profile, factor);
      it = step_at.emplace(factor, simulate(s, state).time.step).first;
    }
    return it->second;
  };
  FaultRun run;
  SimInputs clean = in;
  clean.profile.faults = {};
  run.without = steps * simulate(s, clean).time.step;
  const std::vector<std::pair<int, int>> links = used_links(in.profile, s.grid.world());
  auto down = [&](double t) {
    for (const auto& [a, b] : links)
      if (!faults.state(a, b, t).up) return true;
    return false;
  };
  auto next_change = [&](double t) {
    double next = kInf;
    for (const auto& [a, b] : links) next = std::min(next, faults.next_change(a, b, t));
    return next;
  };
  double t = 0;
  for (double left = steps; left > 0;) {  // steps (and parts of one) still to run
    const double next = next_change(t);
    if (down(t)) {
      t = next;
      continue;
    }
    const double pace = step(faults.bandwidth_factor(t));
    if (t + left * pace <= next) {
      t += left * pace;
      break;
    }
    left -= (next - t) / pace;
    t = next;
  }
  run.seconds = t;
  return run;
}

}  // namespace dtb::sim
