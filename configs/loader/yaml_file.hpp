#pragma once
// The one way dtbench reads a YAML file (configs, network profiles, experiments, placement
// files): parse errors and keys given twice in one map become one UsageError line naming
// the file, the line and the key. YAML parsers keep one of two equal keys without a word
// (yaml-cpp the first), so a repeated key would otherwise change a run silently.
#include <yaml-cpp/yaml.h>

#include <string>

namespace dtb {

// Parses PATH (which the caller has checked exists); throws UsageError on invalid YAML or a
// key repeated within one map, at any depth.
YAML::Node load_yaml_file(const std::string& path);

// The same check on parsed text; NAME is what messages call it (a file name).
YAML::Node load_yaml_text(const std::string& text, const std::string& name);

}  // namespace dtb
