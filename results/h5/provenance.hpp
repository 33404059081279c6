#pragma once
// Where a result came from: version, git commit, host, CPU, time. Stored as root
// attributes of every result file, so a number can always be traced to its machine.
#include <string>

#include "h5file.hpp"

namespace dtb {

std::string git_commit();        // at configure time; "unknown" outside a git checkout
std::string host_description();  // "hostname: CPU model, N cores"
std::string utc_timestamp();     // "2026-11-22T10:15:03Z"
// The same time for file names: "20261122-101503".
std::string utc_file_stamp();

// Writes format, version, kind, dtbench_version, git_commit, host, created_utc and
// command_line as root attributes.
void write_provenance(h5::File& file, const std::string& format, int64_t version,
                      const std::string& kind, const std::string& command_line);

}  // namespace dtb
