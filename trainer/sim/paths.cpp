#include "sim/paths.hpp"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "usage_error.hpp"

namespace dtb::sim {

namespace fs = std::filesystem;

std::string find_file(const std::string& path) {
  if (path.empty() || fs::exists(path) || fs::path(path).is_absolute()) return path;
  const fs::path source = fs::path(DTB_SOURCE_DIR) / path;
  return fs::exists(source) ? source.string() : path;
}

std::string yaml_stems(const std::string& folder) {
  std::vector<std::string> stems;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(find_file(folder), ec))
    if (entry.path().extension() == ".yaml") stems.push_back(entry.path().stem().string());
  std::sort(stems.begin(), stems.end());
  std::string out;
  for (const auto& s : stems) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string find_named(const std::string& name_or_path, const std::string& folder,
                       const std::string& key, const std::string& what) {
  const bool is_path = name_or_path.find('/') != std::string::npos ||
                       (name_or_path.size() > 5 && name_or_path.ends_with(".yaml"));
  if (is_path) return find_file(name_or_path);
  const std::string path = find_file(folder + "/" + name_or_path + ".yaml");
  if (!fs::exists(path))
    throw UsageError(key + " '" + name_or_path + "': no such " + what + "; shipped: " +
                     yaml_stems(folder) + " (or give a .yaml path)");
  return path;
}

}  // namespace dtb::sim
