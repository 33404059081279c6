#include "parallel/schedule.hpp"

#include <algorithm>

#include "usage_error.hpp"

namespace dtb::par {

ScheduleKind parse_schedule(const std::string& name) {
  if (name == "gpipe") return ScheduleKind::kGPipe;
  if (name == "1f1b") return ScheduleKind::k1F1B;
  throw UsageError("parallel.schedule '" + name + "': allowed: gpipe, 1f1b");
}

std::vector<Action> pipeline_schedule(ScheduleKind kind, int stage, int stages, int m) {
  std::vector<Action> out;
  if (kind == ScheduleKind::kGPipe) {
    for (int i = 0; i < m; ++i) out.push_back({Pass::kForward, i});
    for (int i = 0; i < m; ++i) out.push_back({Pass::kBackward, i});
    return out;
  }
  const int warmup = std::min(stages - stage - 1, m);
  for (int i = 0; i < warmup; ++i) out.push_back({Pass::kForward, i});
  for (int i = 0; i < m - warmup; ++i) {  // steady state
    out.push_back({Pass::kForward, i + warmup});
    out.push_back({Pass::kBackward, i});
  }
  for (int i = m - warmup; i < m; ++i) out.push_back({Pass::kBackward, i});  // cool-down
  return out;
}

int live_microbatches(ScheduleKind kind, int stage, int stages, int m) {
  return kind == ScheduleKind::kGPipe ? m : std::min(stages - stage, m);
}

}  // namespace dtb::par
