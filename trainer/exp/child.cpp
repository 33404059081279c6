#include "exp/child.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "exp/progress.hpp"
#include "train/stop_signal.hpp"

extern char** environ;

namespace dtb::exp {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Starts ARGV with stdout and stderr on the write end of a pipe, in a process group of its
// own; returns the pid, or -1 with ERROR set.
pid_t spawn(const std::vector<std::string>& argv, int pipe_write, int pipe_read, std::string& error) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addclose(&actions, pipe_read);
  // No terminal input: mpirun would otherwise forward our stdin to rank 0.
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_write, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, pipe_write, STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_write);
  // Its own process group: a Ctrl-C at the terminal goes to the foreground group, and
  // mpirun would answer it by killing the ranks at once; dtbench run passes it on gracefully.
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attributes, 0);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, &attributes, args.data(), environ);
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    error = "cannot start " + argv[0] + ": " + std::strerror(rc);
    return -1;
  }
  return pid;
}

// Splits what arrives into lines; a last line without a newline is passed on at the end.
class LineSplitter {
 public:
  explicit LineSplitter(const std::function<void(const std::string&)>& on_line) : on_line_(on_line) {}
  void feed(const char* data, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (data[i] != '\n') {
        pending_ += data[i];
        continue;
      }
      on_line_(pending_);
      pending_.clear();
    }
  }
  void finish() {
    if (!pending_.empty()) on_line_(pending_);
    pending_.clear();
  }

 private:
  const std::function<void(const std::string&)>& on_line_;
  std::string pending_;
};

// StopPolicy's sequence, one step at a time, each told to ON_NOTE.
class Stopper {
 public:
  Stopper(pid_t pid, const std::string& program, const StopPolicy& policy,
          const std::function<void(const std::string&)>& on_note)
      : pid_(pid), who_(std::filesystem::path(program).filename().string() + " (pid " + std::to_string(pid) + ")"),
        policy_(policy), on_note_(on_note), repeats_seen_(stop_repeats()) {}

  // Called every poll round with the time since the start. Returns false when it is time to
  // stop reading the child's output (10 s after SIGKILL: orphans of the launcher hold the pipe).
  bool tick(double elapsed) {
    if (stopped_by_ == 0 && stop_signal() != 0) {
      stopped_by_ = stop_signal();
      if (stage_ == Stage::kRunning) ask(elapsed, std::string("dtbench run got ") + signal_name(stopped_by_));
    }
    if (stage_ == Stage::kRunning && policy_.timeout_s > 0 && elapsed > policy_.timeout_s) {
      timed_out_ = true;
      ask(elapsed, "timed out after " + duration_text(policy_.timeout_s));
    }
    if (stage_ == Stage::kRunning) return true;
    if (stage_ == Stage::kKilled) return elapsed < next_at_;
    if (stop_repeats() > repeats_seen_) {
      repeats_seen_ = stop_repeats();
      escalate(elapsed, "dtbench run was asked again");
    } else if (elapsed >= next_at_) {
      escalate(elapsed, "still running " + duration_text(elapsed - asked_at_) + " after " + last_sent_);
    }
    return true;
  }
  bool timed_out() const { return timed_out_; }
  int stopped_by() const { return stopped_by_; }

 private:
  enum class Stage { kRunning, kAsked, kTerminated, kKilled };

  void ask(double now, const std::string& why) {
    send(SIGUSR1, pid_);
    stage_ = Stage::kAsked;
    asked_at_ = now;
    next_at_ = now + policy_.grace_s;
    on_note_(why + ": SIGUSR1 to " + who_ + ", the run stops after its current step with a checkpoint and its results; "
             "SIGTERM in " + duration_text(policy_.grace_s) + " if it has not ended");
  }

  void escalate(double now, const std::string& why) {
    asked_at_ = now;
    next_at_ = now + 10;
    if (stage_ == Stage::kAsked) {
      send(SIGTERM, pid_);
      stage_ = Stage::kTerminated;
      on_note_(why + ": SIGTERM to " + who_ + "; SIGKILL in 10 s if it has not ended");
    } else if (stage_ == Stage::kTerminated) {
      send(SIGKILL, -pid_);
      stage_ = Stage::kKilled;
      on_note_(why + ": SIGKILL to " + who_ + " and its process group");
    }
  }

  void send(int signal, pid_t target) {
    kill(target, signal);
    last_sent_ = signal_name(signal);
  }

  pid_t pid_;
  std::string who_;
  StopPolicy policy_;
  const std::function<void(const std::string&)>& on_note_;
  int repeats_seen_;  // dtbench run's repeated signals already acted on
  Stage stage_ = Stage::kRunning;
  double asked_at_ = 0, next_at_ = 0;
  int stopped_by_ = 0;
  bool timed_out_ = false;
  std::string last_sent_;
};

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

ChildOutcome run_child(const std::vector<std::string>& argv, const StopPolicy& stop,
                       const std::function<void(const std::string&)>& on_line,
                       const std::function<void(const std::string&)>& on_note) {
  ChildOutcome out;
  const auto start = Clock::now();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    out.error = std::string("cannot create a pipe: ") + std::strerror(errno);
    out.exit_code = 127;
    return out;
  }
  const pid_t pid = spawn(argv, fds[1], fds[0], out.error);
  close(fds[1]);
  if (pid < 0) {
    close(fds[0]);
    out.exit_code = 127;
    return out;
  }
  LineSplitter lines(on_line);
  Stopper stopper(pid, argv[0], stop, on_note);
  for (;;) {
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, 200);
    if (ready > 0) {
      char buf[4096];
      const ssize_t n = read(fds[0], buf, sizeof buf);
      // n < 0 with EINTR: a stop signal to dtbench run, which tick() below takes up.
      if (n == 0 || (n < 0 && errno != EINTR)) break;  // the child (and everything holding the pipe) is gone
      if (n > 0) lines.feed(buf, size_t(n));
    }
    if (!stopper.tick(seconds_since(start))) break;
  }
  lines.finish();
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  out.exit_code = exit_code(status);
  out.timed_out = stopper.timed_out();
  out.stopped_by = stopper.stopped_by();
  out.seconds = seconds_since(start);
  return out;
}

std::string describe(const ChildOutcome& o) {
  if (!o.error.empty()) return o.error;
  if (o.exit_code > 128) {
    const int signal = o.exit_code - 128;
    const char* abbrev = sigabbrev_np(signal);  // "KILL", "SEGV", ...; null for an unknown number
    return "killed by signal " + std::to_string(signal) + (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
  }
  if (o.exit_code == kStoppedExitCode) return "stopped after a step (exit 3; it wrote a checkpoint to resume from)";
  return "exit " + std::to_string(o.exit_code);
}

}  // namespace dtb::exp
