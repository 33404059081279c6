#include "exp/runner.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <ostream>

#include "exp/child.hpp"
#include "exp/progress.hpp"
#include "train/stop_signal.hpp"
#include "usage_error.hpp"

namespace dtb::exp {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// The trainer's step line starts "step    10/300 |": returns 10, or -1 for other lines.
int step_of(const std::string& line) {
  int done = 0, total = 0;
  char bar = 0;
  if (std::sscanf(line.c_str(), "step %d/%d %c", &done, &total, &bar) == 3 && bar == '|') return done;
  return -1;
}

// mpirun's banners frame its messages with lines of dashes: they say nothing on their own.
bool is_rule(const std::string& line) {
  return line.find_first_not_of("-= ") == std::string::npos;
}

// Lines of `dtbench coll`'s table (one per buffer size) are its progress.
bool is_coll_row(const std::string& line) { return !line.empty() && line[0] != '#' && !is_error_line(line); }

double seconds_now() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

Progress progress_of(const Plan& plan) {
  std::vector<RunWork> work;
  for (const PlannedRun& p : plan.runs) work.push_back({p.kind, p.clock, p.steps});
  return Progress(work);
}

void copy_experiment(const Experiment& e, const std::string& out_dir) {
  const fs::path copy = fs::path(out_dir) / "experiment.yaml";
  if (fs::exists(copy)) return;  // plan_experiment checked that it is the same file
  const fs::path tmp = copy.string() + ".tmp-" + std::to_string(::getpid());
  fs::copy_file(e.path, tmp, fs::copy_options::overwrite_existing);
  fs::rename(tmp, copy);
}

std::string run_header(const PlannedRun& p, size_t i, size_t n) {
  std::string kind = p.kind == RunKind::kTrain ? "train" : "coll";
  std::string what = kind + ", " + std::to_string(p.ranks) + (p.ranks == 1 ? " rank" : " ranks");
  if (p.steps > 0)
    what += ", " + std::to_string(p.steps) + (p.kind == RunKind::kTrain ? " step" : " size") + (p.steps == 1 ? "" : "s");
  return "[run " + std::to_string(i + 1) + "/" + std::to_string(n) + "] " + p.name + ": " + what + " -> " + p.result;
}

// Why a run failed. A run stopped gracefully (exit 3) says so with the trainer's own line
// (its step, checkpoint and how to resume); else the last error line says why; a run
// stopped at its timeout or killed by a signal was merely still running: its last line is
// no reason.
std::string why_failed(const PlannedRun& p, const ChildOutcome& c, const std::string& last_error,
                       const std::string& last_line, const std::string& stop_line) {
  const bool stopped = c.error.empty() && c.exit_code == kStoppedExitCode;
  std::string why = c.timed_out ? "timed out after " + duration_text(p.stop.timeout_s) : "";
  if (c.stopped_by) why = std::string("dtbench run got ") + signal_name(c.stopped_by);
  if (why.empty() || stopped || c.stopped_by) why += (why.empty() ? "" : "; ") + describe(c);
  const bool signaled = c.exit_code > 128;
  const std::string said = stopped && !stop_line.empty() ? stop_line
                           : !last_error.empty()          ? last_error
                           : c.timed_out || c.stopped_by || signaled ? ""
                                                                     : last_line;
  return why + (said.empty() ? "" : ": " + said);
}

RunOutcome run_one(const PlannedRun& p, size_t i, size_t n, Progress& progress, std::ostream& out) {
  out << run_header(p, i, n) << "\n  $ " << shell_line(p.argv) << std::endl;
  std::ofstream log(p.log, std::ios::trunc);
  log << "$ " << shell_line(p.argv) << "\n";
  const std::string tag = "  [" + std::to_string(i + 1) + "/" + std::to_string(n) + " " + p.name + "] ";
  const std::string head = "[run " + std::to_string(i + 1) + "/" + std::to_string(n) + "] " + p.name + ": ";
  std::string last_error, last_line, stop_line;
  int rows = 0;  // a coll run's table rows so far
  progress.start_run(i, seconds_now());
  const auto note = [&](const std::string& what) {  // how the runner stops the child
    log << kStopLine << what << std::endl;
    out << head << what << std::endl;
  };
  const ChildOutcome c = run_child(p.argv, p.stop, [&](const std::string& line) {
    log << line << "\n" << std::flush;
    if (!line.empty() && !is_rule(line)) last_line = line;
    if (is_error_line(line)) last_error = line;
    if (line.starts_with("stopped by ")) stop_line = line;  // the trainer's line after a graceful stop
    const int step = step_of(line);
    const bool row = p.kind == RunKind::kColl && is_coll_row(line);
    if (step < 0 && !row) return;
    progress.mark(row ? ++rows : step, seconds_now());
    out << tag << line << " | " << progress.text(seconds_now()) << std::endl;
  }, note);
  RunOutcome o{p.name, c.exit_code == 0 && c.error.empty(), "", c.seconds};
  if (o.ok && !fs::exists(p.result)) o.ok = false, o.why = "finished but wrote no " + p.result;
  progress.finish_run(seconds_now(), o.ok);
  if (!c.error.empty() || c.exit_code != 0) o.why = why_failed(p, c, last_error, last_line, stop_line);
  // The one record of how the run ended: dtbench report and the next dtbench run read it
  // (finished_result); until it is written the run counts as unfinished.
  log << kOutcomeLine << (o.ok ? "ok" : "FAILED: " + o.why) << std::endl;
  char secs[32];
  std::snprintf(secs, sizeof secs, "%.1f s", c.seconds);
  if (o.ok) out << head << "ok, " << secs << std::endl;
  else out << head << "FAILED after " << secs << " (" << o.why << "); log: " << p.log << std::endl;
  return o;
}

}  // namespace

