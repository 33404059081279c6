#include "train/faults.hpp"

#include <algorithm>
#include <charconv>
#include <string>

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
  return f;
}

void check_fault_ranks(const FaultSettings& f, int world) {
  for (int r : f.slow_ranks)
    if (r >= world)
      throw UsageError("faults.slow_ranks: rank " + std::to_string(r) + " is outside the world's ranks [0, " +
                       std::to_string(world) + ")");
}

}  // namespace dtb
