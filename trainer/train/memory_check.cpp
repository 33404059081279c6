#include "train/memory_check.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "usage_error.hpp"

namespace dtb {
namespace {

// "MemAvailable:   123456 kB" -> bytes; nullopt if the field is absent.
std::optional<double> meminfo_field(const std::string& text, const std::string& field) {
  std::istringstream in(text);
  std::string name;
  double kb = 0;
  std::string unit;
  while (in >> name >> kb >> unit)
    if (name == field + ":") return kb * 1024.0;
  return std::nullopt;
}

std::optional<double> file_number(const char* path) {
  std::ifstream in(path);
  double v = 0;
  if (in >> v) return v;  // "max" (no limit) does not parse
  return std::nullopt;
}

std::string gb(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GB", bytes / 1e9);
  return buf;
}

}  // namespace

MachineMemory machine_memory() {
  MachineMemory m;
  std::ifstream in("/proc/meminfo");
  std::ostringstream text;
  text << in.rdbuf();
  const auto avail = meminfo_field(text.str(), "MemAvailable");
  const auto total = meminfo_field(text.str(), "MemTotal");
  if (avail && total) {
    m.available = *avail, m.total = *total, m.source = "MemAvailable in /proc/meminfo";
  } else {  // not Linux's meminfo: the free physical pages
    const double page = double(sysconf(_SC_PAGESIZE));
    m.available = double(sysconf(_SC_AVPHYS_PAGES)) * page;
    m.total = double(sysconf(_SC_PHYS_PAGES)) * page;
    m.source = "sysconf";
  }
  const auto limit = file_number("/sys/fs/cgroup/memory.max");
  const auto used = file_number("/sys/fs/cgroup/memory.current");
  if (limit && used && *limit - *used < m.available) {
    m.available = std::max(0.0, *limit - *used), m.total = std::min(m.total, *limit);
    m.source = "the cgroup's memory.max";
  }
  return m;
}

void check_rank_memory(const MemoryBreakdown& need, const std::function<double(double)>& world_max,
                       const MachineMemory& machine) {
  const double mine = double(need.total());
  // Every rank learns whether any rank falls short, so all refuse together.
  const double worst_ratio = world_max(machine.available > 0 ? mine / machine.available : 0.0);
  if (worst_ratio <= 1.0) return;
  const double worst = world_max(mine);
  const double p = double(need.params);
  throw UsageError("the model needs about " + gb(worst) + " on its largest rank (this rank: parameters " + gb(p) +
                   ", gradients " + gb(double(need.grads)) + ", Adam moments " +
                   gb(double(need.adam_m + need.adam_v)) + ", activations " +
                   gb(double(need.activations + need.activation_grads)) + ") but a machine has " +
                   gb(machine.available) + " available (" + machine.source + "; " + gb(machine.total) +
                   " in all): use more ranks (parallel.pp, parallel.tp), a smaller model or train.batch_size");
}

}  // namespace dtb
