#include "train/outlier.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "usage_error.hpp"

namespace dtb {

double OutlierDetector::update(double norm) {
  if (buffer_.size() < kWindow) {  // still filling the window
    buffer_.push_back(norm);
    sum_ += norm;
    sum_sq_ += norm * norm;
    return std::numeric_limits<double>::quiet_NaN();
  }
  const double old = buffer_[next_];
  sum_ += norm - old;
  sum_sq_ += norm * norm - old * old;
  buffer_[next_] = norm;
  next_ = (next_ + 1) % kWindow;
  const double mean = sum_ / kWindow;
  const double variance = sum_sq_ / kWindow - mean * mean;
  const double sd = std::sqrt(std::max(variance, 0.0));
  return sd == 0 ? 0.0 : (norm - mean) / sd;
}

std::vector<double> OutlierDetector::state() const {
  std::vector<double> out = {sum_, sum_sq_};
  for (size_t i = 0; i < buffer_.size(); ++i) out.push_back(buffer_[(next_ + i) % buffer_.size()]);
  return out;
}

void OutlierDetector::restore(const std::vector<double>& state) {
  if (state.size() < 2 || state.size() > 2 + kWindow)
    throw UsageError("outlier/state: " + std::to_string(state.size()) + " values; expected 2 sums and at most " +
                     std::to_string(kWindow) + " norms");
  sum_ = state[0];
  sum_sq_ = state[1];
  buffer_.assign(state.begin() + 2, state.end());
  next_ = 0;
}

}  // namespace dtb
