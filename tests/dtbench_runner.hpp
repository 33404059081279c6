#pragma once
// Running the built dtbench binary from a test: its exit code and output, a per-process
// scratch folder, and the check every bad-input test makes (exit code 2, exactly one line
// on stderr that names what was wrong). DTB_BINARY is set by tests/CMakeLists.txt.
#include <catch2/catch.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace dtb::test {

struct Outcome {
  int exit_code;
  std::string out, err;
};

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A temporary folder of this test process, "<tmp>/dtb_<tag>_<pid>".
inline std::filesystem::path scratch_dir(const std::string& tag) {
  std::filesystem::path d =
      std::filesystem::temp_directory_path() / ("dtb_" + tag + "_" + std::to_string(getpid()));
  std::filesystem::create_directories(d);
  return d;
}

// scratch_dir(TAG), emptied first and removed with everything in it when this object dies
// (a function-local static: when the test process exits).
struct ScratchDir {
  explicit ScratchDir(const std::string& tag) : path(scratch_dir(tag)) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::filesystem::path path;
};

// The binary under test: $DTB_BINARY where set (a build carried to another machine, as
// trainer/cuda/gpu_check.sh does; the compiled-in path would not exist there), else the one
// this build made.
inline std::string dtbench_binary() {
  const char* env = std::getenv("DTB_BINARY");
  return env && *env ? std::string(env) : std::string(DTB_BINARY);
}

// The default corpus (Debian's fortunes) prepared into DIR by the real command; its path.
inline std::string prepared_fortunes(const std::filesystem::path& dir) {
  const std::string out = (dir / "fortunes.h5").string();
  REQUIRE(std::system((dtbench_binary() + " prepare --out " + out + " >/dev/null").c_str()) == 0);
  return out;
}

// Runs the shell command line COMMAND in the folder CWD (where the test runs when empty),
// capturing stdout and stderr through files in DIR.
inline Outcome run_shell(const std::string& command, const std::filesystem::path& dir,
                         const std::filesystem::path& cwd = {}) {
  const std::filesystem::path out = dir / "stdout", err = dir / "stderr";
  const std::string cd = cwd.empty() ? "" : "cd '" + cwd.string() + "' && ";
  const int status = std::system((cd + command + " >" + out.string() + " 2>" + err.string()).c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

// Runs "dtbench ARGS" the same way.
inline Outcome run_dtbench(const std::string& args, const std::filesystem::path& dir,
                           const std::filesystem::path& cwd = {}) {
  return run_shell(dtbench_binary() + " " + args, dir, cwd);
}

// Exit code 2 and exactly one line on stderr that contains every expected piece.
inline void expect_usage_error(const Outcome& o, const std::string& args,
                               const std::vector<std::string>& pieces) {
  INFO("dtbench " << args << "\nstderr: " << o.err);
  CHECK(o.exit_code == 2);
  CHECK(std::count(o.err.begin(), o.err.end(), '\n') == 1);
  for (const auto& p : pieces) CHECK_THAT(o.err, Catch::Matchers::Contains(p));
}

// A's --set lines followed by B's.
inline std::vector<std::string> plus(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace dtb::test
