#pragma once
// Hands out consecutive slices of a buffer; with a null base it only counts, so the same
// code gives the allocation size and the views (GPT's activations, and a pipeline stage's).
// ALIGN (elements) starts every slice on a multiple of it (a device kernel set's rows move in
// aligned packs); 1 packs the slices tightly.
#include <cstddef>

namespace dtb {

template <typename Real>
class Carver {
 public:
  explicit Carver(Real* base, size_t align = 1) : base_(base), align_(align) {}
  Real* take(size_t n) {
    used_ = round_up(used_);
    Real* p = base_ ? base_ + used_ : nullptr;
    used_ += n;
    return p;
  }
  void rewind(size_t to) { used_ = to; }
  size_t used() const { return round_up(used_); }

 private:
  size_t round_up(size_t n) const { return (n + align_ - 1) / align_ * align_; }
  Real* base_;
  size_t align_;
  size_t used_ = 0;
};

}  // namespace dtb
