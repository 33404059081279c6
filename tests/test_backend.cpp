// device.backend (issue 7): asking for the CUDA backend where it cannot run (a CPU build, or
// a machine without a GPU) is bad input like any other: one line naming the key, where its
// value came from and why, exit code 2. Runs in every build, GPU or not.
#include <sys/wait.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cuda/availability.hpp"
#include "train/train_config.hpp"
#include "usage_error.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

bool has_backend_key(const std::vector<dtb::KeySpec>& schema) {
  return std::any_of(schema.begin(), schema.end(), [](const dtb::KeySpec& s) { return s.key == "device.backend"; });
}

// The trainer's keys with device.backend (added here until train_schema() has it).
dtb::Config backend_config(const std::string& value) {
  std::vector<dtb::KeySpec> schema = dtb::train_schema();
  if (!has_backend_key(schema)) schema.push_back(dtb::backend_key_spec());
  dtb::Config c(schema);
  c.set("device.backend=" + value);
  return c;
}

std::string usage_error_of(const dtb::Config& c) {
  try {
    dtb::check_backend(c);
  } catch (const dtb::UsageError& e) {
    return e.what();
  }
  return "";
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("device.backend=cpu is always accepted, and is the default") {
  CHECK(usage_error_of(backend_config("cpu")).empty());
  dtb::Config defaults(std::vector<dtb::KeySpec>{dtb::backend_key_spec()});
  CHECK(defaults.get_string("device.backend") == "cpu");
  CHECK(usage_error_of(defaults).empty());
  // A schema without the key (a tool that does not pick backends) means cpu.
  std::vector<dtb::KeySpec> schema = dtb::train_schema();
  schema.erase(
      std::remove_if(schema.begin(), schema.end(), [](const dtb::KeySpec& s) { return s.key == "device.backend"; }),
      schema.end());
  CHECK(usage_error_of(dtb::Config(schema)).empty());
}

TEST_CASE("device.backend takes only cpu or cuda") { CHECK_THROWS_AS(backend_config("tpu"), dtb::UsageError); }

TEST_CASE("the availability answers agree with each other and with the build") {
  const std::string why = dtb::cuda::unavailable_reason();
  CHECK(why.empty() == (dtb::cuda::device_count() > 0));
  if (!dtb::cuda::built_with_cuda()) {
    CHECK(dtb::cuda::device_count() == 0);
    CHECK_THAT(why, Contains("built without CUDA") && Contains("-DDTB_CUDA=ON"));
  } else if (!why.empty()) {
    CHECK_THAT(why, Contains("no CUDA device"));
  }
}

TEST_CASE("device.backend=cuda where CUDA cannot run: one line naming the key, origin and reason") {
  const std::string why = dtb::cuda::unavailable_reason();
  if (why.empty()) {
    WARN("a CUDA device is usable here: nothing to refuse");
    return;
  }
  const std::string message = usage_error_of(backend_config("cuda"));
  INFO(message);
  CHECK_THAT(message, Contains("--set") && Contains("device.backend") && Contains("cuda") && Contains(why));
  CHECK(message.find('\n') == std::string::npos);
}

TEST_CASE("dtbench train --set device.backend=cuda without CUDA: exit code 2, one line") {
  if (!has_backend_key(dtb::train_schema())) {
    WARN("train_schema() has no device.backend yet: the unit checks above cover check_backend()");
    return;
  }
  if (dtb::cuda::unavailable_reason().empty()) {
    WARN("a CUDA device is usable here: nothing to refuse");
    return;
  }
  const fs::path dir = fs::temp_directory_path() / ("dtb_test_backend_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string cmd = std::string(DTB_BINARY) + " train --set device.backend=cuda >" + (dir / "out").string() +
                          " 2>" + (dir / "err").string();
  const int status = std::system(cmd.c_str());
  const std::string err = slurp(dir / "err");
  fs::remove_all(dir);
  INFO("stderr: " << err);
  CHECK((WIFEXITED(status) ? WEXITSTATUS(status) : -1) == 2);
  CHECK(std::count(err.begin(), err.end(), '\n') == 1);
  CHECK_THAT(err, Contains("device.backend"));
}
