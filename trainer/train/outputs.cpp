#include "train/outputs.hpp"

#include <signal.h>

#include <cctype>
#include <cerrno>
#include <filesystem>
#include <set>

#include "h5file.hpp"
#include "train/checkpoint.hpp"

namespace dtb {
namespace {

namespace fs = std::filesystem;

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

// kill(pid, 0) succeeds, or fails only for want of permission: the process exists.
bool process_alive(long pid) { return pid > 0 && (kill(pid_t(pid), 0) == 0 || errno == EPERM); }

// NAME is "<stem><ext>" or "<stem>-stepNNNNNN<ext>".
bool names_target(const std::string& name, const std::string& stem, const std::string& ext) {
  if (name == stem + ext) return true;
  const std::string head = stem + "-step";
  if (!name.starts_with(head) || !name.ends_with(ext) || name.size() <= head.size() + ext.size()) return false;
  return all_digits(name.substr(head.size(), name.size() - head.size() - ext.size()));
}

}  // namespace

std::vector<std::string> planned_checkpoints(const TrainSettings& s, int64_t from) {
  std::vector<std::string> out;
  if (s.checkpoint_path.empty()) return out;
  if (s.checkpoint_every > 0)
    for (int64_t k = (from / s.checkpoint_every + 1) * s.checkpoint_every; k < s.steps; k += s.checkpoint_every)
      out.push_back(periodic_checkpoint_path(s.checkpoint_path, k));
  out.push_back(s.checkpoint_path);
  return out;
}

std::string checkpoint_base(const TrainSettings& s, const std::string& results) {
  if (!s.checkpoint_path.empty()) return s.checkpoint_path;
  const fs::path r(results);
  return (r.parent_path() / (r.stem().string() + "-checkpoint.h5")).string();
}

std::string stop_checkpoint_path(const TrainSettings& s, const std::string& results, int64_t step) {
  return periodic_checkpoint_path(checkpoint_base(s, results), step);
}

void check_outputs(const std::vector<std::string>& files, bool overwrite) {
  std::set<fs::path> folders;
  for (const std::string& f : files) {
    std::error_code ec;
    if (!overwrite && fs::exists(f, ec))
      throw UsageError(f + " already exists: dtbench train does not overwrite results or checkpoints; pass "
                           "--overwrite, or choose another train.results / train.checkpoint");
    const fs::path folder = fs::absolute(f, ec).parent_path();
    if (!folders.insert(folder).second) continue;
    h5::File probe = h5::File::create(f);  // the temporary beside F; dropped uncommitted, it is removed
  }
}

std::vector<std::string> remove_stale_temporaries(const std::string& target) {
  const fs::path t(target);
  const fs::path folder = t.parent_path().empty() ? fs::path(".") : t.parent_path();
  const std::string stem = t.stem().string(), ext = t.extension().string();
  std::vector<std::string> removed;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(folder, ec)) {
    const std::string name = e.path().filename().string();
    const size_t tmp = name.rfind(".tmp-");
    if (tmp == std::string::npos || !names_target(name.substr(0, tmp), stem, ext)) continue;
    const std::string pid = name.substr(tmp + 5);
    if (!all_digits(pid) || pid.size() > 9 || process_alive(std::stol(pid))) continue;
    if (fs::remove(e.path(), ec)) removed.push_back(e.path().string());
  }
  return removed;
}

}  // namespace dtb
