#pragma once
// Hands out consecutive slices of a buffer; with a null base it only counts, so the same
// code gives the allocation size and the views (GPT's activations, and a pipeline stage's).
#include <cstddef>

namespace dtb {

template <typename Real>
class Carver {
 public:
  explicit Carver(Real* base) : base_(base) {}
  Real* take(size_t n) {
    Real* p = base_ ? base_ + used_ : nullptr;
    used_ += n;
    return p;
  }
  void rewind(size_t to) { used_ = to; }
  size_t used() const { return used_; }

 private:
  Real* base_;
  size_t used_ = 0;
};

}  // namespace dtb
