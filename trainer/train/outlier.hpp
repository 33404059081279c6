#pragma once
// Skipping an update whose gradient norm is a far outlier (optim.outlier_z), as llm.c's
// OutlierDetector (llm.c/outlier_detector.h) does: a window of the last 128 norms, and the
// z-score of the newest against their mean and standard deviation, the newest included
// (so a single spike reaches at most sqrt(127) ~ 11.3). No score until the window is full.
// llm.c skips the step's update when z > its threshold; so does the trainer, on every rank
// alike (the norm is the world's: every rank scores the same number), and counts it.
#include <cstddef>
#include <vector>

namespace dtb {

class OutlierDetector {
 public:
  static constexpr size_t kWindow = 128;  // llm.c's OUTLIER_DETECTOR_WINDOW_SIZE

  // Adds NORM to the window; its z-score, NaN while the window is filling.
  double update(double norm);
  // For checkpoints: the running sum and sum of squares, then the window oldest first (the
  // sums as they are, not recomputed: a resumed run scores bitwise as the run would have).
  std::vector<double> state() const;
  void restore(const std::vector<double>& state);  // throws UsageError for a malformed one

 private:
  std::vector<double> buffer_;  // a ring once full
  size_t next_ = 0;             // the oldest entry's index once full
  double sum_ = 0, sum_sq_ = 0;
};

}  // namespace dtb
