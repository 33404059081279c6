#include "train/stop_signal.hpp"

#include <csignal>
#include <initializer_list>

namespace dtb {
namespace {

volatile std::sig_atomic_t received = 0;

void on_stop(int signal) {
  if (received == signal) {  // asked twice: stop now, the way the signal would have
    std::signal(signal, SIG_DFL);
    std::raise(signal);
    return;
  }
  if (received == 0) received = signal;
}

}  // namespace

void install_stop_handlers() {
  struct sigaction action = {};
  action.sa_handler = on_stop;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // MPI's and the file system's calls carry on
  for (int s : {SIGTERM, SIGINT, SIGUSR1}) sigaction(s, &action, nullptr);
}

int stop_signal() { return received; }

const char* signal_name(int signal) {
  switch (signal) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    case SIGUSR1: return "SIGUSR1";
    default: return "a signal";
  }
}

}  // namespace dtb
