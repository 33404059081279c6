// The placement file (parallel.placement): the first byte picks the world size (1..64),
// the rest is the YAML file.
#include "fuzz_common.hpp"
#include "parallel/grid.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int world = 1 + data[0] % 64;
  const std::string path = dtb::fuzz::write_input(data + 1, size - 1, "placement.yaml");
  try {
    const dtb::par::Placement p = dtb::par::load_placement(path, world);
    (void)dtb::par::grid_rank_of(p, 0);
  } catch (const dtb::UsageError&) {
  }
  return 0;
}
