#include "sim/paths.hpp"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "usage_error.hpp"

namespace dtb::sim {

namespace fs = std::filesystem;

std::vector<fs::path> shipped_roots() {
  std::vector<fs::path> roots;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) roots.push_back((exe.parent_path() / DTB_SHARE_FROM_BIN).lexically_normal());
  roots.push_back(DTB_SOURCE_DIR);
  return roots;
}

std::string find_file(const std::string& path) {
  if (path.empty() || fs::exists(path) || fs::path(path).is_absolute()) return path;
  static const std::vector<fs::path> roots = shipped_roots();
  for (const fs::path& root : roots)
    if (fs::exists(root / path)) return (root / path).string();
  return path;
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
