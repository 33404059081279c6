#pragma once
// The memory check before a rank allocates its model: rank_memory's estimate (parameters,
// gradients, Adam moments, activations) against what the machine has, so a model that
// cannot fit is refused with one line instead of dying in the allocator.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "model/stage.hpp"

namespace dtb {

struct MachineMemory {
  double available = 0;  // bytes a new allocation can get: MemAvailable, or the cgroup's room if smaller
  double total = 0;      // MemTotal, or the cgroup's limit if smaller
  std::string source;    // where the figures come from, for the message
};

// This machine's memory from /proc/meminfo (MemAvailable, MemTotal) and, where a cgroup v2
// limit is set (Slurm's, a container's), /sys/fs/cgroup/memory.max and memory.current.
MachineMemory machine_memory();

// Throws UsageError (on every rank alike) when any rank's estimate NEED exceeds the memory
// available on its machine. WORLD_MAX(x) is the maximum of x over the world (collective).
// Ranks sharing a machine are each compared with its whole available memory.
void check_rank_memory(const MemoryBreakdown& need, const std::function<double(double)>& world_max,
                       const MachineMemory& machine = machine_memory());

}  // namespace dtb
