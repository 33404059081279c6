// Faults, through the binary as a user meets them (README.md, "Faults"): no hang (an error on
// one rank, a rank that stops answering, a profile that would sleep for days), nothing lost
// (a graceful stop that resumes bitwise, results that grow as the run goes, temporaries of
// interrupted writes, no overwriting, one `dtbench run` per run and folder, a killed run
// reported as such). Jobs run under mpirun with --oversubscribe, each bounded by a deadline
// far above what it takes, so that a regression fails the test instead of hanging it.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <regex>
#include <thread>

#include "dtbench_runner.hpp"
#include "h5file.hpp"
#include "train/checkpoint.hpp"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;
using dtb::test::slurp;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

fs::path scratch() {
  static const fs::path dir = dtb::test::scratch_dir("faults");
  return dir;
}

// The default corpus, prepared once per test process.
std::string fortunes() {
  static const std::string path = [] {
    const std::string out = (scratch() / "fortunes.h5").string();
    REQUIRE(std::system((dtb::test::dtbench_binary() + " prepare --out " + out + " >/dev/null").c_str()) == 0);
    return out;
  }();
  return path;
}

std::string mpirun(int np) {
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  return "mpirun --oversubscribe --mca mpi_yield_when_idle 1 -np " + std::to_string(np) + " ";
}

// A model smaller than tiny (about 35k parameters: a checkpoint of 420 kB), one thread.
std::string small(const std::string& extra) {
  return " train --set data.path=" + fortunes() +
         " --set model.n_layer=2 --set model.n_embd=32 --set model.n_head=4 --set model.n_ctx=16"
         " --set model.vocab_size=256 --set train.seq_len=16 --set train.batch_size=8 --set train.val_every=0"
         " --set train.threads=1 --set optim.lr=0.01 " +
         extra;
}

std::string in_scratch(const std::string& name) { return (scratch() / name).string(); }

