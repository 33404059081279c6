#include "yaml_file.hpp"

#include <fstream>
#include <map>
#include <sstream>

#include "usage_error.hpp"

namespace dtb {
namespace {

std::string child(const std::string& parent, const std::string& name) {
  return parent.empty() ? name : parent + "." + name;
}

// Every map below NODE, its keys compared as text (the scalar as written); PATH is the
// dotted key of NODE, for the message. Sequence items are named by their index.
void check_unique_keys(const YAML::Node& node, const std::string& name, const std::string& path) {
  if (node.IsMap()) {
    std::map<std::string, int> first_line;
    for (const auto& kv : node) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "?";
      const int line = kv.first.Mark().line + 1;
      const auto [it, fresh] = first_line.emplace(key, line);
      if (!fresh)
        throw UsageError(name + ":" + std::to_string(line) + ": key '" + child(path, key) +
                         "' is given twice (first at line " + std::to_string(it->second) +
                         "); give each key once");
      check_unique_keys(kv.second, name, child(path, key));
    }
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) check_unique_keys(node[i], name, path + "[" + std::to_string(i) + "]");
  }
}

}  // namespace

YAML::Node load_yaml_text(const std::string& text, const std::string& name) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw UsageError(name + ":" + std::to_string(e.mark.line + 1) + ": invalid YAML: " + e.msg);
  }
  check_unique_keys(root, name, "");
  return root;
}

YAML::Node load_yaml_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(path + ": cannot be read");
  std::ostringstream text;
  text << in.rdbuf();
  return load_yaml_text(text.str(), path);
}

}  // namespace dtb
