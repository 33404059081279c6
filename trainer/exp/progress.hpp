#pragma once
// The ETA `dtbench run` prints with every progress line. What is left of the current run is
// timed by its own progress lines (seconds per step, or per table row of a coll run, between
// the first and the latest it printed); each run still to come by the runs of its kind and
// clock that finished well (their whole seconds, start-up included, per step or row): a
// virtual-clock run takes the time its compute takes on this host, a wall-clock run the
// emulated network's too. A run with no such kin finished yet is not guessed at: the ETA says
// how many such runs remain.
// Times are seconds on a monotonic clock, passed in, so that the arithmetic can be tested.
#include <string>
#include <vector>

#include "exp/experiment.hpp"

namespace dtb::exp {

struct RunWork {
  RunKind kind = RunKind::kTrain;
  std::string clock = "virtual";  // or "wall"
  int units = 0;                  // steps (train) or buffer sizes (coll); 0 = unknown
};

class Progress {
 public:
  explicit Progress(std::vector<RunWork> runs);
  void start_run(size_t index, double now);
  void mark(int units_done, double now);  // the current run has done this many units
  void finish_run(double now, bool ok);  // a failed run's time says nothing about its kind

  struct Eta {
    double seconds = 0;     // the part that could be estimated
    int unknown_runs = 0;   // runs left out of it: no pace to go by yet (the current one included)
  };
  Eta eta(double now) const;
  // "ETA 1m05s"; "ETA 40s + 2 runs not yet timed"; "ETA ?" when no run left can be timed.
  std::string text(double now) const;

 private:
  double pace(const RunWork& like) const;  // seconds per unit of its finished kin; < 0: none
  double current_left(double now) const;  // < 0: cannot tell yet

  struct Mark {
    int done;
    double at;
  };
  std::vector<RunWork> runs_;
  std::vector<bool> finished_;
  std::vector<double> seconds_;  // per run that finished well, else < 0
  size_t current_ = 0;
  bool running_ = false;
  double started_ = 0;
  std::vector<Mark> marks_;  // the current run's first and latest progress line
};

// 42 -> "42s", 65 -> "1m05s", 3725 -> "1h02m".
std::string duration_text(double seconds);

}  // namespace dtb::exp
