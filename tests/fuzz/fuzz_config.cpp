// The config loader with the trainer's key table: any YAML text is either a config that
// train_settings() accepts or one UsageError line; nothing else may escape or crash.
#include "config.hpp"
#include "fuzz_common.hpp"
#include "train/train_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = dtb::fuzz::write_input(data, size, "config.yaml");
  try {
    const dtb::Config config = dtb::load_config(dtb::train_schema(), {path}, {});
    (void)dtb::train_settings(config);
    (void)config.to_yaml();
  } catch (const dtb::UsageError&) {
  }
  return 0;
}
