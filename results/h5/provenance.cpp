#include "provenance.hpp"

#include <unistd.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <thread>

namespace dtb {

std::string git_commit() { return DTB_GIT_COMMIT; }

std::string host_description() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  std::string cpu = "unknown CPU";
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);) {
    if (line.rfind("model name", 0) == 0) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  return std::string(name) + ": " + cpu + ", " +
         std::to_string(std::thread::hardware_concurrency()) + " cores";
}

std::string utc_timestamp() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buf;
}

std::string utc_file_stamp() {
  std::string digits;
  for (char c : utc_timestamp())
    if (c >= '0' && c <= '9') digits += c;
  return digits.substr(0, 8) + "-" + digits.substr(8);
}

void write_provenance(h5::File& file, const std::string& format, int64_t version,
                      const std::string& kind, const std::string& command_line) {
  file.set_attr("/", "format", format);
  file.set_attr("/", "version", version);
  file.set_attr("/", "kind", kind);
  file.set_attr("/", "dtbench_version", std::string(DTB_VERSION));
  file.set_attr("/", "git_commit", git_commit());
  file.set_attr("/", "host", host_description());
  file.set_attr("/", "created_utc", utc_timestamp());
  file.set_attr("/", "command_line", command_line);
}

}  // namespace dtb
