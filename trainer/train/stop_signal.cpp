#include "train/stop_signal.hpp"

#include <csignal>
#include <cstring>  // sigabbrev_np
#include <initializer_list>

namespace dtb {
namespace {

volatile std::sig_atomic_t received = 0;      // the first stop signal
volatile std::sig_atomic_t received_mask = 0;  // bit N: signal N came
volatile std::sig_atomic_t repeats = 0;
volatile std::sig_atomic_t die_on_repeat = 1;

void on_stop(int signal) {
  const int bit = 1 << signal;
  if (received_mask & bit) {  // asked twice
    if (!die_on_repeat) {
      repeats = repeats + 1;
      return;
    }
    std::signal(signal, SIG_DFL);  // stop now, the way the signal would have
    std::raise(signal);
    return;
  }
  received_mask = received_mask | bit;
  if (received == 0) received = signal;
}

}  // namespace

void install_stop_handlers(OnRepeat on_repeat) {
  die_on_repeat = on_repeat == OnRepeat::kDie;
  struct sigaction action = {};
  action.sa_handler = on_stop;
  sigemptyset(&action.sa_mask);
  for (int s : {SIGTERM, SIGINT, SIGUSR1}) sigaddset(&action.sa_mask, s);  // one handler at a time
  action.sa_flags = SA_RESTART;  // MPI's and the file system's calls carry on
  for (int s : {SIGTERM, SIGINT, SIGUSR1}) sigaction(s, &action, nullptr);
}

int stop_signal() { return received; }

int stop_repeats() { return repeats; }

std::string signal_name(int signal) {
  const char* abbrev = sigabbrev_np(signal);  // "TERM", "USR1", ...; null for an unknown number
  return abbrev ? std::string("SIG") + abbrev : "a signal";
}

}  // namespace dtb