// A shell command line running in the background, its stdout and stderr in files.
class Job {
 public:
  Job(const std::string& command, const std::string& tag)
      : out_(scratch() / (tag + ".out")), err_(scratch() / (tag + ".err")), start_(Clock::now()) {
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);  // its own process group: a failed test ends all of it
      const std::string line = "exec " + command + " >" + out_.string() + " 2>" + err_.string();
      execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~Job() {
    if (pid_ > 0) {
      kill(-pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  std::string out() const { return slurp(out_); }
  std::string err() const { return slurp(err_); }

  // Waits until stdout holds TEXT; false after SECONDS.
  bool wait_for(const std::string& text, double seconds) const {
    const Clock::time_point t0 = Clock::now();
    while (seconds_since(t0) < seconds) {
      if (out().find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  // Its exit code, or -1 when it did not end within SECONDS (it is then killed).
  int finish(double seconds) {
    const Clock::time_point t0 = Clock::now();
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (seconds_since(t0) > seconds) {
        kill(-pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        pid_ = -1;
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
    ended_ = seconds_since(start_);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  double seconds() const { return ended_; }  // from start to the end (finish())

 private:
  fs::path out_, err_;
  Clock::time_point start_;
  pid_t pid_ = -1;
  double ended_ = -1;
};

// The process ids of the ranks mpirun PID started, by their rank (OMPI_COMM_WORLD_RANK).
std::vector<pid_t> ranks_of(pid_t mpirun_pid, int np) {
  std::vector<pid_t> out(size_t(np), -1);
  for (int tries = 0; tries < 500; ++tries) {
    for (const fs::directory_entry& e : fs::directory_iterator("/proc")) {
      const std::string name = e.path().filename().string();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      const std::string stat = slurp(e.path() / "stat");
      const size_t close = stat.rfind(')');
      if (close == std::string::npos) continue;
      int ppid = 0;
      char state = 0;
      if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) != 2 || ppid != mpirun_pid) continue;
      const std::string env = slurp(e.path() / "environ");
      const size_t at = env.find("OMPI_COMM_WORLD_RANK=");
      if (at == std::string::npos) continue;
      const int rank = std::atoi(env.c_str() + at + std::strlen("OMPI_COMM_WORLD_RANK="));
      if (rank >= 0 && rank < np) out[size_t(rank)] = pid_t(std::stoi(name));
    }
    if (std::count(out.begin(), out.end(), -1) == 0) return out;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return out;
}

// Elements whose bits differ.
size_t differing(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::max(a.size(), b.size());
  size_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return n;
}

void expect_same_checkpoint(const std::string& a, const std::string& b) {
  const dtb::CheckpointState x = dtb::load_checkpoint(a), y = dtb::load_checkpoint(b);
  CHECK(x.step == y.step);
  CHECK(differing(x.params, y.params) == 0);
  CHECK(differing(x.adam_m, y.adam_m) == 0);
  CHECK(differing(x.adam_v, y.adam_v) == 0);
}

// "stopped by SIGTERM after step 7/40" -> 7, or -1.
int stopped_step(const std::string& out, const std::string& signal) {
  std::smatch m;
  if (!std::regex_search(out, m, std::regex("stopped by " + signal + " after step (\\d+)/"))) return -1;
  return std::stoi(m[1]);
}

// Under mpirun: exit code CODE and one line "error: ..." holding every piece (mpirun
// adds its own framed notes around it).
void expect_error_line(const dtb::test::Outcome& o, int code, const std::vector<std::string>& pieces) {
  INFO("stdout: " << o.out << "\nstderr: " << o.err);
  CHECK(o.exit_code == code);
  std::istringstream lines(o.err);
  std::vector<std::string> errors;
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with("error:")) errors.push_back(line);
  REQUIRE(errors.size() == 1);
  for (const std::string& p : pieces) CHECK_THAT(errors[0], Contains(p));
}

}  // namespace

TEST_CASE("a write that fails on rank 0 ends every rank with the line naming the rank", "[faults]") {
  // Rank 0 may write files of at most 200 kB (its shell's ulimit; SIGXFSZ ignored, so the
  // write fails as on a full disk): the results check before step 1 passes, the first
  // checkpoint (420 kB) fails at step 2 while rank 1 waits for rank 0 in the next step.
  const std::string args = small("--set parallel.dp=2 --set train.steps=200 --set train.checkpoint_every=2 "
                                 "--set train.checkpoint=" + in_scratch("full/ck.h5") +
                                 " --set train.results=" + in_scratch("full/results.h5"));
  const std::string bin = dtb::test::dtbench_binary();
  Job job(mpirun(1) + "bash -c \"trap '' XFSZ; ulimit -f 200; exec " + bin + args + "\" : -np 1 " + bin + args, "full");
  const int code = job.finish(120);
  INFO(job.out() << job.err());
  CHECK(code == 1);
  CHECK(job.seconds() < 30);
  CHECK_THAT(job.err(), Contains("error: rank 0: ") && Contains("ck-step000002.h5"));
  CHECK_THAT(job.out(), Contains("step     2/200"));
  CHECK_FALSE(job.out().find("step     4/200") != std::string::npos);
}

TEST_CASE("a rank that stops answering ends the job after net.watchdog_s with the line naming it", "[faults]") {
  Job job(mpirun(2) + dtb::test::dtbench_binary() +
              small("--set parallel.dp=2 --set train.steps=100000 --set net.watchdog_s=3 --set train.results=" +
                    in_scratch("stop.h5")),
          "sigstop");
  REQUIRE(job.wait_for("step     3/", 60));
  const std::vector<pid_t> ranks = ranks_of(job.pid(), 2);
  REQUIRE(ranks[1] > 0);
  const Clock::time_point stopped = Clock::now();
  kill(ranks[1], SIGSTOP);
  const int code = job.finish(60);
  const double took = seconds_since(stopped);
  kill(ranks[1], SIGKILL);  // should mpirun have left it
  INFO(job.out() << job.err());
  CHECK(code == 1);
  CHECK(took >= 3);
  CHECK(took < 3 + 15);
  CHECK_THAT(job.err(), Contains("error: rank 0: watchdog: no answer from rank 1 within 3 s"));
}

TEST_CASE("an error every rank meets before step 1 is one line and exit 2 and an error of one rank alone ends the job", "[faults]") {
  // Every rank: the results path under a regular file (no folder can be made there).
  std::ofstream(scratch() / "a-file") << "x";
  const std::string under_file = in_scratch("a-file/results.h5");
  const dtb::test::Outcome all = dtb::test::run_shell(
      mpirun(2) + dtb::test::dtbench_binary() + small("--set parallel.dp=2 --set train.results=" + under_file), scratch());
  expect_error_line(all, 2, {under_file, "cannot create folder"});
  CHECK(all.out.find("step ") == std::string::npos);
  // An existing results file is not overwritten without --overwrite.
  const std::string results = in_scratch("kept.h5");
  std::ofstream(results) << "earlier";
  const std::string args = small("--set train.steps=2 --set train.results=" + results);
  dtb::test::expect_usage_error(dtb::test::run_dtbench(args, scratch()), args, {results, "--overwrite"});
  CHECK(slurp(results) == "earlier");
  const dtb::test::Outcome over = dtb::test::run_dtbench(args + " --overwrite", scratch());
  CHECK(over.exit_code == 0);
  CHECK(dtb::h5::File::open_read(results).attr_string("/", "status") == "complete");
  // Rank 1 alone fails (its dataset is missing): rank 0 is in a collective by then; rank 1
  // waits for the others to fail alike, then ends the job with its line.
  const std::string bin = dtb::test::dtbench_binary();
  const std::string base = small("--set parallel.dp=2 --set train.steps=4 --set train.results=" + in_scratch("one.h5"));
  const Clock::time_point t0 = Clock::now();
  const dtb::test::Outcome one = dtb::test::run_shell(
      "timeout 120 " + mpirun(1) + bin + base + " : -np 1 " + bin + base + " --set data.path=" + in_scratch("none.h5"),
      scratch());
  expect_error_line(one, 2, {"error: rank 1: ", "none.h5"});
  CHECK(seconds_since(t0) < 30);
}

TEST_CASE("a wall-clock run whose predicted step would take days is refused up front", "[faults]") {
  const fs::path profile = scratch() / "1bps.yaml";
  std::ofstream(profile) << "name: one-bps\nsource: \"test: 1 bps, loss 0.99\"\nsites:\n  - name: slow\n    ranks: rest\n"
                            "    intra: {latency: 1ms, bandwidth: 1bps, loss: 0.99}\n";
  const std::string args = small("--set parallel.dp=2 --set net.clock=wall --set net.profile=" + profile.string());
  const dtb::test::Outcome o = dtb::test::run_shell(mpirun(2) + dtb::test::dtbench_binary() + args, scratch());
  expect_error_line(o, 2, {"error: net.profile " + profile.string() + ": predicted step time", "net.watchdog_s = 300 s"});
}

TEST_CASE("SIGTERM, SIGINT or SIGUSR1 after a step writes checkpoint and results and exits 3 and the resumed run is "
          "bitwise the uninterrupted one",
          "[faults]") {
  const std::string bin = dtb::test::dtbench_binary();
  const std::string common = "--set train.steps=1500 --set train.log_every=1 ";
  static const bool reference = [&] {  // once for the three signals
    return dtb::test::run_dtbench(small(common + "--set train.checkpoint=" + in_scratch("ref.h5") +
                                        " --set train.results=" + in_scratch("ref-results.h5")),
                                  scratch())
               .exit_code == 0;
  }();
  REQUIRE(reference);
  const auto [signal, name] = GENERATE(table<int, std::string>({{SIGTERM, "SIGTERM"}, {SIGINT, "SIGINT"}, {SIGUSR1, "SIGUSR1"}}));
  INFO(name);
  const std::string mine = common + "--set train.checkpoint=" + in_scratch("mine-" + name + ".h5");
  Job job(bin + small(mine + " --set train.results=" + in_scratch("mine-results.h5") + " --overwrite"), "stop-" + name);
  REQUIRE(job.wait_for("step     3/1500", 60));
  kill(job.pid(), signal);
  const int code = job.finish(60);
  INFO(job.out() << job.err());
  REQUIRE(code == 3);
  const int k = stopped_step(job.out(), name);
  REQUIRE(k >= 3);
  REQUIRE(k < 1500);
  const std::string ck = dtb::periodic_checkpoint_path(in_scratch("mine-" + name + ".h5"), k);
  CHECK(dtb::load_checkpoint(ck).step == k);
  CHECK_FALSE(fs::exists(in_scratch("mine-" + name + ".h5")));  // the final one is not written
  const dtb::h5::File results = dtb::h5::File::open_read(in_scratch("mine-results.h5"));
  CHECK(results.attr_string("/", "status") == "stopped by " + name);
  CHECK(results.read<int64_t>("steps/step").size() == size_t(k));
  const dtb::test::Outcome resumed = dtb::test::run_dtbench(
      small(mine + " --set train.results=" + in_scratch("mine-results2.h5") + " --overwrite --resume " + ck), scratch());
  INFO(resumed.out << resumed.err);
  REQUIRE(resumed.exit_code == 0);
  expect_same_checkpoint(in_scratch("ref.h5"), in_scratch("mine-" + name + ".h5"));
  // The losses after the stop are the uninterrupted run's, bit for bit.
  const std::vector<double> want = dtb::h5::File::open_read(in_scratch("ref-results.h5")).read<double>("steps/loss");
  const std::vector<double> got = dtb::h5::File::open_read(in_scratch("mine-results2.h5")).read<double>("steps/loss");
  REQUIRE(got.size() == size_t(1500 - k));
  CHECK(std::equal(got.begin(), got.end(), want.begin() + k));
}

TEST_CASE("SIGUSR1 to mpirun reaches both ranks: they stop after one step with checkpoint and results", "[faults]") {
  // Open MPI's mpirun forwards SIGUSR1 to every rank (SIGTERM and SIGINT it answers by
  // killing them): the signal dtbench run sends a run it stops.
  const std::string ck = in_scratch("usr1-mpirun.h5");
  Job job(mpirun(2) + dtb::test::dtbench_binary() +
              small("--set parallel.dp=2 --set train.steps=100000 --set train.log_every=1 --overwrite --set train.checkpoint=" +
                    ck + " --set train.results=" + in_scratch("usr1-mpirun-results.h5")),
          "usr1-mpirun");
  REQUIRE(job.wait_for("step     3/", 60));
  kill(job.pid(), SIGUSR1);
  const int code = job.finish(60);
  INFO(job.out() << job.err());
  CHECK(code == 3);
  const int k = stopped_step(job.out(), "SIGUSR1");
  REQUIRE(k >= 3);
  CHECK(dtb::load_checkpoint(dtb::periodic_checkpoint_path(ck, k)).step == k);
  const dtb::h5::File results = dtb::h5::File::open_read(in_scratch("usr1-mpirun-results.h5"));
  CHECK(results.attr_string("/", "status") == "stopped by SIGUSR1");
  CHECK(results.read<int64_t>("steps/step").size() == size_t(k));
}

TEST_CASE("SIGTERM to one rank of a 3D layout stops every rank after the same step and the resume is bitwise",
          "[faults]") {
  const std::string layout = "--set parallel.dp=2 --set parallel.pp=2 --set parallel.tp=2 --set parallel.microbatches=2 "
                             "--set train.steps=150 ";
  const std::string bin = dtb::test::dtbench_binary();
  REQUIRE(dtb::test::run_shell(mpirun(8) + bin + small(layout + "--set train.checkpoint=" + in_scratch("ref3d.h5") +
                                                       " --set train.results=" + in_scratch("ref3d-results.h5")),
                               scratch())
              .exit_code == 0);
  const std::string mine = layout + "--set train.checkpoint=" + in_scratch("mine3d.h5");
  Job job(mpirun(8) + bin + small(mine + " --set train.results=" + in_scratch("mine3d-results.h5")), "sigterm3d");
  REQUIRE(job.wait_for("step     3/150", 120));
  const std::vector<pid_t> ranks = ranks_of(job.pid(), 8);
  REQUIRE(ranks[5] > 0);
  kill(ranks[5], SIGTERM);  // one rank only, as a node's signal might reach one
  const int code = job.finish(120);
  INFO(job.out() << job.err());
  REQUIRE(code == 3);
  const int k = stopped_step(job.out(), "SIGTERM");
  REQUIRE(k >= 3);
  REQUIRE(k < 150);
  const std::string ck = dtb::periodic_checkpoint_path(in_scratch("mine3d.h5"), k);
  const dtb::test::Outcome resumed = dtb::test::run_shell(
      mpirun(8) + bin + small(mine + " --set train.results=" + in_scratch("mine3d-results2.h5") + " --resume " + ck),
      scratch());
  INFO(resumed.out << resumed.err);
  REQUIRE(resumed.exit_code == 0);
  expect_same_checkpoint(in_scratch("ref3d.h5"), in_scratch("mine3d.h5"));
}

TEST_CASE("results grow as the run goes and temporaries of interrupted writes are removed at the next start",
          "[faults]") {
  const std::string results = in_scratch("grow.h5");
  Job job(dtb::test::dtbench_binary() +
              small("--set train.steps=100000 --set train.results_every=2 --set train.results=" + results),
          "grow");
  REQUIRE(job.wait_for("step     7/", 60));
  kill(job.pid(), SIGKILL);
  job.finish(30);
  const dtb::h5::File f = dtb::h5::File::open_read(results);  // a whole file, as every write left it
  CHECK(f.attr_string("/", "status") == "running");
  const size_t steps = f.read<int64_t>("steps/step").size();
  CHECK(steps >= 6);
  CHECK(steps % 2 == 0);

  // Temporaries: of a process that is gone (removed), and of one alive (kept: a live write).
  const pid_t gone = fork();
  if (gone == 0) _exit(0);
  waitpid(gone, nullptr, 0);
  const std::string ck = in_scratch("tmp/ck.h5");
  fs::create_directories(scratch() / "tmp");
  const std::vector<std::string> stale = {ck + ".tmp-" + std::to_string(gone),
                                          in_scratch("tmp/ck-step000004.h5.tmp-" + std::to_string(gone))};
  const std::string alive = ck + ".tmp-" + std::to_string(getpid()), other = in_scratch("tmp/other.h5.tmp-1");
  for (const std::string& p : {stale[0], stale[1], alive, other}) std::ofstream(p) << "partial";
  const dtb::test::Outcome o = dtb::test::run_dtbench(
      small("--set train.steps=1 --set train.checkpoint=" + ck + " --set train.results=" + in_scratch("tmp/r.h5")), scratch());
  INFO(o.out << o.err);
  CHECK(o.exit_code == 0);
  for (const std::string& p : stale) {
    CHECK_FALSE(fs::exists(p));
    CHECK_THAT(o.out, Contains("removed " + p));
  }
  CHECK(fs::exists(alive));
  CHECK(fs::exists(other));  // not a temporary of this run's files
}

TEST_CASE("dtbench run refuses a second run into the folder and reports a killed run as such", "[faults]") {
  const fs::path experiment = scratch() / "exp.yaml";
  std::ofstream(experiment) << "name: faults\nlauncher: mpirun\ndefaults:\n  model: " << DTB_SOURCE_DIR
                            << "/configs/model/tiny.yaml\n  set: {data.path: " << fortunes()
                            << ", train.threads: 1, train.val_every: 0, train.log_every: 1}\nruns:\n"
                               "  - {name: quick, steps: 2, layout: {dp: 1}}\n"
                               "  - {name: long, steps: 100000, layout: {dp: 1}}\n";
  const std::string run = dtb::test::dtbench_binary() + " run " + experiment.string() + " --out " + in_scratch("res");
  Job first(run, "run-first");
  REQUIRE(first.wait_for("[2/2 long] step     2/", 60));
  const dtb::test::Outcome second = dtb::test::run_shell(run + " --only long", scratch());
  dtb::test::expect_usage_error(second, "run (second)", {"another dtbench run", "--out"});
  // Kill the long run's rank: the runner says how it ended and records it for the report.
  const std::vector<pid_t> rank = ranks_of(
      [&] {
        for (const fs::directory_entry& e : fs::directory_iterator("/proc")) {
          const std::string cmd = slurp(e.path() / "cmdline");
          int ppid = 0;
          char state = 0;
          const std::string stat = slurp(e.path() / "stat");
          const size_t close = stat.rfind(')');
          if (close == std::string::npos || std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) != 2) continue;
          // The build's launcher: mpirun, mpiexec or mpiexec.openmpi (cmake/mpi.cmake).
          if (ppid == first.pid() && fs::path(cmd.c_str()).filename().string().starts_with("mpi"))
            return pid_t(std::stoi(e.path().filename().string()));
        }
        return pid_t(-1);
      }(),
      1);
  REQUIRE(rank[0] > 0);
  kill(rank[0], SIGKILL);
  const int code = first.finish(60);
  INFO(first.out() << first.err());
  CHECK(code == 1);
  // mpirun's last line (a rule of dashes) is no reason.
  CHECK(std::regex_search(first.out(), std::regex(R"(\[run 2/2\] long: FAILED after [0-9.]+ s \(killed by signal 9 \(SIGKILL\)\); log: )")));
  // The log's verdict is the one record of how the run ended (no second record beside it).
  CHECK_THAT(slurp(scratch() / "res/long.log"), Contains("FAILED: killed by signal 9 (SIGKILL)"));
  CHECK_FALSE(fs::exists(scratch() / "res/long.failed"));
  CHECK_THAT(slurp(scratch() / "res/report.md"), Contains("## Runs that did not finish") && Contains("killed by signal 9 (SIGKILL)"));
}

TEST_CASE("a rank that hangs before MPI_Init, before start-up's collectives or at MPI_Finalize ends the job after net.watchdog_s",
          "[faults][watchdog]") {
  // faults.hang_at makes rank 1 stop answering there for good (a hung node). Rank 0 waits
  // inside MPI's own call, where the message watchdog cannot look: the phase watchdog ends
  // it with the line naming the phase, and mpirun the job.
  const std::vector<std::pair<std::string, std::string>> phases = {
      {"init", "error: rank 0: watchdog: MPI_Init (a rank did not start, or hung before it) did not finish within 3 s"},
      {"startup", "error: rank 0: watchdog: start-up's first collectives (a rank hung before them) did not finish within 3 s"},
      {"finalize", "error: rank 0: watchdog: MPI_Finalize (a rank did not arrive: hung, or still busy) did not finish within 3 s"}};
  for (const auto& [phase, line] : phases) {
    INFO(phase);
    Job job(mpirun(2) + dtb::test::dtbench_binary() +
                small("--set parallel.dp=2 --set train.steps=2 --set net.watchdog_s=3 --set faults.hang_rank=1"
                      " --set faults.hang_at=" + phase + " --overwrite --set train.results=" + in_scratch("hang.h5")),
            "hang-" + phase);
    const int code = job.finish(90);
    INFO(job.out() << job.err());
    CHECK(code != 0);
    CHECK(job.seconds() >= 3);
    CHECK(job.seconds() < 3 + 30);
    CHECK_THAT(job.err(), Contains(line));
    if (phase == "finalize") CHECK_THAT(job.out(), Contains("step     2/2"));  // the run itself was done
  }
}

namespace {

// An experiment of train runs of the tiny model (RUNS: the runs: entries), written to
// scratch/NAME.yaml; dtbench run's command line for it into scratch/NAME/.
std::string experiment_run(const std::string& name, const std::string& launcher, const std::string& runs) {
  const fs::path file = scratch() / (name + ".yaml");
  std::ofstream(file) << "name: " << name << "\nlauncher: " << launcher << "\ndefaults:\n  model: " << DTB_SOURCE_DIR
                      << "/configs/model/tiny.yaml\n  set: {data.path: " << fortunes()
                      << ", train.threads: 1, train.val_every: 0, train.log_every: 1}\nruns:\n"
                      << runs;
  fs::remove_all(scratch() / name);
  return dtb::test::dtbench_binary() + " run " + file.string() + " --out " + in_scratch(name);
}

// The step a run that dtbench run stopped gracefully stopped at, read from its log's verdict
// (WHY: how dtbench run asked, e.g. "timed out after 3s"); its checkpoint holds that step
// and its results that many steps, marked stopped by SIGUSR1 (what dtbench run sends).
int expect_stopped_run(const std::string& dir, const std::string& run, const std::string& why) {
  const std::string log = slurp(scratch() / dir / (run + ".log"));
  INFO(log);
  std::smatch m;
  REQUIRE(std::regex_search(log, m, std::regex("\n# dtbench run: FAILED: " + why +
                                               R"(; stopped after a step \(exit 3; it wrote a checkpoint to resume from\): )"
                                               R"(stopped by SIGUSR1 after step (\d+)/100000: )")));
  const int k = std::stoi(m[1]);
  CHECK(k >= 3);
  CHECK_THAT(log, Contains("\n# stop: " + why + ": SIGUSR1 to "));
  CHECK(dtb::load_checkpoint(dtb::periodic_checkpoint_path(in_scratch(dir + "/" + run + "-checkpoint.h5"), k)).step == k);
  const dtb::h5::File results = dtb::h5::File::open_read(in_scratch(dir + "/" + run + ".h5"));
  CHECK(results.attr_string("/", "status") == "stopped by SIGUSR1");
  CHECK(results.read<int64_t>("steps/step").size() == size_t(k));
  return k;
}

}  // namespace

TEST_CASE("dtbench run's timeout stops a run after a step: checkpoint and results of the timed-out run", "[faults][run]") {
  // A world of one (launcher direct): dtbench run's SIGUSR1 reaches the trainer itself.
  Job job(experiment_run("timeout", "direct", "  - {name: long, steps: 100000, timeout: 3, layout: {dp: 1}}\n"), "timeout");
  const int code = job.finish(60);
  INFO(job.out() << job.err());
  CHECK(code == 1);  // a run failed
  CHECK(job.seconds() < 3 + 10);  // not the 120 s of grace: the run ended after its step
  CHECK_THAT(job.out(), Contains("[run 1/1] long: timed out after 3s: SIGUSR1 to dtbench (pid "));
  expect_stopped_run("timeout", "long", "timed out after 3s");
}

TEST_CASE("SIGINT to dtbench run stops its mpirun run after a step, starts no other and exits 3", "[faults][run]") {
  Job job(experiment_run("interrupted", "mpirun",
                         "  - {name: long, steps: 100000, layout: {dp: 2}}\n  - {name: next, steps: 2, layout: {dp: 1}}\n"),
          "interrupted");
  REQUIRE(job.wait_for("[1/2 long] step     3/", 60));
  kill(-job.pid(), SIGINT);  // as a Ctrl-C at the terminal: the foreground process group
  const int code = job.finish(60);
  INFO(job.out() << job.err());
  CHECK(code == 3);
  CHECK_THAT(job.out(), Contains("[run 1/2] long: dtbench run got SIGINT: SIGUSR1 to mpi"));  // mpirun, mpiexec...
  CHECK_THAT(job.out(), Contains("dtbench run got SIGINT: 1 run(s) not started"));
  expect_stopped_run("interrupted", "long", "dtbench run got SIGINT");
  CHECK_FALSE(fs::exists(scratch() / "interrupted/next.log"));
  CHECK_THAT(slurp(scratch() / "interrupted/report.md"),
             Contains("## Runs that did not finish") && Contains("dtbench run got SIGINT"));
}

TEST_CASE("a run that ignores the stop gets SIGTERM after stop_grace and SIGKILL when dtbench run is asked again",
          "[faults][run]") {
  // A launcher (a site's wrapper, DTB_MPIEXEC) that ignores SIGUSR1 and SIGTERM, as a hung job might.
  const fs::path fake = scratch() / "deaf-launcher.sh";
  std::ofstream(fake) << "#!/bin/bash\ntrap 'echo deaf: USR1' USR1\ntrap 'echo deaf: TERM' TERM\n"
                         "while :; do sleep 0.05; done\n";
  fs::permissions(fake, fs::perms::owner_all);
  Job job("env DTB_MPIEXEC=" + fake.string() + " " +
              experiment_run("deaf", "mpirun", "  - {name: hung, steps: 100000, timeout: 1, stop_grace: 1, layout: {dp: 1}}\n"),
          "deaf");
  REQUIRE(job.wait_for("still running 1s after SIGUSR1: SIGTERM to deaf-launcher.sh (pid ", 30));
  const auto logged = [&](const std::string& text) {  // the launcher's lines go to the run's log
    for (int tries = 0; tries < 500 && slurp(scratch() / "deaf/hung.log").find(text) == std::string::npos; ++tries)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return slurp(scratch() / "deaf/hung.log").find(text) != std::string::npos;
  };
  REQUIRE(logged("deaf: TERM"));
  kill(job.pid(), SIGINT);  // the first of a kind: the stop goes on as it is
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(job.pid(), SIGINT);  // again: no more waiting
  const int code = job.finish(30);
  INFO(job.out() << job.err());
  CHECK(code == 3);
  CHECK(job.seconds() < 10);  // not the 10 s after SIGTERM
  CHECK_THAT(job.out(), Contains("[run 1/1] hung: timed out after 1s: SIGUSR1 to deaf-launcher.sh"));
  CHECK_THAT(job.out(), Contains("[run 1/1] hung: dtbench run was asked again: SIGKILL to deaf-launcher.sh"));
  const std::string log = slurp(scratch() / "deaf/hung.log");
  CHECK_THAT(log, Contains("\ndeaf: USR1\n# stop: still running 1s after SIGUSR1: SIGTERM to deaf-launcher.sh"));
  CHECK(log.ends_with("\n# dtbench run: FAILED: dtbench run got SIGINT; killed by signal 9 (SIGKILL)\n"));
}
