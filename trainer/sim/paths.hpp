#pragma once
// Shipped files (configs/devices, configs/sim, configs/net, configs/model,
// configs/experiments) are found from the working directory first, then from the install
// tree beside the running binary (bin/../share/dtbench, what `cmake --install` lays out),
// then from the source tree the binary was built from, so that `dtbench sim --preset
// article` works from any folder, installed or not.
#include <filesystem>
#include <string>
#include <vector>

namespace dtb::sim {

// Where shipped files are looked for after the working directory, in order: the install
// tree's share/dtbench beside the running binary (whether or not it exists), the source tree.
std::vector<std::filesystem::path> shipped_roots();

// PATH as given when it exists or is absolute; else the first shipped root's copy that
// exists; else PATH unchanged (the caller's error then names what the user wrote).
std::string find_file(const std::string& path);

// "a, b, c": the stems of the *.yaml files in FOLDER (a folder of the source tree).
std::string yaml_stems(const std::string& folder);

// NAME_OR_PATH is a path when it contains '/' or ends in .yaml; else FOLDER/NAME.yaml.
// A missing name throws UsageError: "KEY 'NAME': no such WHAT; shipped: ...".
std::string find_named(const std::string& name_or_path, const std::string& folder,
                       const std::string& key, const std::string& what);

}  // namespace dtb::sim
