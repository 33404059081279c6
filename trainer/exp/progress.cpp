#include "exp/progress.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace dtb::exp {

Progress::Progress(std::vector<RunWork> runs)
    : runs_(std::move(runs)), finished_(runs_.size(), false), seconds_(runs_.size(), -1.0) {}

void Progress::start_run(size_t index, double now) {
  current_ = index, running_ = true, started_ = now;
  marks_.clear();
}

void Progress::mark(int units_done, double now) {
  if (!running_ || units_done <= 0) return;
  const Mark m{units_done, now};
  if (marks_.size() < 2) marks_.push_back(m);
  else marks_[1] = m;
}

void Progress::finish_run(double now, bool ok) {
  if (!running_) return;
  finished_[current_] = true;
  if (ok) seconds_[current_] = now - started_;
  running_ = false;
  marks_.clear();
}

double Progress::pace(const RunWork& like) const {
  double seconds = 0, units = 0;
  for (size_t i = 0; i < runs_.size(); ++i)
    if (runs_[i].kind == like.kind && runs_[i].clock == like.clock && seconds_[i] >= 0 && runs_[i].units > 0)
      seconds += seconds_[i], units += runs_[i].units;
  return units > 0 ? seconds / units : -1.0;
}

// Between two progress lines the pace is the run's own steady state; with one line only,
// the time since the start (launch and set-up included) over the units done: an upper bound.
double Progress::current_left(double now) const {
  const RunWork& w = runs_[current_];
  if (w.units <= 0) return -1.0;
  if (marks_.empty()) {  // nothing printed yet: as long as its finished kin took
    const double p = pace(w);
    return p < 0 ? -1.0 : std::max(0.0, p * w.units - (now - started_));
  }
  const Mark& last = marks_.back();
  const double per_unit = marks_.size() == 2 && last.done > marks_[0].done
                              ? (last.at - marks_[0].at) / (last.done - marks_[0].done)
                              : (last.at - started_) / last.done;
  return std::max(0.0, (w.units - last.done) * per_unit - (now - last.at));
}

Progress::Eta Progress::eta(double now) const {
  Eta e;
  if (running_) {
    const double left = current_left(now);
    if (left < 0) ++e.unknown_runs;
    else e.seconds += left;
  }
  for (size_t i = running_ ? current_ + 1 : 0; i < runs_.size(); ++i) {
    if (finished_[i]) continue;
    const double p = pace(runs_[i]);
    if (p < 0 || runs_[i].units <= 0) ++e.unknown_runs;
    else e.seconds += p * runs_[i].units;
  }
  return e;
}

std::string Progress::text(double now) const {
  const Eta e = eta(now);
  size_t left = 0;  // runs not finished, the current one included
  for (size_t i = 0; i < runs_.size(); ++i) left += !finished_[i];
  if (e.unknown_runs == 0) return "ETA " + duration_text(e.seconds);
  if (size_t(e.unknown_runs) == left) return "ETA ?";
  return "ETA " + duration_text(e.seconds) + " + " + std::to_string(e.unknown_runs) +
         (e.unknown_runs == 1 ? " run" : " runs") + " not yet timed";
}

std::string duration_text(double s) {
  char buf[32];
  const long t = std::lround(s);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, t / 60 % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

}  // namespace dtb::exp
