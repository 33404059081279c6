#include "provenance.hpp"

#include <cblas.h>
#include <mpi.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>

#include <chrono>
#include <ctime>
#include <fstream>
#include <thread>

namespace dtb {

std::string git_commit() { return DTB_GIT_COMMIT; }

std::string cpu_model() {
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos)
      return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

std::string host_description() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  return std::string(name) + ": " + cpu_model() + ", " +
         std::to_string(std::thread::hardware_concurrency()) + " cores";
}

namespace {

// Trailing newlines and blanks off (MPI_Get_library_version ends in "\n").
std::string trimmed(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

// Callable before MPI_Init and after MPI_Finalize (MPI 3.0).
std::string mpi_library() {
  char version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int length = 0;
  MPI_Get_library_version(version, &length);
  return trimmed(version);  // LENGTH may count the terminating NUL (Open MPI's does)
}

}  // namespace

std::vector<std::pair<std::string, std::string>> build_and_job_provenance() {
  std::vector<std::pair<std::string, std::string>> out = {
      {"compiler", DTB_COMPILER},
      {"build_type", DTB_BUILD_TYPE},
      {"build_flags", DTB_BUILD_FLAGS},
      {"mpi_library", mpi_library()},
      {"openblas_config", trimmed(openblas_get_config())},
      {"openblas_core", trimmed(openblas_get_corename())},
      {"cpu_model", cpu_model()},
  };
  if (!std::getenv("SLURM_JOB_ID")) return out;
  // The job, its nodes and how its tasks sit on them (srun sets the step's own values).
  const std::pair<const char*, const char*> slurm[] = {
      {"slurm_job_id", "SLURM_JOB_ID"},             {"slurm_job_name", "SLURM_JOB_NAME"},
      {"slurm_array_job_id", "SLURM_ARRAY_JOB_ID"}, {"slurm_array_task_id", "SLURM_ARRAY_TASK_ID"},
      {"slurm_cluster", "SLURM_CLUSTER_NAME"},      {"slurm_partition", "SLURM_JOB_PARTITION"},
      {"slurm_nodelist", "SLURM_JOB_NODELIST"},     {"slurm_nnodes", "SLURM_JOB_NUM_NODES"},
      {"slurm_ntasks", "SLURM_NTASKS"},             {"slurm_tasks_per_node", "SLURM_TASKS_PER_NODE"},
      {"slurm_cpus_per_task", "SLURM_CPUS_PER_TASK"}, {"slurm_step_id", "SLURM_STEP_ID"},
  };
  for (const auto& [attr, var] : slurm)
    if (const char* v = std::getenv(var); v && *v) out.emplace_back(attr, v);
  return out;
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
  for (const auto& [name, value] : build_and_job_provenance()) file.set_attr("/", name, value);
}

}  // namespace dtb