bool is_error_line(const std::string& line) {
  return line.starts_with("error") || line.starts_with("internal error") || line.find("rror:") != std::string::npos;
}

LogVerdict verdict_in_log(const std::string& log_text) {
  LogVerdict v;
  std::string last_error;
  size_t start = 0;
  while (start < log_text.size()) {
    size_t end = log_text.find('\n', start);
    if (end == std::string::npos) end = log_text.size();
    const std::string line = log_text.substr(start, end - start);
    if (line.starts_with(kOutcomeLine)) {
      const std::string said = line.substr(std::string(kOutcomeLine).size());
      v.written = true, v.ok = said == "ok";
      v.why = said.starts_with("FAILED: ") ? said.substr(8) : "";
    } else if (is_error_line(line)) {
      last_error = line;
    }
    start = end + 1;
  }
  if (!v.ok && v.why.empty()) v.why = last_error;
  return v;
}

void print_dry_run(const Plan& plan, std::ostream& out) {
  for (size_t i = 0; i < plan.runs.size(); ++i)
    out << run_header(plan.runs[i], i, plan.runs.size()) << "\n  $ " << shell_line(plan.runs[i].argv) << "\n";
  for (const std::string& r : plan.existing) out << "(kept: " << r << ")\n";
  out << "dry run: " << plan.runs.size() << " run(s) checked, nothing started\n";
}

namespace {

// Two `dtbench run` of one run into one folder at once would write over each other: the
// second is refused. One byte per run index of <out>/.dtbench-run.lock, locked with fcntl
// (NFS honours it; released when the process ends, however it ends), so the tasks of a
// Slurm array, each running its own run into one folder, go side by side.
class RunLocks {
 public:
  explicit RunLocks(const Plan& plan) {
    const std::string path = plan.out_dir + "/.dtbench-run.lock";
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw UsageError(path + ": cannot open the folder's lock file: " + std::strerror(errno));
    for (const PlannedRun& p : plan.runs) {
      struct flock lock = {};
      lock.l_type = F_WRLCK;
      lock.l_whence = SEEK_SET;
      lock.l_start = off_t(p.index);
      lock.l_len = 1;
      if (fcntl(fd_, F_SETLK, &lock) == 0) continue;
      struct flock holder = lock;
      fcntl(fd_, F_GETLK, &holder);
      ::close(fd_);
      throw UsageError(plan.out_dir + ": run '" + p.name + "' is being run into this folder by another dtbench run (pid " +
                       std::to_string(holder.l_pid) + "); wait for it to end, or pass --out DIR");
    }
    // Locked now: a result that appeared since the plan was checked was written meanwhile.
    for (const PlannedRun& p : plan.runs)
      if (finished_result(p)) {
        ::close(fd_);
        throw UsageError(p.result + " was written by another dtbench run meanwhile: results are never overwritten");
      }
  }
  ~RunLocks() { ::close(fd_); }  // releases every lock of this process on the file
  RunLocks(const RunLocks&) = delete;
  RunLocks& operator=(const RunLocks&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace

std::vector<RunOutcome> run_plan(const Experiment& e, const Plan& plan, std::ostream& out) {
  fs::create_directories(plan.out_dir);
  const RunLocks locks(plan);
  copy_experiment(e, plan.out_dir);
  for (const std::string& r : plan.existing) out << "kept (--skip-existing): " << r << "\n";
  // SIGINT, SIGTERM, SIGUSR1 (cmd_run installs the handlers): the running child stops
  // gracefully (run_child), no other starts.
  Progress progress = progress_of(plan);
  std::vector<RunOutcome> outcomes;
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    if (stop_signal()) {
      out << "dtbench run got " << signal_name(stop_signal()) << ": " << plan.runs.size() - i
          << " run(s) not started" << std::endl;
      break;
    }
    outcomes.push_back(run_one(plan.runs[i], i, plan.runs.size(), progress, out));
  }
  return outcomes;
}

std::string summary_line(const std::vector<RunOutcome>& outcomes) {
  std::string failed;
  size_t ok = 0;
  for (const RunOutcome& o : outcomes) {
    if (o.ok) ++ok;
    else failed += (failed.empty() ? "" : ", ") + o.name;
  }
  std::string line = std::to_string(outcomes.size()) + (outcomes.size() == 1 ? " run: " : " runs: ") +
                     std::to_string(ok) + " ok";
  if (!failed.empty()) line += ", " + std::to_string(outcomes.size() - ok) + " failed: " + failed;
  return line;
}

}  // namespace dtb::exp
