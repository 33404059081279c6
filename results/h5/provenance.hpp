#pragma once
// Where a result came from: version, git commit, host, CPU, time. Stored as root
// attributes of every result file, so a number can always be traced to its machine.
#include <string>
#include <utility>
#include <vector>

#include "h5file.hpp"

namespace dtb {

std::string git_commit();        // at configure time; "unknown" outside a git checkout
std::string host_description();  // "hostname: CPU model, N cores"
std::string utc_timestamp();     // "2026-11-22T10:15:03Z"
// The same time for file names: "20261122-101503".
std::string utc_file_stamp();

std::string cpu_model();         // /proc/cpuinfo's model name; "unknown CPU" where it has none

// What a paper's methods section needs to know about the software and the job, as
// (attribute, value) pairs in a fixed order: the compiler, build type and flags (from CMake),
// the MPI library (MPI_Get_library_version), OpenBLAS's build and the core type it picked,
// the CPU model and, under Slurm (SLURM_JOB_ID set), the job id, name, node list and task
// layout. A Slurm field the environment lacks is left out.
std::vector<std::pair<std::string, std::string>> build_and_job_provenance();

// Writes format, version, kind, dtbench_version, git_commit, host, created_utc and
// command_line, then build_and_job_provenance(), as root attributes.
void write_provenance(h5::File& file, const std::string& format, int64_t version,
                      const std::string& kind, const std::string& command_line);

}  // namespace dtb
