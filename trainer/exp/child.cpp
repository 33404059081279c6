#include "exp/child.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

extern char** environ;

namespace dtb::exp {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Starts ARGV with stdout and stderr on the write end of a pipe; returns the pid, or -1
// with ERROR set.
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
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
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

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

ChildOutcome run_child(const std::vector<std::string>& argv, double timeout_s,
                       const std::function<void(const std::string&)>& on_line) {
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
  bool term_sent = false, kill_sent = false;
  for (;;) {
    pollfd p{fds[0], POLLIN, 0};
    const int ready = poll(&p, 1, 200);
    if (ready > 0) {
      char buf[4096];
      const ssize_t n = read(fds[0], buf, sizeof buf);
      if (n <= 0) break;  // the child (and everything holding the pipe) is gone
      lines.feed(buf, size_t(n));
    }
    const double elapsed = seconds_since(start);
    if (timeout_s > 0 && elapsed > timeout_s && !term_sent) kill(pid, SIGTERM), term_sent = true;
    if (term_sent && elapsed > timeout_s + 10 && !kill_sent) kill(pid, SIGKILL), kill_sent = true;
    if (kill_sent && elapsed > timeout_s + 20) break;  // orphans of the launcher still hold the pipe
  }
  lines.finish();
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  out.exit_code = exit_code(status);
  out.timed_out = term_sent;
  out.seconds = seconds_since(start);
  return out;
}

std::string describe(const ChildOutcome& o) {
  if (!o.error.empty()) return o.error;
  if (o.timed_out) return "timed out";
  if (o.exit_code > 128) {
    const int signal = o.exit_code - 128;
    const char* abbrev = sigabbrev_np(signal);  // "KILL", "SEGV", ...; null for an unknown number
    return "killed by signal " + std::to_string(signal) + (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
  }
  if (o.exit_code == 3) return "stopped by a signal after a step (exit 3; it wrote a checkpoint to resume from)";
  return "exit " + std::to_string(o.exit_code);
}

}  // namespace dtb::exp
