// The network-profile parser: the first byte picks the world size (1..64), the rest is
// the YAML file. A profile loads with a placement for every rank, or one UsageError line.
#include "fuzz_common.hpp"
#include "profile.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const int world = 1 + data[0] % 64;
  const std::string path = dtb::fuzz::write_input(data + 1, size - 1, "profile.yaml");
  try {
    const dtb::netem::Profile p = dtb::netem::load_profile(path, world);
    (void)dtb::netem::single_site_warning(p);
  } catch (const dtb::UsageError&) {
  }
  return 0;
}
